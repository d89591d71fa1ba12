//! Writes the fuzz targets' seed inputs as a libFuzzer corpus: `cargo run -p courier-worker
//! --example fuzz_seeds -- fuzz/corpus` (e2e/scripts/fuzz.sh does it before fuzzing).

#[path = "../tests/integration/fuzz_support/mod.rs"]
mod fuzz_support;

use std::path::Path;

use courier_worker::fuzzing::RecordFormat;

fn write(dir: &Path, target: &str, seeds: &[Vec<u8>]) -> std::io::Result<()> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir)?;
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), seed)?;
    }
    Ok(())
}

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: fuzz_seeds CORPUS_DIR");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    // The records target takes the format's index first.
    let records: Vec<Vec<u8>> = RecordFormat::ALL
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut seed = vec![u8::try_from(i).unwrap_or(0)];
            seed.extend(fuzz_support::record_seed(*f));
            seed
        })
        .collect();
    let all = [
        ("http_response", fuzz_support::response_seeds()),
        ("body_decoder", fuzz_support::body_seeds()),
        ("records", records),
        ("request_template", fuzz_support::template_seeds()),
    ];
    for (target, seeds) in all {
        if let Err(e) = write(dir, target, &seeds) {
            eprintln!("error: cannot write the seeds of {target} under {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}
