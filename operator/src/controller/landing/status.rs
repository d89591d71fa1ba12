//! The Datum's landing status (pure): counters from the ledger and the last listing, the
//! delivery lag, per-Destination figures, and the `Landing` and `FilesChanged` conditions.

use courier_api::DatumStatus;
use courier_api::conditions::{DatumConditionType, DatumReason, set_condition};
use courier_api::datum::{FailedFile, LandingDestinationStatus, LandingStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::ledger::Ledger;
use super::rules::Assessment;

/// What the landing loop knows besides the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The last listing's assessment.
    pub assessment: Assessment,
    /// First-seen time of the oldest listed file not yet packaged.
    pub oldest_unpackaged_ms: Option<u64>,
    pub last_poll_ms: Option<u64>,
    /// Listing or ledger trouble, if any (reason, message).
    pub trouble: Option<(DatumReason, String)>,
    /// Files reported changed after packaging, newest last.
    pub changed: Vec<String>,
}

fn time(ms: u64) -> Option<Time> {
    jiff::Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok().map(Time)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The landing status.
pub fn landing_status(
    ledger: &Ledger,
    seen: &Seen,
    destinations: &[String],
    ledger_dir: &str,
    now_ms: u64,
) -> LandingStatus {
    let a = &seen.assessment;
    let in_flight: Vec<u64> = ledger.in_flight().map(|(_, f)| f.seen_ms).collect();
    let unpackaged = a.settling + a.open + a.awaiting_marker + a.ready.len();
    let oldest = in_flight.iter().copied().chain(seen.oldest_unpackaged_ms).min();
    let destinations = destinations
        .iter()
        .map(|name| {
            let t = ledger.totals.get(name).cloned().unwrap_or_default();
            LandingDestinationStatus {
                name: name.clone(),
                last_package: t.last_package.clone(),
                last_batch: t.last_batch.map(i64_of),
                files_packaged: i64_of(t.files_packaged),
                files_delivered: i64_of(t.files_delivered),
                records_delivered: i64_of(t.records_delivered),
                files_failed: i64_of(t.files_failed),
                failed_files: t
                    .recent_failed
                    .iter()
                    .rev()
                    .map(|(url, attempts, reason)| FailedFile {
                        url: url.clone(),
                        attempts: i32::try_from(*attempts).unwrap_or(i32::MAX),
                        reason: reason.chars().take(512).collect(),
                    })
                    .collect(),
            }
        })
        .collect();
    LandingStatus {
        files_seen: i64_of(a.seen as u64),
        files_pending: i64_of((unpackaged + in_flight.len()) as u64),
        files_delivered: i64_of(ledger.files_delivered),
        files_failed: i64_of(ledger.files_failed),
        lag_seconds: oldest.map_or(0, |o| i64_of(now_ms.saturating_sub(o) / 1000)),
        last_poll_time: seen.last_poll_ms.and_then(time),
        last_batch: ledger.next_batch.checked_sub(1).map(i64_of),
        last_batch_time: ledger.last_batch_ms.and_then(time),
        ledger: ledger_dir.to_owned(),
        destinations,
    }
}

/// `status` with the landing section and conditions set.
pub fn with_landing(
    mut status: DatumStatus,
    landing: LandingStatus,
    seen: &Seen,
    generation: Option<i64>,
    now: &Time,
) -> DatumStatus {
    let conds = &mut status.conditions;
    match &seen.trouble {
        Some((reason, message)) => {
            set_condition(conds, DatumConditionType::Landing, false, *reason, message.clone(), generation, now);
        }
        None => {
            let message = format!("listing {} files, ledger at {}", landing.files_seen, landing.ledger);
            set_condition(conds, DatumConditionType::Landing, true, DatumReason::Watching, message, generation, now);
        }
    }
    if seen.changed.is_empty() {
        set_condition(conds, DatumConditionType::FilesChanged, false, DatumReason::Unchanged, "", generation, now);
    } else {
        let shown: Vec<&str> = seen.changed.iter().rev().take(5).map(String::as_str).collect();
        let message = format!(
            "{} file(s) changed after they were packaged and were not sent again: {}",
            seen.changed.len(),
            shown.join(", ")
        );
        set_condition(
            conds,
            DatumConditionType::FilesChanged,
            true,
            DatumReason::ChangedAfterPackaging,
            message,
            generation,
            now,
        );
    }
    status.landing = Some(landing);
    status
}
