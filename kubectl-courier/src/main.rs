#![forbid(unsafe_code)]
//! `kubectl courier`: watch and steer Courier deliveries from a terminal.

use std::process::ExitCode;

use clap::Parser as _;
use kubectl_courier::cli::Cli;
use kubectl_courier::{EXIT_USAGE, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = err.print();
                return ExitCode::from(EXIT_USAGE);
            }
            eprintln!("kubectl courier: {}", kubectl_courier::cli::one_line(&err.to_string()));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("kubectl courier: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kubectl courier: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
