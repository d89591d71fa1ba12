//! e2e against the local cluster and MiniDFS: continuous delivery. Files land in waves while a
//! Datum with `landing` and two Destinations is live; one file is held open for write across
//! several polls, one lands late with an old modification time, temporary names land too, and
//! the operator process is killed (the kubelet restarts it) while batches are under way. Every
//! record of every landed file must be accepted exactly once by each Destination's simulator,
//! and the Datum's landing status must agree. Ignored by a plain `cargo test`; `make test`
//! runs it.

mod support;

use std::time::Duration;

use bytes::Bytes;
use courier_api::{Datum, DeliveryPackage};
use courier_e2e::minidfs::{Client as HdfsClient, MiniDfs, WriteOptions};
use courier_e2e::sim::SimConfig;
use kube::Api;
use support::*;

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
    let status = eventually(LANDING, "every landed file delivered to both Destinations", || async {
        let s = datum(&client, &ns).await.status?.landing?;
        let done = s.files_delivered == files as i64
            && s.files_pending == 0
            && s.destinations.iter().all(|d| d.records_delivered == ids.len() as i64);
        done.then_some(s)
    })
    .await;
    eprintln!(
        "landing status: seen {} pending {} delivered {} failed {} lag {} s, last batch {:?}; per destination {:?}",
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
    let (stats_a, stats_b) = (sim_a.stats(), sim_b.stats());
    eprintln!(
        "simulator a accepted {} (duplicates {}), b accepted {} (duplicates {}); {} files, {} records",
        stats_a.accepted,
        stats_a.duplicates,
        stats_b.accepted,
        stats_b.duplicates,
        files,
        ids.len()
    );
    assert_exactly_once(&sim_a, &ids);
    assert_exactly_once(&sim_b, &ids);
    assert_eq!(status.files_failed, 0);
    assert_eq!(status.files_seen, files as i64, "temporary names are not counted");
    for d in &status.destinations {
        assert_eq!(
            (d.files_packaged, d.files_delivered, d.files_failed),
            (files as i64, files as i64, 0),
            "{}",
            d.name
        );
        assert_eq!(d.records_delivered, ids.len() as i64, "{}", d.name);
    }
    // Each file is in exactly one package per Destination, and the packages' counters agree.
    let packages = landing_packages(&client, &ns).await;
    for dest in ["partner-a", "partner-b"] {
        let mut paths = packaged_paths(&packages, dest);
        let all = paths.len();
        paths.sort();
        paths.dedup();
        assert_eq!((all, paths.len()), (files, files), "{dest}: each file in one package: {paths:?}");
        let sent: i64 = packages
            .iter()
            .filter(|p| p.spec.destination_ref.name == dest)
            .filter_map(|p| p.status.as_ref().map(|s| s.progress.records.sent))
            .sum();
        assert_eq!(sent, ids.len() as i64, "{dest}: the packages' counters");
    }
    assert!(!pods_restarted_never(&cluster, &ns, "courier-operator"), "the operator was restarted once");
    drop(operator);
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
