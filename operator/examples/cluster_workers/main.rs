//! Many workers of one Destination in the local cluster (issue 18, items 1 and 2), through the
//! real operator (its image, as a pod), its coordinator and worker pods on the node, reading
//! MiniDFS and sending to the partner simulator on the node IP:
//!
//! 1. **Throughput scales with workers**: a partner answering after 20 ms, no limit; N = 1..4
//!    workers, each with 32 requests in flight (Little's law: 1,600/s each). Goal:
//!    throughput(N) ≥ 0.95 · N · throughput(1).
//! 2. **One exact limit across workers**: a strict partner (its bucket holds limit/100) and the
//!    Destination's limit the same; limits 1k–50k shared by 1–4 workers. Per row: the steady
//!    rate against the limit, the busiest sliding second, the busiest 100 ms bin against its
//!    even share, 429s, the per-second CV, and how evenly the workers split it.
//! 3. **Churn at one limit**: 10k/s, two workers; a third added, the limit lowered to 7k, one
//!    removed — the sum of the shares the workers enforce (sampled from their metrics every
//!    100 ms) against the limit in force, and the partner's busiest second in each phase.
//!
//! Every run checks that each record was accepted once and the status counters are exact.
//!
//! `cargo run --release -p courier-operator --example cluster_workers -- [--quick] [--only PART]
//! [--files N] [--workers N,M] [--out F]`
//! with the ground up (`e2e/scripts/lib.sh` start_ground, or `make cluster-up`); `e2e/bench/workers.sh`
//! does all of it. Prints Markdown tables and, with `--out`, writes them there.

#[path = "../../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

mod runs;
mod shares;

use std::fmt::Write as _;
use std::process::ExitCode;

use runs::{Bench, ChurnFigures, RowFigures};

/// What to run.
struct Args {
    quick: bool,
    out: Option<String>,
    /// Only this part: `latency`, `limits` or `churn`.
    only: Option<String>,
    /// Files (one shard each) per package.
    files: usize,
    /// Only these worker counts (latency and limit rows).
    workers: Option<Vec<u32>>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut parsed = Args { quick: false, out: None, only: None, files: runs::FILES, workers: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => parsed.quick = true,
            "--out" => parsed.out = Some(it.next().ok_or("--out wants a file name")?.clone()),
            "--only" => match it.next().map(String::as_str) {
                Some(part @ ("latency" | "limits" | "churn")) => parsed.only = Some(part.to_owned()),
                other => return Err(format!("--only wants latency, limits or churn, not {other:?}")),
            },
            "--files" => {
                let n = it.next().ok_or("--files wants a number")?;
                parsed.files =
                    n.parse().ok().filter(|n| *n > 0).ok_or(format!("--files wants a positive number, not {n:?}"))?;
            }
            "--workers" => {
                let list = it.next().ok_or("--workers wants a list such as 1,2")?;
                let counts: Result<Vec<u32>, _> = list.split(',').map(str::parse).collect();
                parsed.workers = Some(
                    counts
                        .ok()
                        .filter(|c| !c.is_empty() && c.iter().all(|n| (1..=8).contains(n)))
                        .ok_or(format!("--workers wants counts 1-8 separated by commas, not {list:?}"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (wanted --quick, --only PART, --files N, --workers N,M, --out FILE)"
                ));
            }
        }
    }
    Ok(parsed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cluster_workers: {e}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let bench = Bench::start(args.files).await;
    let chosen = |n: &u32| args.workers.as_ref().is_none_or(|w| w.contains(n));

    let runs = |part: &str| args.only.as_deref().is_none_or(|only| only == part);
    let workers: &[u32] = match (runs("latency"), args.quick) {
        (false, _) => &[],
        (true, true) => &[1, 2],
        (true, false) => &[1, 2, 3, 4],
    };
    let mut scaling = Vec::new();
    for &n in workers.iter().filter(|n| chosen(n)) {
        let records = if args.quick { 20_000 } else { 40_000 } * n as usize;
        scaling.push(bench.latency_bound(n, records).await);
    }

    let limits: &[(u32, &[u32])] = match (runs("limits"), args.quick) {
        (false, _) => &[],
        (true, true) => &[(1_000, &[1, 2]), (10_000, &[2])],
        (true, false) => &[(1_000, &[1, 2, 4]), (10_000, &[1, 2, 4]), (30_000, &[1, 2, 4]), (50_000, &[2, 4])],
    };
    let seconds = if args.quick { 8 } else { 15 };
    let mut exact = Vec::new();
    for &(limit, counts) in limits {
        for &n in counts.iter().filter(|n| chosen(n)) {
            exact.push(bench.at_limit(limit, n, seconds).await);
        }
    }
    let churn = if runs("churn") { Some(bench.churn(if args.quick { 5 } else { 8 }).await) } else { None };
    bench.finish();

    let report = report(&scaling, &exact, &churn, args.files, started.elapsed().as_secs());
    println!("{report}");
    if let Some(path) = args.out {
        if let Err(e) = std::fs::write(&path, &report) {
            eprintln!("cluster_workers: cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("written to {path}");
    }
    ExitCode::SUCCESS
}

fn report(
    scaling: &[RowFigures],
    exact: &[RowFigures],
    churn: &Option<ChurnFigures>,
    files: usize,
    secs: u64,
) -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut out = format!(
        "# Many workers of one Destination, in the cluster\n\n\
         Generated by `e2e/bench/workers.sh` (`operator/examples/cluster_workers`) on {date}, on this \
         2-core machine: the operator and worker pods on the local kubelet node, MiniDFS and the \
         partner simulator (in the bench process) on the node IP; {files} files (one shard each) per \
         package. The whole run took {secs} s.\n\
         Every row delivered each record exactly once, with exact counters in status (else the \
         bench stops).\n\n"
    );
    if !scaling.is_empty() {
        out.push_str(&runs::scaling_table(scaling));
        out.push('\n');
    }
    if !exact.is_empty() {
        out.push_str(&runs::limit_table(exact));
        out.push('\n');
    }
    if let Some(churn) = churn {
        out.push_str(&runs::churn_table(churn));
    }
    let _ = writeln!(out);
    out
}
