#![forbid(unsafe_code)]
//! The `courier-worker` binary.

fn main() -> std::process::ExitCode {
    courier_worker::cli::main()
}
