//! Shared helpers of the `run_*` and `pipeline_*` tests: manifests users would write, the
//! binary, fixture files with the idempotency keys their records must arrive with.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use courier_e2e::fixtures::{FIELDS, FixtureFile, Format};
use courier_worker::request::idempotency_key;

pub const NAMESPACE: &str = "tests";

/// A Destination manifest aimed at `url`.
pub fn destination_yaml(url: &str, rps: u32, max_in_flight: u32, extra: &str) -> String {
    format!(
        "apiVersion: courier.dev/v1alpha1\nkind: Destination\nmetadata:\n  name: partner\n  namespace: {NAMESPACE}\nspec:\n  endpoint:\n    url: {url}/ingest\n    timeoutMillis: 5000\n  rateLimit:\n    requestsPerSecond: {rps}\n  retryPolicy:\n    maxAttempts: 5\n    backoff: {{initialMillis: 20, maxMillis: 200}}\n  workers:\n    maxInFlightPerWorker: {max_in_flight}\n{extra}"
    )
}

/// The Datum manifest body (format block) for a fixture format.
pub fn datum_yaml(format: Format) -> String {
    let format_block = match format {
        Format::JsonLines => "    type: JsonLines\n".to_owned(),
        Format::Csv => "    type: Csv\n    csv: {header: true}\n".to_owned(),
        Format::Tsv => format!("    type: Tsv\n    csv: {{header: false}}\n    fields: [{}]\n", FIELDS.join(", ")),
        Format::Parquet => "    type: Parquet\n".to_owned(),
        Format::Avro => "    type: Avro\n".to_owned(),
    };
    format!(
        "apiVersion: courier.dev/v1alpha1\nkind: Datum\nmetadata:\n  name: users\n  namespace: {NAMESPACE}\nspec:\n  format:\n{format_block}"
    )
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("test file is writable");
    path.display().to_string()
}

/// Byte offsets of the lines of a text file (the record offsets of plain JSON lines).
pub fn line_offsets(bytes: &[u8]) -> Vec<u64> {
    let mut offsets = Vec::new();
    let mut start = 0usize;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'\n' {
            if i > start {
                offsets.push(start as u64);
            }
            start = i + 1;
        }
    }
    if start < bytes.len() {
        offsets.push(start as u64);
    }
    offsets
}

/// The idempotency keys the valid records of a plain JSON-lines fixture must arrive with.
pub fn jsonl_keys(package: &str, url: &str, file: &FixtureFile) -> Vec<String> {
    let offsets = line_offsets(&file.bytes);
    offsets
        .iter()
        .enumerate()
        .filter(|(i, _)| !file.malformed_lines.contains(i))
        .map(|(_, off)| idempotency_key(NAMESPACE, package, url, *off))
        .collect()
}

/// The `courier-worker` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_courier-worker"))
}

/// Runs the binary with `args` to completion.
pub async fn run(args: &[&str]) -> Output {
    tokio::process::Command::new(binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("COURIER_AUTH_TOKEN")
        .kill_on_drop(true)
        .output()
        .await
        .expect("courier-worker starts")
}

/// The JSON summary a `--json-summary` run printed.
pub fn summary(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no summary on stdout; stderr: {}", String::from_utf8_lossy(&output.stderr)));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("summary {line:?} is not JSON: {e}"))
}

/// Every JSON line of every file under a local dead-letter directory.
pub fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("dead-letter file is readable");
        for line in text.lines() {
            out.push(serde_json::from_str(line).expect("dead letters are JSON lines"));
        }
    }
    out
}

/// Reads a counter of the summary.
pub fn count(summary: &serde_json::Value, field: &str) -> u64 {
    summary[field].as_u64().unwrap_or_else(|| panic!("summary has no {field}: {summary}"))
}

/// Delivers `source` (a URL or glob) in-process, the way `courier-worker run` does, and returns
/// the coordinator's totals.
pub async fn deliver_locally(
    source_url: &str,
    datum_yaml_text: &str,
    destination_yaml_text: &str,
    package: &str,
    dead_letter_dir: &str,
    shard_bytes: u64,
) -> courier_worker::coordinator::LocalSummary {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use courier_core::datum::DatumSettings;
    use courier_core::destination::DestinationSettings;
    use courier_worker::config::{self, SecretStore};
    use courier_worker::coordinator::{Driver, DriverConfig, DriverEnd, LocalCoordinator, LocalPlan};
    use courier_worker::metrics::Metrics;
    use courier_worker::pipeline::Pipeline;
    use courier_worker::protocol::RateShare;
    use courier_worker::shard::plan_shards;
    use courier_worker::source::Source;

    let dir = tempfile::tempdir().expect("tempdir");
    let destination =
        config::load_destination(&write(dir.path(), "d.yaml", destination_yaml_text)).expect("Destination");
    let datum = config::load_datum(&write(dir.path(), "x.yaml", datum_yaml_text)).expect("Datum");
    let destination_settings = DestinationSettings::from(&destination.spec);
    let datum = DatumSettings::from(&datum.spec);
    let send = config::send_config(&destination_settings, &SecretStore::empty()).expect("send config");
    let rate = config::rate_of(&destination_settings);
    let metrics = Arc::new(Metrics::new("partner"));
    let pipeline = Pipeline::new("test-worker", &send, Some(rate), metrics, std::time::Duration::from_millis(100))
        .expect("pipeline");
    let source = Source::for_url(source_url).expect("source");
    let format = config::format_spec(&datum);
    let files = source.list(source_url).await.expect("lists the source");
    let shards = plan_shards(&files, &format, shard_bytes);
    let plan = LocalPlan {
        source: source_url.to_owned(),
        shards,
        datum,
        namespace: NAMESPACE.to_owned(),
        package: package.to_owned(),
        dead_letter_dir: dead_letter_dir.to_owned(),
        share: RateShare {
            requests_per_second: u32::try_from(rate.per_second).unwrap_or(u32::MAX),
            burst: u32::try_from(rate.burst).unwrap_or(u32::MAX),
            bytes_per_second: None,
            requests_today: None,
            quota: None,
            max_in_flight: u32::try_from(send.max_in_flight).unwrap_or(64),
        },
        checkpoint_file: None,
        heartbeat_interval_ms: 100,
        quota: None,
    };
    let coordinator = LocalCoordinator::new(plan).expect("coordinator");
    let driver_config = DriverConfig {
        worker: "test-worker".to_owned(),
        namespace: NAMESPACE.to_owned(),
        destination: "partner".to_owned(),
        destination_spec: Some((1, destination_settings)),
        secrets: SecretStore::empty(),
        max_leases: 3,
        drain: std::time::Duration::from_secs(5),
    };
    let mut driver = Driver::new(coordinator, pipeline, driver_config, Arc::new(AtomicBool::new(false)));
    let end = driver.run(tokio_util::sync::CancellationToken::new()).await.expect("driver runs");
    assert_eq!(end, DriverEnd::Finished);
    driver.coordinator().summary()
}
