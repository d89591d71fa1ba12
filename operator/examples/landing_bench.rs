//! Benchmark of the landing loop's own work for one Datum over a day: `FILES` files land in
//! `BATCHES` batches (a 5-minute window over 24 h) into a `file://` landing directory; at each
//! batch the whole path is listed, the listing observed and assessed against the ledger, a
//! batch cut for two Destinations and written to a real ledger directory, each package's
//! outcome written, and snapshots taken as the operator does. Prints a table (Markdown) and,
//! with `--out <file>`, writes it there (docs/benchmarks-landing.md).
//!
//! `cargo run --release -p courier-operator --example landing_bench -- [--files N] [--batches B] [--out F]`

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use courier_operator::controller::landing::batch::{self, CutInput};
use courier_operator::controller::landing::ledger::{Entry, Ledger, OutcomeEntry, PackageEnd};
use courier_operator::controller::landing::rules::{self, Observations, Rules};
use courier_operator::controller::landing::store::Store;
use courier_source::Source;
use support::{arg, memory_mib};

const DIRS: usize = 100;
const DESTS: [&str; 2] = ["partner-a", "partner-b"];

fn dir_bytes(dir: &std::path::Path) -> (usize, u64, u64) {
    let mut entries = 0;
    let mut bytes = 0;
    let mut snapshot = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        entries += 1;
        bytes += len;
        if e.file_name().to_string_lossy().starts_with("snapshot") {
            snapshot = snapshot.max(len);
        }
    }
    (entries, bytes, snapshot)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let files: usize = arg(&args, "--files").map_or(Ok(100_000), |v| v.parse())?;
    let batches: usize = arg(&args, "--batches").map_or(Ok(288), |v| v.parse())?.max(1);
    let out = arg(&args, "--out");
    let tmp = tempfile::tempdir()?;
    let land = tmp.path().join("landing");
    let ledger_dir = tmp.path().join("ledger");
    let pattern = format!("file://{}/d*/*.jsonl", land.display());
    let rules = Rules {
        settle_ms: 0,
        open_timeout_ms: 0,
        marker: None,
        max_file_attempts: 3,
        literal_prefix: format!("file://{}/", land.display()),
    };
    for d in 0..DIRS {
        std::fs::create_dir_all(land.join(format!("d{d:03}")))?;
    }
    let source = Source::for_url(&pattern)?;
    let store = Store::new(&format!("file://{}", ledger_dir.display()))?;
    let mut ledger: Ledger = store.load().await?;
    let mut obs = Observations::new();
    let mut last_snapshot = 0;
    let dests: Vec<String> = DESTS.iter().map(|d| (*d).to_owned()).collect();
    let (rss_start, _) = memory_mib();

    let (mut list_total, mut assess_total, mut write_total, mut snapshot_total) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut list_last, mut assess_last, mut snapshot_max) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut snapshots, mut landed, mut listed_last) = (0, 0, 0);
    let started = Instant::now();
    for b in 0..batches {
        // This window's files land.
        let upto = files * (b + 1) / batches;
        for f in landed..upto {
            std::fs::write(land.join(format!("d{:03}/part-{f:07}.jsonl", f % DIRS)), b"{\"id\":1}\n")?;
        }
        landed = upto;
        let now = (b as u64 + 1) * 300_000;

        let t = Instant::now();
        let listing = source.list_status(&pattern).await?;
        list_last = t.elapsed();
        list_total += list_last;
        listed_last = listing.len();

        let t = Instant::now();
        rules::observe(&mut obs, &listing, now);
        let a = rules::assess(&ledger, &listing, &obs, &HashSet::new(), &rules, now);
        assess_last = t.elapsed();
        assess_total += assess_last;

        let t = Instant::now();
        let entry = batch::cut(&CutInput {
            datum: "clicks",
            destinations: &dests,
            batch: ledger.next_batch,
            ready: &a.ready,
            retry: &a.retry,
            missing: &[],
            max_files: 500,
            now_ms: now,
        });
        if !store.append(&mut ledger, &Entry::Batch(entry)).await? {
            return Err("lost an append with a single writer".into());
        }
        let open: Vec<_> = ledger.open.iter().map(|(n, p)| (n.clone(), p.clone())).collect();
        for (package, p) in open {
            let outcome = Entry::Outcome(OutcomeEntry {
                batch: p.batch,
                destination: p.destination,
                package,
                at_ms: now,
                end: PackageEnd::Complete,
                records_sent: p.files.len() as u64,
                retry: Vec::new(),
                failed: Vec::new(),
            });
            store.append(&mut ledger, &outcome).await?;
        }
        write_total += t.elapsed();

        let t = Instant::now();
        if ledger.next_entry >= last_snapshot + courier_operator::controller::landing::store::SNAPSHOT_EVERY {
            let listed: HashSet<&str> = listing.iter().map(|f| f.url.as_str()).collect();
            ledger.forget_gone(&|url| listed.contains(url));
            if store.maybe_snapshot(&ledger, last_snapshot).await? {
                last_snapshot = ledger.next_entry;
                snapshots += 1;
                snapshot_max = snapshot_max.max(t.elapsed());
            }
        }
        snapshot_total += t.elapsed();
    }
    let day = started.elapsed();
    let (rss_end, hwm) = memory_mib();
    let t = Instant::now();
    let reloaded = store.load().await?;
    let reload = t.elapsed();
    let (entries, bytes, snapshot_bytes) = dir_bytes(&ledger_dir);
    let delivered = reloaded.files_delivered;

    let mut table = String::new();
    table.push_str("| measure | value |\n|---|---|\n");
    let rows: Vec<(String, String)> = vec![
        (
            "files landed / listed at the end / delivered (ledger)".into(),
            format!("{files} / {listed_last} / {delivered}"),
        ),
        ("batches (2 Destinations, ≤ 500 files per package)".into(), format!("{batches}")),
        ("listing the landing path, last batch (all files)".into(), ms(list_last)),
        ("observe + assess against the ledger, last batch".into(), ms(assess_last)),
        ("all listings / all assessments over the day".into(), format!("{} / {}", ms(list_total), ms(assess_total))),
        (
            "ledger writes over the day (batch + outcome entries)".into(),
            format!("{} ({} entries)", ms(write_total), reloaded.next_entry),
        ),
        (
            "snapshots: count / slowest / all".into(),
            format!("{snapshots} / {} / {}", ms(snapshot_max), ms(snapshot_total)),
        ),
        (
            "ledger directory at the end: files / bytes / largest snapshot".into(),
            format!(
                "{entries} / {:.1} MiB / {:.1} MiB",
                bytes as f64 / 1_048_576.0,
                snapshot_bytes as f64 / 1_048_576.0
            ),
        ),
        ("a new leader reading the ledger (snapshot + entries)".into(), ms(reload)),
        (
            "memory: RSS at start / at the end / peak (VmHWM)".into(),
            format!("{rss_start:.1} / {rss_end:.1} / {hwm:.1} MiB"),
        ),
        ("whole day, including writing the files".into(), format!("{:.1} s", day.as_secs_f64())),
    ];
    for (k, v) in rows {
        table.push_str(&format!("| {k} | {v} |\n"));
    }
    println!("{table}");
    if let Some(out) = out {
        let doc = format!(
            "# Landing benchmark (issue 17)\n\n`cargo run --release -p courier-operator --example landing_bench -- --out docs/benchmarks-landing.md`\n\nOne Datum's landing work over a day: {files} files land in {batches} batches into a `file://`\ndirectory of {DIRS} subdirectories; at each batch the whole path is listed, observed and\nassessed against the ledger, the batch is cut for 2 Destinations and written to a ledger\ndirectory on local disk, each package's outcome (Complete) written, snapshots taken every 100\nentries as the operator does. No Kubernetes objects are created (the package objects' cost is\nin benchmarks-operator.md); HDFS would add the namenode's round trips to the listing and to\neach entry's create + rename. Machine: {}, {} cores.\n\n{table}\n",
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned()))
                .unwrap_or_default(),
            std::thread::available_parallelism().map_or(1, usize::from),
        );
        std::fs::write(&out, doc)?;
        eprintln!("wrote {out}");
    }
    Ok(())
}
