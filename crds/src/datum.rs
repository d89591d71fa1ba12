//! `Datum`: a data type — file format, how a record becomes a request, where new files land.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::LocalRef;
use crate::package::FailurePolicy;

/// A data type, described once and reused by every package that carries it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "courier.dev",
    version = "v1alpha1",
    kind = "Datum",
    doc = "A data type: file format, how a record becomes a request, and where new files land.",
    plural = "datums",
    namespaced,
    status = "DatumStatus",
    category = "courier",
    derive = "PartialEq",
    printcolumn(name = "Format", type_ = "string", json_path = ".spec.format.type"),
    printcolumn(name = "Compression", type_ = "string", json_path = ".spec.format.compression"),
    printcolumn(name = "Landing", type_ = "string", json_path = ".spec.landing.path", priority = 1),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(
        name = "Pending",
        type_ = "integer",
        json_path = ".status.landing.filesPending",
        description = "landed files not yet delivered to every Destination"
    ),
    printcolumn(
        name = "Delivered",
        type_ = "integer",
        json_path = ".status.landing.filesDelivered",
        description = "landed files delivered to every Destination"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.landing.filesFailed",
        description = "landed files recorded failed"
    ),
    printcolumn(
        name = "Lag",
        type_ = "integer",
        json_path = ".status.landing.lagSeconds",
        description = "seconds since the oldest undelivered file landed"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DatumSpec {
    /// How files of this type are read.
    pub format: Format,
    /// How one record becomes one HTTP request.
    #[serde(default)]
    pub request: RequestSpec,
    /// Continuous delivery: watch a landing path and package new files automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing: Option<Landing>,
}

/// File formats Courier reads.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum FormatType {
    /// One JSON object per line.
    #[default]
    JsonLines,
    /// Comma-separated values (delimiter configurable).
    Csv,
    /// Tab-separated values.
    Tsv,
    /// Apache Parquet; each row becomes a JSON object.
    Parquet,
    /// Apache Avro object container files; each record becomes a JSON object.
    Avro,
}

/// Compression of text files.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum Compression {
    /// By file extension: `.gz` is gzip, `.zst`/`.zstd` is zstd, anything else plain.
    #[default]
    Auto,
    /// Plain.
    None,
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
}

/// How files are read.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.csv) || self.type == 'Csv' || self.type == 'Tsv'").message("format.csv applies only to type Csv or Tsv"))]
#[x_kube(validation = kube::core::Rule::new("!(self.type == 'Parquet' || self.type == 'Avro') || self.compression == 'Auto' || self.compression == 'None'").message("Parquet and Avro files carry their own compression: set format.compression to Auto or None"))]
#[x_kube(validation = kube::core::Rule::new("!(self.type == 'Csv' || self.type == 'Tsv') || !has(self.csv) || self.csv.header || (has(self.fields) && size(self.fields) > 0)").message("format.fields must list the columns when csv.header is false"))]
pub struct Format {
    /// File format.
    #[serde(rename = "type")]
    pub type_: FormatType,
    /// Compression of text formats.
    #[serde(default)]
    pub compression: Compression,
    /// CSV and TSV options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvOptions>,
    /// Column names for CSV/TSV files without a header line; for other formats, the fields kept
    /// from each record (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// CSV and TSV options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CsvOptions {
    /// The first line of each file names the columns.
    #[serde(default = "default_true")]
    pub header: bool,
    /// Field delimiter, one character. Default `,` for Csv and a tab for Tsv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("size(self) == 1").message("format.csv.delimiter must be exactly one character"))]
    #[schemars(length(max = 4))]
    pub delimiter: Option<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self { header: true, delimiter: None }
    }
}

fn default_true() -> bool {
    true
}

/// How a record becomes a request. Templates use minijinja syntax; the record's fields are
/// variables (`{{ id }}`), as are `record` (the whole record), `file`, `offset`, `package` and
/// `namespace`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestSpec {
    /// Path (and query) appended to the Destination's URL, e.g. `/v1/users/{{ id }}`.
    /// Empty: the URL as is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self == '' || self.startsWith('/')").message("request.pathTemplate must be empty or start with /"))]
    #[schemars(length(max = 4096))]
    pub path_template: String,
    /// Headers, values templated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body. Default: the record as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
    /// `Content-Type` of the body.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Where the idempotency key goes and what it is.
    #[serde(default)]
    pub idempotency_key: IdempotencyKey,
}

impl Default for RequestSpec {
    fn default() -> Self {
        Self {
            path_template: String::new(),
            headers: BTreeMap::new(),
            body: None,
            content_type: default_content_type(),
            idempotency_key: IdempotencyKey::default(),
        }
    }
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

/// The request body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    /// A template rendering the body, e.g. `{"user": {{ record | tojson }}}`.
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0").message("request.body.template must not be empty; omit body to send the record as JSON"))]
    pub template: String,
}

/// The idempotency key sent with every request: the same for every attempt, restart and re-send
/// of a record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyKey {
    /// Header carrying the key.
    #[serde(default = "default_idempotency_header")]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]+$')").message("request.idempotencyKey.header must be a valid HTTP header name"))]
    #[schemars(length(max = 256))]
    pub header: String,
    /// Use this record field as the key instead of Courier's hash of (namespace, package, file,
    /// offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Default for IdempotencyKey {
    fn default() -> Self {
        Self { header: default_idempotency_header(), field: None }
    }
}

fn default_idempotency_header() -> String {
    "Idempotency-Key".to_owned()
}

/// Continuous delivery: new files under `path` are gathered into DeliveryPackages, each file
/// exactly once per Destination; the ledger of which file went where lives next to the files
/// (`ledgerPath`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.batchWindowSeconds >= self.pollIntervalSeconds").message("landing.batchWindowSeconds must not be shorter than pollIntervalSeconds"))]
pub struct Landing {
    /// Where new files land: an HDFS URL with a glob, e.g. `hdfs://nn:9000/landing/users/*/*.jsonl.gz`.
    /// Names starting with `_` or `.` and names ending in `._COPYING_` are never taken.
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('hdfs://') || self.startsWith('file://')").message("landing.path must start with hdfs:// or file://"))]
    #[schemars(length(max = 4096))]
    pub path: String,
    /// How often the path is listed.
    #[serde(default = "default_poll")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 86400").message("landing.pollIntervalSeconds must be between 1 and 86400"))]
    pub poll_interval_seconds: i32,
    /// A file is taken once its size and modification time have not changed for this long (as
    /// seen by the operator's listings) and it is not open for write.
    #[serde(default = "default_settle")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0 && self <= 86400").message("landing.settleSeconds must be between 0 and 86400"))]
    pub settle_seconds: i32,
    /// Files settled within one window go into one package per destination: a batch is cut
    /// this long after the first file of it settled (or sooner, once `maxFilesPerPackage`
    /// files are waiting).
    #[serde(default = "default_window")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 86400").message("landing.batchWindowSeconds must be between 1 and 86400"))]
    pub batch_window_seconds: i32,
    /// Destinations each new batch is delivered to.
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0").message("landing.destinations must name at least one Destination"))]
    // A list map keyed by name: the API server refuses a Destination named twice (a CEL rule
    // comparing every pair exceeded the cost budget).
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 20))]
    pub destinations: Vec<LocalRef>,
    /// Take a file only once its directory holds this marker file (e.g. `_SUCCESS`, written by
    /// Hadoop jobs when they finish). Unset: no marker needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("size(self) > 0 && !self.contains('/')").message("landing.marker must be a file name without /"))]
    #[schemars(length(max = 255))]
    pub marker: Option<String>,
    /// Most files in one DeliveryPackage; a larger batch is split into several packages (the
    /// package's file list must stay far below etcd's object size limit).
    #[serde(default = "default_max_files")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 1000").message("landing.maxFilesPerPackage must be between 1 and 1000"))]
    pub max_files_per_package: i32,
    /// Packages a file may go into per Destination before it is recorded failed, when its
    /// package could not read it (vanished, unreadable).
    #[serde(default = "default_file_attempts")]
    #[x_kube(validation = kube::core::Rule::new("self >= 1 && self <= 100").message("landing.maxFileAttempts must be between 1 and 100"))]
    pub max_file_attempts: i32,
    /// HDFS only: how long a file that the namenode reports as never closed since it was
    /// created is waited for before it is taken anyway (HDFS recovers an abandoned writer's
    /// lease after one hour).
    #[serde(default = "default_open_timeout")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("landing.openFileTimeoutSeconds must not be negative"))]
    pub open_file_timeout_seconds: i32,
    /// Priority of the generated packages.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self >= -1000 && self <= 1000").message("landing.priority must be between -1000 and 1000"))]
    pub priority: i32,
    /// Failure policy of the generated packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<FailurePolicy>,
    /// `ttlSecondsAfterFinished` of the generated packages. Their outcome is in the ledger
    /// before they are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0").message("landing.ttlSecondsAfterFinished must not be negative"))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Completed generated packages kept per Destination (older ones are deleted, like a
    /// CronJob's `successfulJobsHistoryLimit`).
    #[serde(default = "default_successful_history")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0 && self <= 1000").message("landing.successfulPackagesHistoryLimit must be between 0 and 1000"))]
    pub successful_packages_history_limit: i32,
    /// Failed generated packages kept per Destination.
    #[serde(default = "default_failed_history")]
    #[x_kube(validation = kube::core::Rule::new("self >= 0 && self <= 1000").message("landing.failedPackagesHistoryLimit must be between 0 and 1000"))]
    pub failed_packages_history_limit: i32,
    /// A directory URL for the ledger (`hdfs://…` or `file://…`). Default:
    /// `_courier/ledger/<namespace>/<datum>` under the landing path's namenode (HDFS) or under
    /// the landing path's first directory (file://).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('hdfs://') || self.startsWith('file://')").message("landing.ledgerPath must start with hdfs:// or file://"))]
    #[schemars(length(max = 4096))]
    pub ledger_path: Option<String>,
}

fn default_poll() -> i32 {
    60
}

fn default_settle() -> i32 {
    120
}

fn default_window() -> i32 {
    300
}

fn default_max_files() -> i32 {
    500
}

fn default_file_attempts() -> i32 {
    3
}

fn default_open_timeout() -> i32 {
    3600
}

fn default_successful_history() -> i32 {
    3
}

fn default_failed_history() -> i32 {
    1
}

/// Observed state of a Datum.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatumStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: templates compile and the format settings are consistent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Summary of the landing ledger, when `landing` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing: Option<LandingStatus>,
}

/// Summary of the landing ledger (the ledger itself is in `ledger`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LandingStatus {
    /// Files matching the landing path in the last listing (temporary names excluded).
    pub files_seen: i64,
    /// Files landed and not yet delivered to every Destination nor failed: settling, waiting
    /// for their batch, in a package, or to be retried.
    pub files_pending: i64,
    /// Files delivered to every Destination.
    pub files_delivered: i64,
    /// Files recorded failed for at least one Destination.
    pub files_failed: i64,
    /// Age in seconds of the oldest file landed and not yet delivered everywhere (0: none).
    #[serde(default)]
    pub lag_seconds: i64,
    /// Last listing of the landing path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll_time: Option<Time>,
    /// Sequence number of the newest batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_batch: Option<i64>,
    /// When the newest batch was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_batch_time: Option<Time>,
    /// Where the ledger is (a directory of JSON files, one per batch and outcome).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ledger: String,
    /// Per Destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub destinations: Vec<LandingDestinationStatus>,
}

/// The ledger's figures for one Destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LandingDestinationStatus {
    /// The Destination.
    pub name: String,
    /// Name of the newest package for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_package: Option<String>,
    /// Batch of the newest package for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_batch: Option<i64>,
    /// Files put into packages for it (each counted once, retries not again).
    pub files_packaged: i64,
    /// Files whose package completed.
    pub files_delivered: i64,
    /// Records its finished packages sent (accepted by the partner).
    pub records_delivered: i64,
    /// Files recorded failed.
    pub files_failed: i64,
    /// The most recent failed files with their reasons (at most 20; the ledger has all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub failed_files: Vec<FailedFile>,
}

/// A file recorded failed for a Destination.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedFile {
    /// The file's URL.
    pub url: String,
    /// Packages it went into.
    pub attempts: i32,
    /// Why it failed (the last package's error).
    pub reason: String,
}
