#![forbid(unsafe_code)]
//! Writes synthetic user records as JSON-lines, Parquet or Avro files, to HDFS or a local
//! directory — sample data for the demo and benchmarks.
//!
//! `courier-fixtures --namenode hdfs://127.0.0.1:9000 --dir /data/users/2026-11-25 --files 4 --records 2000 [--gzip] [--prefix part-]`
//! writes `part-0.jsonl` … `part-3.jsonl` (`.jsonl.gz` with `--gzip`), 2000 records each, with
//! distinct ids across files. Without `--namenode`, `--dir` is a local directory.
//! `--format parquet` (Snappy pages) or `--format avro` (`--avro-codec deflate|snappy|null`) writes
//! `.parquet` / `.avro` files of the same records with the fixtures' writers.

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use courier_e2e::fixtures::{AvroCodec, Entry, ParquetCodec, avro, gzip, jsonl, parquet, user, write_hdfs_file};

/// Rows per Parquet row group: large enough that page and footer overhead do not dominate.
const PARQUET_ROWS_PER_GROUP: usize = 10_000;
/// Records per Avro block (~40 KiB of records before compression).
const AVRO_RECORDS_PER_BLOCK: usize = 500;

/// File format of the written files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FileFormat {
    /// One JSON object per line (`.jsonl`, `.jsonl.gz` with --gzip).
    Jsonl,
    /// Apache Parquet with Snappy pages (`.parquet`).
    Parquet,
    /// Avro object container (`.avro`), codec from --avro-codec.
    Avro,
}

/// Block codec of Avro files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AvroBlockCodec {
    /// Uncompressed blocks.
    Null,
    /// Raw deflate, default level.
    Deflate,
    /// Snappy with the per-block CRC32.
    Snappy,
}

#[derive(Parser, Debug)]
#[command(name = "courier-fixtures", about = "Write synthetic user records as JSON-lines, Parquet or Avro files")]
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
    /// gzip the files (`.jsonl.gz`; JSON lines only).
    #[arg(long)]
    gzip: bool,
    /// File format.
    #[arg(long, value_enum, default_value_t = FileFormat::Jsonl)]
    format: FileFormat,
    /// Block codec of --format avro.
    #[arg(long, value_enum, default_value_t = AvroBlockCodec::Deflate)]
    avro_codec: AvroBlockCodec,
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
    if args.gzip && args.format != FileFormat::Jsonl {
        return Err("--gzip applies to --format jsonl only (Parquet and Avro compress inside the file)".into());
    }
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
        let (bytes, mut name) = match args.format {
            FileFormat::Jsonl => (jsonl(&entries), format!("{}{file}.jsonl", args.prefix)),
            FileFormat::Parquet => (
                parquet(&users(&entries), PARQUET_ROWS_PER_GROUP, ParquetCodec::Snappy)?,
                format!("{}{file}.parquet", args.prefix),
            ),
            FileFormat::Avro => {
                let codec = match args.avro_codec {
                    AvroBlockCodec::Null => AvroCodec::Null,
                    AvroBlockCodec::Deflate => AvroCodec::Deflate,
                    AvroBlockCodec::Snappy => AvroCodec::Snappy,
                };
                (avro(&users(&entries), AVRO_RECORDS_PER_BLOCK, codec)?, format!("{}{file}.avro", args.prefix))
            }
        };
        let bytes = if args.gzip {
            name.push_str(".gz");
            gzip(&bytes)?
        } else {
            bytes
        };
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

/// The records of `entries` (all valid here) for the binary formats' writers.
fn users(entries: &[Entry]) -> Vec<courier_e2e::fixtures::User> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Valid(u) => Some(u.clone()),
            Entry::Malformed { .. } => None,
        })
        .collect()
}
