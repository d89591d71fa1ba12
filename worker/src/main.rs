#![forbid(unsafe_code)]
//! The `courier-worker` binary.

/// mimalloc instead of the system allocator: each request allocates and frees a few dozen small
/// buffers, and glibc's malloc spent ~6 % of a core on them at line rate (docs/benchmarks-worker.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    courier_worker::cli::main()
}
