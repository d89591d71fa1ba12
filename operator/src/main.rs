#![forbid(unsafe_code)]
//! `courier-operator`: runs the Courier controllers and the worker coordinator.

use std::process::ExitCode;

use clap::Parser;
use courier_operator::app::{self, Args};

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            let first = err.to_string();
            let line = first.lines().next().unwrap_or("invalid arguments");
            eprintln!("courier-operator: {}", line.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    if let Err(err) = app::init_tracing(args.log_format, args.log_level.as_deref()) {
        eprintln!("courier-operator: {err}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("courier-operator: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "courier-operator failed");
            eprintln!("courier-operator: {err}");
            ExitCode::FAILURE
        }
    }
}
