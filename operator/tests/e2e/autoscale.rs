//! e2e against the local cluster: autoscaling by backlog (issue 18, item 3). A latency-bound
//! partner (the simulator answering after 17 ms, no limit of its own), a Destination of
//! 3,000 requests/s with 16 requests in flight per worker and 0 to 8 workers: by Little's law
//! one worker does 16 / 17 ms ≈ 940 requests/s (a little less with the network), so the limit
//! needs 4. The operator scales from 0 to that count (told in a `Scaled` Event with its
//! reason) within 45 s of the package's apply, holds it while at least that many shards are
//! leasable, never runs more workers than leasable shards, keeps them `cooldownSeconds` (10)
//! after the backlog is gone and then scales to zero. Ignored by a plain `cargo test`;
//! `make test` runs it.

use std::time::{Duration, Instant};

use crate::support::*;
use courier_e2e::sim::{Latency, SimConfig};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

const LIMIT: u64 = 3_000;
const IN_FLIGHT: u64 = 16;
const COOLDOWN_S: u64 = 10;
const FILES: usize = 10;
const PER_FILE: usize = 8_000;
/// From the package's apply to the Little's-law count: the first heartbeats that measure the
/// latency, the Deployment's scale-up, pods started on the node.
const SCALE_UP_BOUND: Duration = Duration::from_secs(45);
/// How far the package status a test reads may trail the coordinator (a status write, about a
/// second, and the reading's own half second), in seconds.
const STATUS_LAG_S: f64 = 3.0;

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Seconds since the package was applied.
    at: f64,
    replicas: i32,
    /// Shards neither completed nor failed, as the package status showed.
    leasable: i32,
    complete: bool,
}

/// Shards in run-length ranges such as `0-3,5,7-9`.
fn count_ranges(ranges: &str) -> i32 {
    ranges
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<i32>().unwrap_or(0) - a.parse::<i32>().unwrap_or(0) + 1,
            None => 1,
        })
        .sum()
}

/// The worker counts the `Scaled` Events of Destination `partner` asked for, with their notes.
fn scaled_events(cluster: &courier_e2e::cluster::Cluster, ns: &str) -> Vec<String> {
    let out = cluster.kubectl_ok(
        &[
            "-n",
            ns,
            "get",
            "events",
            "--field-selector",
            "reason=Scaled,involvedObject.name=partner",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ],
        None,
    );
    out.lines().map(str::to_owned).collect()
}

/// (capacity per worker, workers needed) out of a note "… at C rps per worker needs N; …".
fn littles_law(note: &str) -> Option<(u64, i32)> {
    let (_, rest) = note.split_once(" at ")?;
    let (capacity, rest) = rest.split_once(" rps per worker needs ")?;
    let needed = rest.split(';').next()?;
    Some((capacity.trim().parse().ok()?, needed.trim().parse().ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn workers_scale_from_zero_to_littles_law_hold_and_return_to_zero_after_the_cooldown() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let sim_config = SimConfig { latency: Latency::Fixed { ms: 17.0 }, ..SimConfig::default() };
    let workers = format!("{{ min: 0, max: 8, cooldownSeconds: {COOLDOWN_S}, maxInFlightPerWorker: {IN_FLIGHT} }}");
    let destination =
        |url: &str| destination_yaml_with("partner", url, &format!("{{ requestsPerSecond: {LIMIT} }}"), &workers, "");
    let ground = start_ground("op-scale", sim_config, destination, (FILES, PER_FILE)).await;
    let Ground { cluster, ns, client, operator, sim, ids, .. } = &ground;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let replicas = || async {
        deployments.get_opt("courier-worker-partner").await.ok().flatten().and_then(|d| d.spec?.replicas).unwrap_or(0)
    };
    assert_eq!(replicas().await, 0, "no worker before there is a package");

    ground.apply_package("p", "").await;
    let applied = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let deadline = applied + Duration::from_secs(240);
    loop {
        assert!(Instant::now() < deadline, "not back to zero workers in 240 s: {samples:?}");
        let status = package(client, ns, "p").await.status.unwrap_or_default();
        let shards = &status.shards;
        let failed = shards.failed.len() as i32;
        let sample = Sample {
            at: applied.elapsed().as_secs_f64(),
            replicas: replicas().await,
            leasable: shards.total - count_ranges(&shards.completed) - failed,
            complete: status.phase == Some(courier_api::package::PackagePhase::Complete),
        };
        samples.push(sample);
        if sample.complete && sample.replicas == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_condition(cluster, client, ns, "p", "Complete", operator).await;
    assert_exactly_once(sim, ids);

    let events = scaled_events(cluster, ns);
    eprintln!("Scaled events:\n  {}", events.join("\n  "));
    let timeline: Vec<String> = samples.iter().map(|s| format!("{:.1}s:{}/{}", s.at, s.replicas, s.leasable)).collect();
    eprintln!("replicas/leasable: {}", timeline.join(" "));

    // The count Little's law asks for, as the operator measured it, in every Event that gives it.
    let figures: Vec<(u64, i32)> = events.iter().filter_map(|n| littles_law(n)).collect();
    assert!(!figures.is_empty(), "no Scaled event with a Little's-law reason: {events:?}");
    for &(capacity, needed) in &figures {
        assert!(
            (750..=1_000).contains(&capacity),
            "{IN_FLIGHT} in flight at 17 ms is 16 / 0.017 s ≈ 940/s per worker, a little less with the network (a p50 above 21.3 ms would need 5): {capacity}"
        );
        assert_eq!(i64::from(needed), LIMIT.div_ceil(capacity) as i64, "needed = ⌈limit / capacity⌉");
    }
    let needed = 4;
    assert!(figures.iter().all(|f| f.1 == needed), "3,000/s at 750..1,000/s per worker needs 4: {figures:?}");

    // Reached within the bound, and held while at least that many shards were leasable.
    let reached =
        samples.iter().find(|s| s.replicas == needed).unwrap_or_else(|| panic!("never {needed} workers: {timeline:?}"));
    assert!(reached.at <= SCALE_UP_BOUND.as_secs_f64(), "{needed} workers only {:.1} s after the apply", reached.at);
    // The package status trails the coordinator by a status write and a reading: a sample is
    // judged only while the status still shows that many leasable shards STATUS_LAG_S later.
    let backlog_lasts = |s: &Sample| {
        samples
            .iter()
            .filter(|r| r.at >= s.at && r.at - s.at <= STATUS_LAG_S)
            .all(|r| r.leasable >= needed && !r.complete)
    };
    let held: Vec<&Sample> = samples.iter().filter(|s| s.at > reached.at && backlog_lasts(s)).collect();
    assert!(held.len() >= 10, "too short a plateau to judge: {timeline:?}");
    let off: Vec<String> =
        held.iter().filter(|s| s.replicas != needed).map(|s| format!("{:.1}s:{}", s.at, s.replicas)).collect();
    assert!(off.is_empty(), "not held at {needed} while the backlog lasted: {off:?}");

    // Never more workers than leasable shards (the status a second or two behind: the most
    // leasable shards of the last STATUS_LAG_S bound each reading).
    for (i, s) in samples.iter().enumerate() {
        let recent = samples[..=i].iter().rev().take_while(|r| s.at - r.at <= STATUS_LAG_S).map(|r| r.leasable).max();
        let bound = recent.unwrap_or(s.leasable).max(1);
        assert!(
            s.replicas <= bound || s.leasable == 0,
            "{} workers with {bound} leasable shards at {:.1} s",
            s.replicas,
            s.at
        );
    }

    // The cooldown: workers kept `cooldownSeconds` after the backlog was gone, then zero.
    let idle = samples.iter().find(|s| s.at > reached.at && s.leasable == 0).map(|s| s.at).expect("the backlog ended");
    let zero = samples.iter().find(|s| s.at > idle && s.replicas == 0).map(|s| s.at).expect("zero workers");
    let kept = zero - idle;
    eprintln!("backlog gone at {idle:.1} s, zero workers at {zero:.1} s: kept {kept:.1} s (cooldown {COOLDOWN_S} s)");
    assert!(kept >= COOLDOWN_S as f64 - 2.0, "scaled to zero {kept:.1} s after the backlog, before the cooldown");
    assert!(kept <= COOLDOWN_S as f64 + 15.0, "still {kept:.1} s after the backlog, well past the cooldown");
    eventually(Duration::from_secs(60), "worker pods gone", || async {
        let out =
            cluster.kubectl_ok(&["-n", ns, "get", "pods", "-l", "courier.dev/destination=partner", "-o", "name"], None);
        out.trim().is_empty().then_some(())
    })
    .await;
    teardown(cluster, ns);
}
