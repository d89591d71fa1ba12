//! The outcome of a finished landing package (pure): which of its files were delivered,
//! which are packaged again, which are recorded failed.

use courier_api::DeliveryPackage;
use courier_api::conditions::{PackageConditionType, PackageReason, find_condition};
use courier_api::package::PackagePhase;

use super::ledger::{Ledger, OutcomeEntry, PackageEnd, Undelivered};

/// Whether the package has finished (or is being deleted): its outcome can be recorded.
pub fn end_of(pkg: &DeliveryPackage) -> Option<PackageEnd> {
    match pkg.status.as_ref().and_then(|s| s.phase) {
        Some(PackagePhase::Complete) => Some(PackageEnd::Complete),
        Some(PackagePhase::Failed) => Some(PackageEnd::Failed),
        _ if pkg.metadata.deletion_timestamp.is_some() => Some(PackageEnd::Deleted),
        _ => None,
    }
}

/// The outcome entry of `pkg`, one of the ledger's open packages.
///
/// - Complete: every file delivered (dead-lettered records are accounted in the package).
/// - Failed before it was planned (a file was missing, …): nothing was sent, every file is
///   packaged again.
/// - Failed with BackoffLimitExceeded: the files of the shards that failed are packaged again
///   (the rest of the package completed); a file out of attempts is recorded failed.
/// - Failed otherwise (failure policy, deadline) or deleted before it finished: records may
///   have been sent, so no file is sent again; each is recorded failed with the reason.
pub fn outcome(
    ledger: &Ledger,
    pkg: &DeliveryPackage,
    end: PackageEnd,
    max_attempts: u32,
    now_ms: u64,
) -> Option<OutcomeEntry> {
    let name = pkg.metadata.name.as_deref()?;
    let open = ledger.open.get(name)?;
    let status = pkg.status.clone().unwrap_or_default();
    let records_sent = u64::try_from(status.progress.records.sent).unwrap_or(0);
    let failed_condition = find_condition(&status.conditions, PackageConditionType::Failed.as_str());
    let failed_reason = failed_condition.map(|c| c.reason.clone()).unwrap_or_default();
    let failed_message = failed_condition.map(|c| c.message.clone()).unwrap_or_default();
    let attempts_of = |url: &str| {
        ledger.files.get(url).and_then(|f| f.dest(&open.destination)).map_or(1, |s| match s {
            super::ledger::DestFile::InPackage { attempts, .. } => *attempts,
            _ => 1,
        })
    };
    let mut retry = Vec::new();
    let mut failed = Vec::new();
    let mut again = |url: &str, reason: String| {
        if attempts_of(url) >= max_attempts {
            failed
                .push(Undelivered { url: url.to_owned(), reason: format!("{reason} (after {max_attempts} attempts)") });
        } else {
            retry.push(Undelivered { url: url.to_owned(), reason });
        }
    };
    let everything_failed = |reason: &str| -> Vec<Undelivered> {
        open.files.iter().map(|f| Undelivered { url: f.url.clone(), reason: reason.to_owned() }).collect()
    };
    let backoff = failed_reason == PackageReason::BackoffLimitExceeded.as_str();
    let unnamed = status.shards.failed.iter().any(|s| s.file.is_none());
    match end {
        PackageEnd::Complete => {}
        PackageEnd::Failed if status.shards.total == 0 => {
            let planned = find_condition(&status.conditions, PackageConditionType::Planned.as_str());
            let reason = planned.map_or(failed_message.clone(), |c| format!("{}: {}", c.reason, c.message));
            for f in &open.files {
                again(&f.url, reason.clone());
            }
        }
        PackageEnd::Failed if backoff && !unnamed => {
            let mut seen = std::collections::HashSet::new();
            for shard in &status.shards.failed {
                let Some(url) = shard.file.as_deref() else { continue };
                if open.files.iter().any(|f| f.url == url) && seen.insert(url.to_owned()) {
                    again(url, shard.message.clone());
                }
            }
        }
        PackageEnd::Deleted => {
            failed = everything_failed("the package was deleted before it finished");
        }
        PackageEnd::Failed => {
            // The failure policy or the deadline ended it (or an older status does not name
            // the failed shards' files): records may have been sent, nothing is sent again.
            failed = everything_failed(&format!("{failed_reason}: {failed_message}"));
        }
    }
    Some(OutcomeEntry {
        batch: open.batch,
        destination: open.destination.clone(),
        package: name.to_owned(),
        at_ms: now_ms,
        end,
        records_sent,
        retry,
        failed,
    })
}

#[cfg(test)]
#[path = "outcome_tests.rs"]
mod tests;
