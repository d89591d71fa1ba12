#![forbid(unsafe_code)]
//! Writes the CRD YAML under crds/generated/ and docs/api.md from the API types.
//! `crdgen --check` only compares and exits 1 when a file is stale.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("crdgen: unexpected argument {other:?}; usage: crdgen [--check]");
            return ExitCode::from(2);
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = match courier_api::generate::generated_files() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = 0;
    for file in files {
        let path = root.join(&file.path);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == file.content {
            continue;
        }
        stale += 1;
        if check {
            eprintln!("stale: {}", file.path);
            continue;
        }
        if let Some(dir) = path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            eprintln!("crdgen: failed to create {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::write(&path, &file.content) {
            eprintln!("crdgen: failed to write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", file.path);
    }
    if check && stale > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
