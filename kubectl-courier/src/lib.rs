#![forbid(unsafe_code)]
//! `kubectl courier`: status with progress bars, describe, retry, suspend/resume, dead
//! letters and top for Courier's DeliveryPackages and Destinations.
//!
//! The views (`view`) are pure functions of the API objects and are table-tested; the
//! commands read the objects with kube-rs and print the views as a table, JSON or YAML.

pub mod cli;
mod client;
mod dead_letters;
mod describe;
mod error;
mod metrics_text;
mod output;
mod status;
mod steer;
pub mod table;
mod top;
pub mod view;
mod workers;

use std::process::ExitCode;

pub use error::Error;

/// Exit code of a usage error (bad flags or arguments).
pub const EXIT_USAGE: u8 = 2;

/// Runs one command line; the exit code on success.
pub async fn run(cli: cli::Cli) -> Result<ExitCode, Error> {
    let term = table::Terminal::detect(cli.no_color);
    match cli.command {
        cli::Command::Status(args) => status::run(&cli.global, &args, cli.output, &term).await,
        cli::Command::Describe(args) => describe::run(&cli.global, &args, cli.output, &term).await,
        cli::Command::Retry(args) => steer::retry(&cli.global, &args).await,
        cli::Command::Suspend(args) => steer::suspend(&cli.global, &args, true).await,
        cli::Command::Resume(args) => steer::suspend(&cli.global, &args, false).await,
        cli::Command::DeadLetters(args) => dead_letters::run(&cli.global, &args, cli.output, &term).await,
        cli::Command::Top(args) => top::run(&cli.global, &args, cli.output, &term).await,
    }
}
