//! Cutting files into shards.

use crate::decode::{Compression, FormatKind, FormatSpec, parquet};
use crate::source::{FileInfo, Source};

use super::{ShardError, ShardKind, ShardSpec};

/// A file as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFile {
    /// URL and size.
    pub file: FileInfo,
    /// Parquet only: compressed size of each row group, from the footer. `None` plans the
    /// file as one shard.
    pub row_groups: Option<Vec<u64>>,
}

impl From<FileInfo> for PlanFile {
    fn from(file: FileInfo) -> Self {
        PlanFile { file, row_groups: None }
    }
}

/// Reads what the planner needs beyond listings: the row-group sizes of Parquet files.
pub async fn plan_inputs(
    source: &Source,
    files: Vec<FileInfo>,
    format: &FormatSpec,
) -> Result<Vec<PlanFile>, ShardError> {
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let row_groups = if format.kind == FormatKind::Parquet && file.size > 0 {
            Some(parquet::row_group_sizes(source, &file.url).await?)
        } else {
            None
        };
        out.push(PlanFile { file, row_groups });
    }
    Ok(out)
}

/// Cuts files into shards of about `target_shard_bytes` each (pure; same input, same plan).
///
/// - plain JSON lines / CSV / TSV: byte ranges (`ByteRange`), evenly sized;
/// - compressed text: one `Whole` shard per file;
/// - Parquet: runs of consecutive row groups reaching the target (`RowGroups`), or `Whole`
///   when the row groups are unknown;
/// - Avro: byte ranges (`AvroBlocks`), resolved to sync blocks when read.
///
/// Empty files get no shard. A target of 0 means one shard per file.
pub fn plan_shards(files: &[PlanFile], format: &FormatSpec, target_shard_bytes: u64) -> Vec<ShardSpec> {
    let mut shards = Vec::new();
    for planned in files {
        let FileInfo { url, size } = &planned.file;
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
            FormatKind::Parquet => match &planned.row_groups {
                None => shards.push(shard(ShardKind::Whole)),
                Some(sizes) => shards.extend(
                    row_group_runs(sizes, target_shard_bytes)
                        .into_iter()
                        .map(|(first, count)| shard(ShardKind::RowGroups { first, count })),
                ),
            },
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

/// Groups consecutive row groups until each run reaches `target` bytes.
fn row_group_runs(sizes: &[u64], target: u64) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut first = 0u64;
    let mut count = 0u64;
    let mut bytes = 0u64;
    for (i, size) in sizes.iter().enumerate() {
        if count == 0 {
            first = i as u64;
        }
        count += 1;
        bytes += size;
        if target > 0 && bytes >= target {
            runs.push((first, count));
            count = 0;
            bytes = 0;
        }
    }
    if count > 0 {
        runs.push((first, count));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: &str, size: u64) -> PlanFile {
        PlanFile::from(FileInfo { url: url.to_owned(), size })
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
    fn parquet_row_groups_are_grouped_up_to_the_target() {
        let spec = FormatSpec::new(FormatKind::Parquet);
        let mut f = file("file:///d/a.parquet", 1000);
        f.row_groups = Some(vec![40, 40, 40, 100, 10]);
        let got = kinds(&plan_shards(&[f.clone()], &spec, 80));
        assert_eq!(
            got,
            vec![
                ShardKind::RowGroups { first: 0, count: 2 },
                ShardKind::RowGroups { first: 2, count: 2 },
                ShardKind::RowGroups { first: 4, count: 1 },
            ]
        );
        f.row_groups = Some(vec![]);
        assert!(plan_shards(&[f.clone()], &spec, 80).is_empty());
        f.row_groups = None;
        assert_eq!(kinds(&plan_shards(&[f], &spec, 80)), vec![ShardKind::Whole]);
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
