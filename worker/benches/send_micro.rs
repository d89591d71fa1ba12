//! Micro-benchmarks of the per-record CPU work: limiter decisions and request building.
//!
//! Run: `cargo bench -p courier-worker --bench send_micro`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use courier_worker::limiter::{Limiter, Rate};
use courier_worker::record::{FileRef, Payload, Record};
use courier_worker::request::{BodySpec, RequestBuilder, RequestSpec};

fn per_op(label: &str, iterations: u32, mut f: impl FnMut(u32)) {
    for i in 0..iterations / 10 {
        f(i);
    }
    let started = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("{label:<55} {ns:>8.0} ns/op  ({:.2} M/s)", 1e3 / ns);
}

fn record(i: u32) -> Record {
    let line = format!(r#"{{"id":{i},"name":"user-{i}","email":"u{i}@example.com","pad":"{}"}}"#, "x".repeat(180));
    Record {
        file: FileRef { url: Arc::from("hdfs://nn:9000/data/users/part-0.jsonl") },
        offset: u64::from(i) * 256,
        size: line.len() as u64,
        payload: Payload::JsonLine(Bytes::from(line)),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let unlimited = Limiter::unlimited();
        let started = Instant::now();
        for _ in 0..1_000_000 {
            black_box(unlimited.acquire(256).await);
        }
        println!("{:<55} {:>8.0} ns/op", "limiter acquire, unlimited", started.elapsed().as_nanos() as f64 / 1e6);

        let fast = Limiter::new(1_000_000_000, 1_000_000);
        fast.set_bytes_rate(Some(Rate::new(1 << 40, 1 << 30)));
        let started = Instant::now();
        for _ in 0..1_000_000 {
            black_box(fast.acquire(256).await);
        }
        println!(
            "{:<55} {:>8.0} ns/op",
            "limiter acquire, requests + bytes GCRA, never waiting",
            started.elapsed().as_nanos() as f64 / 1e6
        );

        let paced = Limiter::new(50_000, 1);
        let started = Instant::now();
        for _ in 0..50_000 {
            black_box(paced.acquire(256).await);
        }
        println!(
            "{:<55} {:>8.3} s (ideal 1.000 s)",
            "limiter acquire, 50k at 50k/s, sequential, real clock",
            started.elapsed().as_secs_f64()
        );
    });

    let records: Vec<Record> = (0..1024).map(record).collect();
    let plain = RequestBuilder::new(&RequestSpec::new("http://127.0.0.1:8080/ingest", "ns", "pkg")).expect("spec");
    per_op("build request, no template (JSON line as-is)", 1_000_000, |i| {
        black_box(plain.build(&records[(i % 1024) as usize]).expect("build"));
    });
    let mut spec = RequestSpec::new("http://127.0.0.1:8080", "ns", "pkg");
    spec.path_template = Some("/users/{{ id }}".into());
    spec.header_templates = vec![("X-Email".into(), "{{ email }}".into())];
    spec.body = BodySpec::Template(r#"{"user":{{ id }},"name":{{ name | tojson }}}"#.into());
    let templated = RequestBuilder::new(&spec).expect("spec");
    per_op("build request, path + header + body templates", 200_000, |i| {
        black_box(templated.build(&records[(i % 1024) as usize]).expect("build"));
    });
}
