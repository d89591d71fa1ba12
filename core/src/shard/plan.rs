//! Cutting files into shards (pure: same input, same plan).

use crate::format::{Compression, FormatKind, FormatSpec};
use crate::source::FileInfo;

use super::{ShardKind, ShardSpec};

/// Cuts files into shards of about `target_shard_bytes` each (pure; same input, same plan).
///
/// - plain JSON lines / CSV / TSV: byte ranges (`ByteRange`), evenly sized;
/// - compressed text: one `Whole` shard per file;
/// - Parquet: byte ranges (`RowGroupRange`), resolved to row groups from the footer when read;
/// - Avro: byte ranges (`AvroBlocks`), resolved to sync blocks when read.
///
/// Empty files get no shard. A target of 0 means one shard per file.
pub fn plan_shards(files: &[FileInfo], format: &FormatSpec, target_shard_bytes: u64) -> Vec<ShardSpec> {
    let mut shards = Vec::new();
    for FileInfo { url, size } in files {
        if *size == 0 {
            continue;
        }
        let shard = |kind| ShardSpec { url: url.clone(), kind };
        match format.kind {
            FormatKind::JsonLines | FormatKind::Csv | FormatKind::Tsv => {
                if format.compression.resolve(url) != Compression::None {
                    shards.push(shard(ShardKind::Whole));
                } else {
                    shards.extend(
                        byte_ranges(*size, target_shard_bytes)
                            .map(|(start, end)| shard(ShardKind::ByteRange { start, end })),
                    );
                }
            }
            FormatKind::Avro => shards.extend(
                byte_ranges(*size, target_shard_bytes).map(|(start, end)| shard(ShardKind::AvroBlocks { start, end })),
            ),
            FormatKind::Parquet => shards.extend(
                byte_ranges(*size, target_shard_bytes)
                    .map(|(start, end)| shard(ShardKind::RowGroupRange { start, end })),
            ),
        }
    }
    shards
}

/// `ceil(size / target)` ranges of (almost) equal length covering `[0, size)`.
fn byte_ranges(size: u64, target: u64) -> impl Iterator<Item = (u64, u64)> {
    let count = if target == 0 { 1 } else { size.div_ceil(target).max(1) };
    let bound = move |i: u64| (u128::from(size) * u128::from(i) / u128::from(count)) as u64;
    (0..count).map(move |i| (bound(i), bound(i + 1)))
}

/// Bytes a shard covers (for progress and backlog): its range, or its whole file (sizes from
/// `files`); 0 for the row-group runs of older plans, whose sizes only the footer knows.
pub fn shard_bytes(shard: &ShardSpec, files: &[FileInfo]) -> u64 {
    match shard.kind.byte_range() {
        Some((start, end)) => end.saturating_sub(start),
        None => match shard.kind {
            ShardKind::Whole => files.iter().find(|f| f.url == shard.url).map_or(0, |f| f.size),
            _ => 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: &str, size: u64) -> FileInfo {
        FileInfo { url: url.to_owned(), size }
    }

    fn kinds(shards: &[ShardSpec]) -> Vec<ShardKind> {
        shards.iter().map(|s| s.kind).collect()
    }

    #[test]
    fn plain_text_is_cut_into_even_byte_ranges() {
        let spec = FormatSpec::new(FormatKind::JsonLines);
        type Case = (u64, u64, &'static [(u64, u64)]);
        let cases: &[Case] = &[
            (100, 40, &[(0, 33), (33, 66), (66, 100)]),
            (100, 100, &[(0, 100)]),
            (100, 1000, &[(0, 100)]),
            (10, 0, &[(0, 10)]),
            (3, 1, &[(0, 1), (1, 2), (2, 3)]),
        ];
        for (size, target, want) in cases {
            let shards = plan_shards(&[file("file:///d/a.jsonl", *size)], &spec, *target);
            let want: Vec<_> = want.iter().map(|&(start, end)| ShardKind::ByteRange { start, end }).collect();
            assert_eq!(kinds(&shards), want, "size {size} target {target}");
        }
    }

    #[test]
    fn compressed_text_is_never_split() {
        let spec = FormatSpec::new(FormatKind::Csv);
        let shards = plan_shards(&[file("file:///d/a.csv.gz", 1000), file("file:///d/b.csv.zst", 1000)], &spec, 10);
        assert_eq!(kinds(&shards), vec![ShardKind::Whole, ShardKind::Whole]);
        let forced = spec.with_compression(Compression::Gzip);
        assert_eq!(kinds(&plan_shards(&[file("file:///d/a.csv", 1000)], &forced, 10)), vec![ShardKind::Whole]);
    }

    #[test]
    fn empty_files_get_no_shard() {
        let spec = FormatSpec::new(FormatKind::Tsv);
        assert!(plan_shards(&[file("file:///d/empty.tsv", 0)], &spec, 10).is_empty());
    }

    #[test]
    fn parquet_files_are_cut_into_row_group_ranges_without_reading_them() {
        let spec = FormatSpec::new(FormatKind::Parquet);
        let got = kinds(&plan_shards(&[file("file:///d/a.parquet", 1000)], &spec, 400));
        assert_eq!(
            got,
            vec![
                ShardKind::RowGroupRange { start: 0, end: 333 },
                ShardKind::RowGroupRange { start: 333, end: 666 },
                ShardKind::RowGroupRange { start: 666, end: 1000 },
            ]
        );
        assert_eq!(kinds(&plan_shards(&[file("file:///d/a.parquet", 1000)], &spec, 0)).len(), 1);
        assert!(plan_shards(&[file("file:///d/empty.parquet", 0)], &spec, 400).is_empty());
    }

    #[test]
    fn shard_bytes_follow_the_shard_kind() {
        let files = [file("file:///a.parquet", 1000)];
        let shard = |kind| ShardSpec { url: "file:///a.parquet".into(), kind };
        assert_eq!(shard_bytes(&shard(ShardKind::RowGroupRange { start: 100, end: 600 }), &files), 500);
        assert_eq!(shard_bytes(&shard(ShardKind::AvroBlocks { start: 0, end: 10 }), &files), 10);
        assert_eq!(shard_bytes(&shard(ShardKind::Whole), &files), 1000);
        assert_eq!(shard_bytes(&shard(ShardKind::RowGroups { first: 0, count: 2 }), &files), 0);
        let other = ShardSpec { url: "file:///b".into(), kind: ShardKind::ByteRange { start: 10, end: 60 } };
        assert_eq!(shard_bytes(&other, &files), 50);
    }

    #[test]
    fn avro_files_are_cut_into_block_ranges() {
        let spec = FormatSpec::new(FormatKind::Avro);
        let got = kinds(&plan_shards(&[file("file:///d/a.avro", 100)], &spec, 50));
        assert_eq!(
            got,
            vec![ShardKind::AvroBlocks { start: 0, end: 50 }, ShardKind::AvroBlocks { start: 50, end: 100 },]
        );
    }

    #[test]
    fn shard_specs_serialize_flat_with_a_type_tag() {
        let spec = ShardSpec { url: "hdfs://nn/x".into(), kind: ShardKind::ByteRange { start: 1, end: 2 } };
        let json = serde_json::to_value(&spec).expect("serializable");
        assert_eq!(json, serde_json::json!({"url": "hdfs://nn/x", "type": "byteRange", "start": 1, "end": 2}));
        let back: ShardSpec = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, spec);
    }
}
