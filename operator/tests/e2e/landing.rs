//! e2e against the local cluster and MiniDFS: continuous delivery. Files land in five waves
//! while a Datum with `landing` and two Destinations is live: one file is held open for write
//! across several polls, temporary names land too, the operator process is killed (the kubelet
//! restarts it) while batches are under way, one file lands late with a day-old modification
//! time, and one file is removed after its package for partner-b was created but before that
//! package read it (partner-b suspended meanwhile): it is recorded failed with the reason, the
//! other file of its package goes into a later batch. Every record of every delivered file must
//! be accepted exactly once by each Destination's simulator, and the Datum's status, the
//! packages' counters and the ledger in HDFS must agree. Ignored by a plain `cargo test`;
//! `make test` runs it.

use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use courier_api::{Datum, DeliveryPackage};
use courier_e2e::minidfs::{Client as HdfsClient, MiniDfs, WriteOptions};
use courier_e2e::sim::SimConfig;
use kube::Api;

/// Records per landed file.
const PER_FILE: usize = 50;
/// How long the whole landing test may take to deliver everything.
const LANDING: Duration = Duration::from_secs(240);

fn lines(prefix: &str, n: usize) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut ids = Vec::new();
    for r in 0..n {
        let id = format!("{prefix}-{r}");
        text.push_str(&format!("{{\"id\":\"{id}\",\"payload\":\"{}\"}}\n", "x".repeat(20)));
        ids.push(id);
    }
    (text, ids)
}

async fn land(client: &HdfsClient, path: &str, prefix: &str) -> Vec<String> {
    let (text, ids) = lines(prefix, PER_FILE);
    courier_e2e::fixtures::write_hdfs_file(client, path, text.as_bytes(), WriteOptions::default().create_parent(true))
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"));
    ids
}

fn landing_datum_yaml(url: &str, dir: &str) -> String {
    format!(
        r#"apiVersion: courier.dev/v1alpha1
kind: Datum
metadata: {{ name: users }}
spec:
  format: {{ type: JsonLines }}
  request:
    pathTemplate: /records
    idempotencyKey: {{ header: Idempotency-Key, field: id }}
  landing:
    path: "{url}{dir}/in/*.jsonl"
    pollIntervalSeconds: 1
    settleSeconds: 2
    batchWindowSeconds: 3
    maxFilesPerPackage: 2
    ledgerPath: "{url}{dir}/ledger"
    destinations: [{{ name: partner-a }}, {{ name: partner-b }}]
    successfulPackagesHistoryLimit: 1000
    failedPackagesHistoryLimit: 1000
"#
    )
}

async fn datum(client: &kube::Client, ns: &str) -> Datum {
    Api::<Datum>::namespaced(client.clone(), ns).get("users").await.expect("get the Datum")
}

async fn landing_packages(client: &kube::Client, ns: &str) -> Vec<DeliveryPackage> {
    Api::<DeliveryPackage>::namespaced(client.clone(), ns).list(&Default::default()).await.expect("list packages").items
}

/// Every file path the packages of `dest` list.
fn packaged_paths(packages: &[DeliveryPackage], dest: &str) -> Vec<String> {
    packages
        .iter()
        .filter(|p| p.spec.destination_ref.name == dest)
        .flat_map(|p| p.spec.source.hdfs.iter().flat_map(|h| h.paths.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster (make test)"]
async fn landed_files_are_delivered_exactly_once_per_destination_across_an_operator_restart() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let (cluster, ns) = setup("op-landing");
    let client = cluster.client().await;
    let mut operator = Operator::start(&cluster, &ns);
    let sim_a = simulator(SimConfig::default()).await;
    let sim_b = simulator(SimConfig::default()).await;
    let dfs = MiniDfs::ensure_running().await.expect("MiniDFS");
    let hdfs = dfs.client().expect("an HDFS client");
    let dir = dfs.unique_dir(&hdfs, "op-landing").await.expect("a test directory");
    let url = MiniDfs::url();
    let in_dir = format!("{dir}/in");

    apply_yaml(&client, &ns, &destination_yaml("partner-a", &sim_a.url(), 500, "")).await;
    apply_yaml(&client, &ns, &destination_yaml("partner-b", &sim_b.url(), 500, "")).await;
    apply_yaml(&client, &ns, &landing_datum_yaml(&url, &dir)).await;

    // Wave 1: three files, and one held open for write.
    let mut ids = Vec::new();
    for f in 0..3 {
        ids.extend(land(&hdfs, &format!("{in_dir}/w1-{f}.jsonl"), &format!("w1-{f}")).await);
    }
    let (slow_text, slow_ids) = lines("slow", PER_FILE);
    let half = slow_text.len() / 2;
    let mut slow = hdfs
        .create(&format!("{in_dir}/slow.jsonl"), WriteOptions::default().create_parent(true))
        .await
        .expect("open slow.jsonl for write");
    slow.write_bytes(Bytes::from(slow_text.as_bytes()[..half].to_vec())).await.expect("write half of slow.jsonl");
    // Temporary names, never taken.
    land(&hdfs, &format!("{in_dir}/_tmp.jsonl"), "tmp").await;
    land(&hdfs, &format!("{in_dir}/.hidden.jsonl"), "hidden").await;
    land(&hdfs, &format!("{in_dir}/copy.jsonl._COPYING_"), "copying").await;

    let first =
        eventually(LANDING, "the first batch", || async { datum(&client, &ns).await.status?.landing?.last_batch })
            .await;
    eprintln!("first batch {first}");

    // Wave 2, then the operator is killed while its batches are under way.
    for f in 0..3 {
        ids.extend(land(&hdfs, &format!("{in_dir}/w2-{f}.jsonl"), &format!("w2-{f}")).await);
    }
    eventually(LANDING, "a batch of wave 2", || async {
        let paths = packaged_paths(&landing_packages(&client, &ns).await, "partner-a");
        paths.iter().any(|p| p.contains("w2-")).then_some(())
    })
    .await;
    operator.kill();
    let killed_sent = (sim_a.stats().accepted, sim_b.stats().accepted);
    eprintln!("operator killed with {killed_sent:?} accepted (a, b)");
    // Wave 3 lands while the operator is down or coming back.
    for f in 0..2 {
        ids.extend(land(&hdfs, &format!("{in_dir}/w3-{f}.jsonl"), &format!("w3-{f}")).await);
    }
    eventually(Duration::from_secs(90), "the operator container to come back", || async {
        (pods_ready(&cluster, &ns, "courier-operator")).then_some(())
    })
    .await;

    // slow.jsonl is still open after several polls: not taken.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let packages = landing_packages(&client, &ns).await;
    assert!(
        !packaged_paths(&packages, "partner-a").iter().any(|p| p.ends_with("slow.jsonl")),
        "a file open for write is not taken"
    );
    slow.write_bytes(Bytes::from(slow_text.as_bytes()[half..].to_vec())).await.expect("write the rest of slow.jsonl");
    slow.close().await.expect("close slow.jsonl");
    ids.extend(slow_ids);

    // Wave 4: a late file with a modification time a day old.
    let late = format!("{in_dir}/w4-late.jsonl");
    ids.extend(land(&hdfs, &late, "w4-late").await);
    let day_ago = u64::try_from(jiff::Timestamp::now().as_millisecond()).expect("after 1970") - 86_400_000;
    hdfs.set_times(&late, day_ago, day_ago + 1).await.expect("set an old mtime");

    let files = ids.len() / PER_FILE;
    let status = eventually(LANDING, "waves 1 to 4 delivered to both Destinations", || async {
        let s = datum(&client, &ns).await.status?.landing?;
        let done = s.files_delivered == files as i64
            && s.files_pending == 0
            && s.destinations.iter().all(|d| d.records_delivered == ids.len() as i64);
        done.then_some(s)
    })
    .await;
    print_status("after wave 4", &status);
    assert_exactly_once(&sim_a, &ids);
    assert_exactly_once(&sim_b, &ids);
    assert_eq!((status.files_seen, status.files_failed), (files as i64, 0), "temporary names are not counted");
    let packages = landing_packages(&client, &ns).await;
    assert!(packaged_paths(&packages, "partner-a").iter().any(|p| p.ends_with("w4-late.jsonl")), "the late file");

    // Wave 5: a file removed after its package for partner-b was created and before that
    // package read it (partner-b is suspended meanwhile; partner-a delivers it first). The
    // package fails unplanned, its other file goes into a later batch and is delivered, the
    // removed one is recorded failed with the reason once out of attempts.
    set_suspended(&client, &ns, "partner-b", true).await;
    let keep_ids = land(&hdfs, &format!("{in_dir}/w5-keep.jsonl"), "w5-keep").await;
    let gone = format!("{in_dir}/w5-gone.jsonl");
    let gone_ids = land(&hdfs, &gone, "w5-gone").await;
    eventually(LANDING, "wave 5 delivered to partner-a and packaged for partner-b", || async {
        let packages = landing_packages(&client, &ns).await;
        let in_b = packaged_paths(&packages, "partner-b").iter().any(|p| p.ends_with("w5-gone.jsonl"));
        let a_done = packages
            .iter()
            .filter(|p| p.spec.destination_ref.name == "partner-a")
            .all(|p| p.status.as_ref().and_then(|s| s.phase) == Some(courier_api::package::PackagePhase::Complete));
        (in_b && a_done && packaged_paths(&packages, "partner-a").iter().any(|p| p.ends_with("w5-gone.jsonl")))
            .then_some(())
    })
    .await;
    hdfs.delete(&gone, false).await.expect("remove w5-gone.jsonl");
    set_suspended(&client, &ns, "partner-b", false).await;
    let mut ids_a = ids.clone();
    ids_a.extend(keep_ids.iter().cloned());
    ids_a.extend(gone_ids.iter().cloned());
    let mut ids_b = ids.clone();
    ids_b.extend(keep_ids.iter().cloned());
    let status = eventually(LANDING, "w5-keep delivered to partner-b and w5-gone recorded failed", || async {
        let s = datum(&client, &ns).await.status?.landing?;
        let b = s.destinations.iter().find(|d| d.name == "partner-b")?;
        (b.files_failed == 1 && b.records_delivered == ids_b.len() as i64 && s.files_pending == 0).then_some(s)
    })
    .await;
    print_status("after wave 5", &status);
    let (stats_a, stats_b) = (sim_a.stats(), sim_b.stats());
    eprintln!(
        "simulator a accepted {} (duplicates {}), b accepted {} (duplicates {}); records a {} b {}",
        stats_a.accepted,
        stats_a.duplicates,
        stats_b.accepted,
        stats_b.duplicates,
        ids_a.len(),
        ids_b.len()
    );
    assert_exactly_once(&sim_a, &ids_a);
    assert_exactly_once(&sim_b, &ids_b);
    let a = status.destinations.iter().find(|d| d.name == "partner-a").expect("partner-a in the status");
    let b = status.destinations.iter().find(|d| d.name == "partner-b").expect("partner-b in the status");
    let all_files = files as i64 + 2;
    assert_eq!((a.files_packaged, a.files_delivered, a.files_failed), (all_files, all_files, 0), "partner-a");
    assert_eq!(a.records_delivered, ids_a.len() as i64, "partner-a records");
    assert_eq!((b.files_packaged, b.files_delivered, b.files_failed), (all_files, all_files - 1, 1), "partner-b");
    assert_eq!(b.records_delivered, ids_b.len() as i64, "partner-b records");
    let failed = b.failed_files.first().expect("the failed file with its reason");
    assert!(failed.url.ends_with("w5-gone.jsonl") && !failed.reason.is_empty(), "{failed:?}");
    assert!(failed.attempts >= 1, "{failed:?}");
    assert_eq!(status.files_failed, 1);

    // The packages: partner-a has each file in exactly one package; partner-b has w5-keep and
    // w5-gone in more than one (the retry), every other file in one. Their counters agree with
    // the simulators and the status.
    let packages = landing_packages(&client, &ns).await;
    for (dest, expected, retried) in [("partner-a", &ids_a, false), ("partner-b", &ids_b, true)] {
        let paths = packaged_paths(&packages, dest);
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for p in &paths {
            *counts.entry(p.as_str()).or_default() += 1;
        }
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).map(|(p, _)| *p).collect();
        assert_eq!(counts.len(), files + 2, "{dest}: every file packaged: {counts:?}");
        if !retried {
            assert!(repeated.is_empty(), "{dest}: each file in one package: {repeated:?}");
        } else {
            assert!(
                repeated.iter().all(|p| p.ends_with("w5-keep.jsonl")),
                "{dest}: only w5-keep packaged again: {repeated:?}"
            );
            // w5-keep shared w5-gone's package: that package failed unplanned, so w5-keep went
            // into a later batch (w5-gone, no longer listed, was not packaged again).
            let shared = packages.iter().filter(|p| p.spec.destination_ref.name == dest).any(|p| {
                let paths: Vec<String> = p.spec.source.hdfs.iter().flat_map(|h| h.paths.clone()).collect();
                paths.iter().any(|x| x.ends_with("w5-gone.jsonl")) && paths.iter().any(|x| x.ends_with("w5-keep.jsonl"))
            });
            eprintln!("{dest}: w5-keep shared w5-gone's package: {shared}; packaged again: {repeated:?}");
            if shared {
                assert_eq!(repeated.len(), 1, "{dest}: w5-keep retried in a later batch: {counts:?}");
            }
        }
        let sent: i64 = packages
            .iter()
            .filter(|p| p.spec.destination_ref.name == dest)
            .filter_map(|p| p.status.as_ref().map(|s| s.progress.records.sent))
            .sum();
        assert_eq!(sent, expected.len() as i64, "{dest}: the packages' counters");
    }

    // The ledger in HDFS (what a user reads with `hdfs dfs -cat`) agrees: every file in one
    // batch per Destination (w5 files again for partner-b), outcomes summing to the records.
    let ledger = read_ledger(&hdfs, &format!("{dir}/ledger")).await;
    for (dest, expected) in [("partner-a", &ids_a), ("partner-b", &ids_b)] {
        let sent: u64 = ledger
            .iter()
            .filter(|e| e["kind"] == "outcome" && e["destination"] == dest)
            .filter_map(|e| e["recordsSent"].as_u64())
            .sum();
        assert_eq!(sent, expected.len() as u64, "{dest}: the ledger's outcomes");
        let batched: usize = ledger
            .iter()
            .filter(|e| e["kind"] == "batch")
            .flat_map(|e| e["packages"].as_array().cloned().unwrap_or_default())
            .filter(|p| p["destination"] == dest)
            .map(|p| p["files"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(batched >= files + 2, "{dest}: the ledger's batches list every file ({batched})");
        if dest == "partner-a" {
            assert_eq!(batched, files + 2, "{dest}: each file in one batch");
        }
    }
    // w5-gone's package failed unplanned (outcome: retry w5-gone); the file was then missing
    // from the listing at every later cut, counted an attempt each time, and recorded failed in
    // the batch whose cut ran out of attempts (its `missing` entry, `failed: true`, for
    // partner-b only).
    let is_gone = |u: &serde_json::Value| u["url"].as_str().is_some_and(|s| s.ends_with("w5-gone.jsonl"));
    let retried = ledger.iter().any(|e| {
        e["kind"] == "outcome"
            && e["destination"] == "partner-b"
            && e["retry"].as_array().is_some_and(|r| r.iter().any(is_gone))
    });
    assert!(retried, "the ledger records w5-gone's failed package: retry w5-gone");
    let failed: Vec<_> = ledger
        .iter()
        .filter(|e| e["kind"] == "batch")
        .flat_map(|e| e["missing"].as_array().cloned().unwrap_or_default())
        .filter(|m| is_gone(m) && m["failed"] == true)
        .collect();
    assert_eq!(failed.len(), 1, "the ledger records w5-gone failed once: {failed:?}");
    assert_eq!(failed[0]["destination"], "partner-b", "{failed:?}");
    assert!(failed[0]["reason"].as_str().is_some_and(|r| r.contains("not in the landing listing")), "{failed:?}");
    assert!(!pods_restarted_never(&cluster, &ns, "courier-operator"), "the operator was restarted once");
    drop(operator);
}

fn print_status(when: &str, status: &courier_api::datum::LandingStatus) {
    eprintln!(
        "{when}: seen {} pending {} delivered {} failed {} lag {} s, last batch {:?}; per destination (packaged, delivered, records, failed) {:?}",
        status.files_seen,
        status.files_pending,
        status.files_delivered,
        status.files_failed,
        status.lag_seconds,
        status.last_batch,
        status
            .destinations
            .iter()
            .map(|d| (d.name.clone(), d.files_packaged, d.files_delivered, d.records_delivered, d.files_failed))
            .collect::<Vec<_>>()
    );
}

async fn set_suspended(client: &kube::Client, ns: &str, dest: &str, suspend: bool) {
    use kube::api::{Patch, PatchParams};
    Api::<courier_api::Destination>::namespaced(client.clone(), ns)
        .patch(dest, &PatchParams::default(), &Patch::Merge(serde_json::json!({ "spec": { "suspend": suspend } })))
        .await
        .unwrap_or_else(|e| panic!("suspend {dest}: {e}"));
}

/// The ledger's entries (`<12 digits>.json`) in order, as JSON.
async fn read_ledger(hdfs: &HdfsClient, dir: &str) -> Vec<serde_json::Value> {
    let mut names: Vec<String> = hdfs
        .list_status(dir, false)
        .await
        .unwrap_or_else(|e| panic!("list the ledger {dir}: {e}"))
        .into_iter()
        .map(|s| s.path)
        .filter(|p| p.rsplit('/').next().is_some_and(|n| n.len() == 17 && n.ends_with(".json")))
        .collect();
    names.sort();
    let mut entries = Vec::new();
    for path in names {
        let reader = hdfs.read(&path).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
        let bytes = reader.read_range(0, reader.file_length()).await.unwrap_or_else(|e| panic!("read {path}: {e}"));
        entries.push(serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("parse {path}: {e}")));
    }
    eprintln!("ledger {dir}: {} entries", entries.len());
    entries
}

/// Whether the pod's containers are all ready.
fn pods_ready(cluster: &courier_e2e::cluster::Cluster, ns: &str, pod: &str) -> bool {
    let out =
        cluster.kubectl(&["-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[*].ready}"], None);
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "true"
}

/// Whether the operator container never restarted.
fn pods_restarted_never(cluster: &courier_e2e::cluster::Cluster, ns: &str, pod: &str) -> bool {
    courier_e2e::pods::restart_count(cluster, ns, pod, "operator") == 0
}
