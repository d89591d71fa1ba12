//! A bounded run of every fuzz target (`courier_worker::fuzzing`) on stable Rust: valid seeds
//! (answers a partner could give, the fixture files of every format, request templates)
//! mutated at random — bytes flipped, inserted, removed, the input cut short — and plain
//! random bytes. `make test` runs it; `COURIER_FUZZ_CASES=N` runs N cases per target (default: 96
//! per record format, 1,024–2,048 for the others); `make fuzz` runs the same targets under libFuzzer for longer (e2e/scripts/fuzz.sh).

use crate::fuzz_support::{body_seeds, record_seed, response_seeds, template_seeds};
use courier_e2e::fixtures::set::FixtureSet;
use courier_worker::fuzzing::{self, RecordFormat};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases(default: u32) -> u32 {
    std::env::var("COURIER_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One edit of a seed.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Cut(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Flip(at, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Edit::Remove(at, n)),
        any::<usize>().prop_map(Edit::Cut),
    ]
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for e in edits {
        let len = out.len().max(1);
        match e {
            Edit::Flip(at, b) if !out.is_empty() => out[at % len] ^= b | 1,
            Edit::Flip(..) => {}
            Edit::Insert(at, bytes) => {
                let at = at % (out.len() + 1);
                out.splice(at..at, bytes.iter().copied());
            }
            Edit::Remove(at, n) if !out.is_empty() => {
                let at = at % len;
                let end = (at + n).min(out.len());
                out.drain(at..end);
            }
            Edit::Remove(..) => {}
            Edit::Cut(at) => out.truncate(at % (out.len() + 1)),
        }
    }
    out
}

/// Seeds mutated by 0–4 edits, or random bytes.
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        4 => (0..n, proptest::collection::vec(edit(), 0..5)).prop_map(move |(i, edits)| apply(&seeds[i], &edits)),
        1 => proptest::collection::vec(any::<u8>(), 0..512),
    ]
}

fn run(name: &str, default_cases: u32, seeds: Vec<Vec<u8>>, target: impl Fn(&[u8])) {
    let config = Config { cases: cases(default_cases), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    runner
        .run(&inputs(seeds), |data| {
            target(&data);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("fuzz target {name}: {e}"));
}

#[test]
fn the_response_parser_survives_any_answer() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    run("http_response", 2048, response_seeds(), fuzzing::http_response);
}

#[test]
fn the_body_decoder_survives_any_body() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    run("body", 2048, body_seeds(), fuzzing::body);
}

#[test]
fn every_record_decoder_survives_any_file() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    for format in RecordFormat::ALL {
        let seeds = vec![record_seed(format), Vec::new()];
        run(&format!("records {format:?}"), 96, seeds, |data| {
            fuzzing::records(format, data);
        });
    }
}

#[test]
fn inputs_the_fuzzing_found_are_unreadable_files_not_panics() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // A footer with a negative column chunk offset: the parquet crate asserts on it
    // (found by every_record_decoder_survives_any_file in a make test run).
    let found = include_bytes!("fuzz_support/parquet-negative-column-chunk.bin");
    let tally = fuzzing::records(RecordFormat::Parquet, found);
    assert!(tally.unreadable, "reported as an unreadable file: {tally:?}");
}

#[test]
fn the_seeds_read_cleanly_so_the_mutations_start_from_valid_files() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let set = FixtureSet::standard(40).expect("fixtures");
    for (format, name) in [(RecordFormat::Parquet, "users.parquet"), (RecordFormat::Avro, "users.avro")] {
        let tally = fuzzing::records(format, &set.file(name).expect("fixture").bytes);
        assert_eq!((tally.records, tally.malformed, tally.unreadable), (40, 0, false), "{name}");
    }
    let truncated = {
        let gz = &set.file("users.jsonl.gz").expect("fixture").bytes;
        gz[..gz.len() / 2].to_vec()
    };
    let tally = fuzzing::records(RecordFormat::JsonLinesGzip, &truncated);
    assert!(tally.unreadable, "a truncated gzip file is reported unreadable: {tally:?}");
}

#[test]
fn the_template_renderer_survives_any_template_and_record() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    run("template", 1024, template_seeds(), fuzzing::template);
}
