#![forbid(unsafe_code)]
//! `courier-node`: runs the pods bound to one Node of the local cluster as local processes.

use std::io::IsTerminal as _;

use clap::Parser as _;
use courier_e2e::node::AgentConfig;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = match AgentConfig::try_parse() {
        Ok(config) => config,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return std::process::ExitCode::SUCCESS;
        }
        Err(error) => {
            let text = error.to_string();
            let summary = text.split("\n\n").next().unwrap_or("invalid arguments");
            let one_line = summary.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("courier-node: {}", one_line.trim_start_matches("error: "));
            return std::process::ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match courier_e2e::node::run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "courier-node failed");
            eprintln!("courier-node: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
