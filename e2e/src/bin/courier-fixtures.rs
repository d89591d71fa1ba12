#![forbid(unsafe_code)]
//! Writes synthetic user records as JSON-lines files, to HDFS or a local directory — sample data
//! for the demo and benchmarks.
//!
//! `courier-fixtures --namenode hdfs://127.0.0.1:9000 --dir /data/users/2026-11-25 --files 4 --records 2000 [--gzip] [--prefix part-]`
//! writes `part-0.jsonl` … `part-3.jsonl` (`.jsonl.gz` with `--gzip`), 2000 records each, with
//! distinct ids across files. Without `--namenode`, `--dir` is a local directory.

use std::process::ExitCode;

use clap::Parser;
use courier_e2e::fixtures::{Entry, gzip, jsonl, user, write_hdfs_file};

#[derive(Parser, Debug)]
#[command(name = "courier-fixtures", about = "Write synthetic user records as JSON-lines files")]
struct Args {
    /// HDFS namenode URL; without it, --dir is a local directory.
    #[arg(long)]
    namenode: Option<String>,
    /// Directory to write into (created if missing).
    #[arg(long)]
    dir: String,
    /// Number of files.
    #[arg(long, default_value_t = 1)]
    files: u32,
    /// Records per file.
    #[arg(long, default_value_t = 1000)]
    records: u64,
    /// First id (ids are consecutive across files).
    #[arg(long, default_value_t = 1)]
    first_id: i64,
    /// File name prefix.
    #[arg(long, default_value = "part-")]
    prefix: String,
    /// gzip the files (`.jsonl.gz`).
    #[arg(long)]
    gzip: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(total) => {
            println!("wrote {} files, {total} records, under {}", args.files, args.dir);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("courier-fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<u64, Box<dyn std::error::Error>> {
    let client = match &args.namenode {
        Some(url) => {
            let client = hdfs_native::ClientBuilder::new().with_url(url.clone()).build()?;
            client.mkdirs(&args.dir, 0o755, true).await?;
            Some(client)
        }
        None => {
            std::fs::create_dir_all(&args.dir)?;
            None
        }
    };
    let mut next_id = args.first_id;
    for file in 0..args.files {
        let entries: Vec<Entry> = (0..args.records)
            .map(|_| {
                next_id += 1;
                Entry::Valid(user(next_id - 1))
            })
            .collect();
        let mut bytes = jsonl(&entries);
        let mut name = format!("{}{file}.jsonl", args.prefix);
        if args.gzip {
            bytes = gzip(&bytes)?;
            name.push_str(".gz");
        }
        let path = format!("{}/{name}", args.dir.trim_end_matches('/'));
        match &client {
            Some(client) => {
                write_hdfs_file(client, &path, &bytes, hdfs_native::WriteOptions::default().overwrite(true)).await?
            }
            None => std::fs::write(&path, &bytes)?,
        }
    }
    Ok(u64::from(args.files) * args.records)
}
