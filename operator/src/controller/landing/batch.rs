//! Batches (pure): when to cut one, how files split into packages, the packages' names and
//! the DeliveryPackage objects themselves.

use std::collections::BTreeMap;

use courier_api::common::LocalRef;
use courier_api::datum::Landing;
use courier_api::package::{FileSource, HdfsSource, PackageSource};
use courier_api::{DeliveryPackage, DeliveryPackageSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::ledger::{BatchEntry, FileRef, MissingFile, PackageFiles};

/// Label on every generated package: the Datum's name (or a hash of it when longer than a
/// label value may be).
pub const DATUM_LABEL: &str = "courier.dev/landing-datum";
/// Annotations with the Datum's full name and the batch number.
pub const DATUM_ANNOTATION: &str = "courier.dev/landing-datum";
pub const BATCH_ANNOTATION: &str = "courier.dev/landing-batch";
/// Held until the package's outcome is in the ledger.
pub const FINALIZER: &str = "courier.dev/landing-ledger";
/// Path bytes in one package at most: far below etcd's 1.5 MiB per object, whatever the
/// paths' lengths.
pub const MAX_PATH_BYTES: usize = 256 * 1024;

/// Whether to cut a batch now: the first waiting file has waited a whole window, or enough
/// files wait to fill a package.
pub fn should_cut(
    oldest_waiting_ms: Option<u64>,
    waiting: usize,
    max_files: usize,
    window_ms: u64,
    now_ms: u64,
) -> bool {
    match oldest_waiting_ms {
        None => false,
        Some(oldest) => waiting >= max_files || now_ms.saturating_sub(oldest) >= window_ms,
    }
}

/// Splits files into chunks of at most `max_files` files and [`MAX_PATH_BYTES`] path bytes.
pub fn split(files: &[FileRef], max_files: usize) -> Vec<Vec<FileRef>> {
    let mut parts: Vec<Vec<FileRef>> = Vec::new();
    let mut bytes = 0;
    for f in files {
        let full = parts.last().is_none_or(|p| p.len() >= max_files.max(1) || bytes + f.url.len() > MAX_PATH_BYTES);
        if full {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += f.url.len();
        if let Some(p) = parts.last_mut() {
            p.push(f.clone());
        }
    }
    parts
}

/// FNV-1a, for short stable suffixes of long names.
fn hash8(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", h & 0xffff_ffff)
}

/// The package name for (Datum, Destination, batch, part): `<datum>-<destination>-<batch>`
/// (batch as six digits or more), `-<part>` for the second part on; names too long for the
/// API are shortened with a hash of the full name, so they stay unique and deterministic.
pub fn package_name(datum: &str, dest: &str, batch: u64, part: usize) -> String {
    let tail = if part == 0 { format!("{batch:06}") } else { format!("{batch:06}-{part}") };
    let full = format!("{datum}-{dest}-{tail}");
    if full.len() <= 253 {
        return full;
    }
    let keep = |s: &str| s.chars().take(100).collect::<String>().trim_end_matches(['-', '.']).to_owned();
    format!("{}-{}-{}-{tail}", keep(datum), keep(dest), hash8(&format!("{datum}/{dest}")))
}

/// The label value naming a Datum.
pub fn datum_label(datum: &str) -> String {
    if datum.len() <= 63 { datum.to_owned() } else { format!("h-{}", hash8(datum)) }
}

/// What goes into the next batch.
#[derive(Debug, Clone, Copy)]
pub struct CutInput<'a> {
    pub datum: &'a str,
    pub destinations: &'a [String],
    pub batch: u64,
    /// Files never packaged: to every Destination.
    pub ready: &'a [FileRef],
    /// Files to package again, per Destination.
    pub retry: &'a BTreeMap<String, Vec<FileRef>>,
    pub missing: &'a [MissingFile],
    pub max_files: usize,
    pub now_ms: u64,
}

/// The next batch: every ready file to every Destination, retries to their Destination,
/// missing retries counted.
pub fn cut(input: &CutInput<'_>) -> BatchEntry {
    let CutInput { datum, destinations, batch, ready, retry, missing, max_files, now_ms } = *input;
    let mut packages = Vec::new();
    for dest in destinations {
        let mut files: Vec<FileRef> = ready.to_vec();
        if let Some(again) = retry.get(dest) {
            files.extend(again.iter().cloned());
        }
        files.sort();
        files.dedup_by(|a, b| a.url == b.url);
        for (part, chunk) in split(&files, max_files).into_iter().enumerate() {
            packages.push(PackageFiles {
                destination: dest.clone(),
                name: package_name(datum, dest, batch, part),
                files: chunk,
            });
        }
    }
    BatchEntry { batch, at_ms: now_ms, packages, missing: missing.to_vec() }
}

/// A missing retry: counted as an attempt, failed once out of attempts.
pub fn missing_file(dest: &str, url: &str, attempts: u32, last_reason: &str, max_attempts: u32) -> MissingFile {
    let attempts = attempts + 1;
    let failed = attempts >= max_attempts;
    let reason = format!(
        "not in the landing listing any more (attempt {attempts} of {max_attempts}); last error: {last_reason}"
    );
    MissingFile { destination: dest.to_owned(), url: url.to_owned(), attempts, failed, reason }
}

/// Escapes glob characters, so a path is taken literally.
pub fn escape_glob(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The Datum a package belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The DeliveryPackage of `p`: explicit, escaped file paths (immutable, so a retry or a new
/// listing never changes what the package means), owned by the Datum, with the landing
/// settings and the ledger's finalizer.
pub fn package_object(owner: &Owner, landing: &Landing, batch: u64, p: &PackageFiles) -> DeliveryPackage {
    let source = if let Some(rest) = landing.path.strip_prefix("hdfs://") {
        let authority = rest.split('/').next().unwrap_or_default();
        let base = format!("hdfs://{authority}");
        let paths = p.files.iter().map(|f| escape_glob(f.url.strip_prefix(&base).unwrap_or(&f.url))).collect();
        PackageSource { hdfs: Some(HdfsSource { url: base, paths }), file: None }
    } else {
        let paths = p.files.iter().map(|f| escape_glob(f.url.strip_prefix("file://").unwrap_or(&f.url))).collect();
        PackageSource { hdfs: None, file: Some(FileSource { paths }) }
    };
    let spec = DeliveryPackageSpec {
        destination_ref: LocalRef::new(&p.destination),
        datum_ref: LocalRef::new(&owner.name),
        source,
        priority: landing.priority,
        backoff_limit: 3,
        active_deadline_seconds: None,
        progress_deadline_seconds: courier_api::package::DEFAULT_PROGRESS_DEADLINE_SECONDS,
        ttl_seconds_after_finished: landing.ttl_seconds_after_finished,
        suspend: false,
        failure_policy: landing.failure_policy.clone(),
        dead_letter: None,
        retry_nonce: None,
        retry_scope: Default::default(),
    };
    let metadata = ObjectMeta {
        name: Some(p.name.clone()),
        namespace: Some(owner.namespace.clone()),
        labels: Some([(DATUM_LABEL.to_owned(), datum_label(&owner.name))].into()),
        annotations: Some(
            [(DATUM_ANNOTATION.to_owned(), owner.name.clone()), (BATCH_ANNOTATION.to_owned(), batch.to_string())]
                .into(),
        ),
        owner_references: Some(vec![OwnerReference {
            api_version: courier_api::API_VERSION.to_owned(),
            kind: "Datum".to_owned(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]),
        finalizers: Some(vec![FINALIZER.to_owned()]),
        ..ObjectMeta::default()
    };
    DeliveryPackage { metadata, spec, status: None }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
