//! SIGTERM in the middle of `courier-worker run`: the run drains and exits 0, its checkpoint
//! never passes a record the partner did not accept, and a second run from the checkpoint file
//! completes the package with duplicates only for the records in flight at the signal.

use std::collections::HashMap;
use std::time::Duration;

use crate::run_support::*;
use courier_e2e::fixtures::{FixtureSet, Format};
use courier_e2e::sim::{Latency, SimConfig, Simulator};
use courier_worker::request::idempotency_key;

const MAX_IN_FLIGHT: u32 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_checkpoints_only_accepted_records_and_a_resumed_run_completes_the_package() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let config = SimConfig { latency: Latency::Fixed { ms: 5.0 }, ..SimConfig::default() };
    let sim = Simulator::start("127.0.0.1:0", config).await.expect("simulator starts");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let set = FixtureSet::standard(3000).expect("fixtures render");
    let file = set.file("users.jsonl").expect("jsonl fixture");
    let path = dir.join("users.jsonl");
    std::fs::write(&path, &file.bytes).expect("writes fixture");
    let data = format!("file://{}", path.display());
    let offsets = line_offsets(&file.bytes);
    let valid: Vec<(u64, String)> = offsets
        .iter()
        .enumerate()
        .filter(|(i, _)| !file.malformed_lines.contains(i))
        .map(|(_, off)| (*off, idempotency_key(NAMESPACE, "local", &data, *off)))
        .collect();
    let destination = write(dir, "d.yaml", &destination_yaml(&sim.url(), 500, MAX_IN_FLIGHT, ""));
    let datum = write(dir, "x.yaml", &datum_yaml(Format::JsonLines));
    let checkpoint = dir.join("progress.json").display().to_string();
    let dead = format!("file://{}", dir.join("dead").display());
    let args = [
        "run",
        "--destination",
        &destination,
        "--datum",
        &datum,
        "--source",
        &data,
        "--namespace",
        NAMESPACE,
        "--dead-letter",
        &dead,
        "--json-summary",
        "--progress",
        "never",
        "--shard-bytes",
        "60000",
        "--checkpoint-file",
        &checkpoint,
    ];

    let child = tokio::process::Command::new(binary())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("courier-worker starts");
    let pid = child.id().expect("running").to_string();
    for _ in 0..200 {
        if sim.stats().accepted >= 600 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(status.success());
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("drains within 30 s")
        .expect("exit status");
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let first = summary(&output);
    assert_eq!(first["interrupted"], true, "{first}");
    let sent_first = count(&first, "recordsSent");
    assert!(sent_first < valid.len() as u64, "stopped before the end: {first}");

    let accepted = sim.keys();
    let progress: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).expect("checkpoint file written")).expect("JSON");
    let mut below_checkpoints = 0;
    for shard in progress["shards"].as_array().expect("shards") {
        let start = shard["shard"]["start"].as_u64().expect("byte range");
        let end = shard["checkpoint"].as_u64().expect("checkpoint");
        for (offset, key) in &valid {
            if (start..end).contains(offset) {
                below_checkpoints += 1;
                assert!(accepted.contains_key(key), "record at {offset} is below a checkpoint but was never accepted");
            }
        }
    }
    assert!(below_checkpoints > 0, "some progress was checkpointed");

    let output = run(&args).await;
    assert_eq!(output.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let second = summary(&output);
    assert_eq!(second["interrupted"], false);
    let accepted: HashMap<String, u32> = sim.keys();
    for (offset, key) in &valid {
        assert!(accepted.contains_key(key), "record at {offset} never arrived");
    }
    assert_eq!(accepted.len(), valid.len());
    let duplicates: u32 = accepted.values().map(|n| n - 1).sum();
    assert!(duplicates <= MAX_IN_FLIGHT, "{duplicates} duplicates, more than the {MAX_IN_FLIGHT} in flight");
    assert_eq!(count(&second, "recordsSent"), valid.len() as u64 + u64::from(duplicates));
}
