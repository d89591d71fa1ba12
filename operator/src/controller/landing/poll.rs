//! One Datum's turn (I/O): load the ledger, settle finished packages, create missing ones,
//! list the landing path when due, cut a batch, write the status.

use std::collections::HashSet;
use std::sync::Arc;

use courier_api::conditions::DatumReason;
use courier_api::datum::Landing;
use courier_api::{Datum, DatumStatus, DeliveryPackage};
use courier_core::source::FileStatus;
use courier_source::{Source, SourceError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Client, ResourceExt};

use super::batch::{self, CutInput, Owner};
use super::ledger::{ChangedEntry, Entry, Ledger, PackageFiles};
use super::metrics::LandingMetrics;
use super::rules::{self, Observations, Rules};
use super::status::{self, Seen};
use super::store::{Store, StoreError};
use super::{outcome, packages};
use crate::context::Context;
use crate::controller::publish;

/// What the loop keeps about one Datum between turns (memory only; the ledger is durable).
#[derive(Default)]
pub struct DatumState {
    store: Option<Store>,
    ledger: Option<Ledger>,
    last_snapshot: u64,
    observations: Observations,
    next_poll_ms: u64,
    /// Since when something waits for a batch.
    waiting_since_ms: Option<u64>,
    seen: Seen,
    /// Last listing (for forgetting files that are gone).
    listed: HashSet<String>,
}

fn now_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

fn secs_ms(s: i32) -> u64 {
    u64::try_from(s).unwrap_or(0) * 1000
}

/// The rules of `landing`.
pub fn rules_of(landing: &Landing) -> Rules {
    let pattern_path = landing
        .path
        .split_once("://")
        .map(|(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or(&landing.path);
    let base = &landing.path[..landing.path.len() - pattern_path.len()];
    Rules {
        settle_ms: secs_ms(landing.settle_seconds),
        open_timeout_ms: secs_ms(landing.open_file_timeout_seconds),
        marker: landing.marker.clone(),
        max_file_attempts: u32::try_from(landing.max_file_attempts).unwrap_or(1).max(1),
        literal_prefix: format!("{base}{}", rules::literal_prefix(pattern_path)),
    }
}

/// One turn of `datum`.
pub async fn step(ctx: &Context, client: &Client, datum: &Datum, own: &[Arc<DeliveryPackage>], state: &mut DatumState) {
    let Some(landing) = datum.spec.landing.clone() else { return };
    let (ns, name) = (datum.namespace().unwrap_or_default(), datum.name_any());
    let now = now_ms();
    let dir = landing.ledger_path.clone().unwrap_or_else(|| super::store::default_dir(&landing.path, &ns, &name));
    if state.store.as_ref().is_none_or(|s| s.dir != dir.trim_end_matches('/')) {
        match Store::new(&dir) {
            Ok(s) => state.store = Some(s),
            Err(err) => {
                state.seen.trouble = Some((DatumReason::LedgerUnavailable, err.to_string()));
                write_status(ctx, datum, state, &landing, &dir, now);
                return;
            }
        }
        state.ledger = None;
    }
    let result = async {
        ensure_loaded(state).await?;
        settle_packages(ctx, client, datum, &landing, own, state, now).await?;
        if now >= state.next_poll_ms {
            state.next_poll_ms = now + secs_ms(landing.poll_interval_seconds);
            poll(ctx, client, datum, &landing, state, now).await?;
        }
        Ok::<(), StoreError>(())
    }
    .await;
    match result {
        Ok(()) => {
            if matches!(state.seen.trouble, Some((DatumReason::LedgerUnavailable, _))) {
                state.seen.trouble = None;
            }
        }
        Err(err) => {
            tracing::warn!(namespace = %ns, datum = %name, %err, "landing ledger unavailable");
            state.seen.trouble = Some((DatumReason::LedgerUnavailable, err.to_string()));
            state.ledger = None; // read it again next time
        }
    }
    write_status(ctx, datum, state, &landing, &dir, now);
}

async fn ensure_loaded(state: &mut DatumState) -> Result<(), StoreError> {
    if state.ledger.is_none()
        && let Some(store) = &state.store
    {
        let ledger = store.load().await?;
        state.last_snapshot = store.last_snapshot().await?;
        tracing::info!(dir = %store.dir, files = ledger.files.len(), open = ledger.open.len(), "landing ledger loaded");
        state.ledger = Some(ledger);
    }
    Ok(())
}

/// Appends `entry`; when another writer took the number, reloads and reports `false`.
async fn append(state: &mut DatumState, entry: &Entry) -> Result<bool, StoreError> {
    let (Some(store), Some(ledger)) = (&state.store, &mut state.ledger) else { return Ok(false) };
    if store.append(ledger, entry).await? {
        return Ok(true);
    }
    tracing::warn!(dir = %store.dir, "another writer appended to the ledger: reading it again");
    state.ledger = None;
    ensure_loaded(state).await?;
    Ok(false)
}

fn owner(datum: &Datum) -> Owner {
    Owner {
        namespace: datum.namespace().unwrap_or_default(),
        name: datum.name_any(),
        uid: datum.uid().unwrap_or_default(),
    }
}

/// Records the outcome of every finished open package, releases recorded ones, creates the
/// open packages that do not exist, and prunes the history.
async fn settle_packages(
    ctx: &Context,
    client: &Client,
    datum: &Datum,
    landing: &Landing,
    own: &[Arc<DeliveryPackage>],
    state: &mut DatumState,
    now: u64,
) -> Result<(), StoreError> {
    let (ns, name) = (datum.namespace().unwrap_or_default(), datum.name_any());
    let max_attempts = u32::try_from(landing.max_file_attempts).unwrap_or(1).max(1);
    for pkg in own {
        let Some(end) = outcome::end_of(pkg) else { continue };
        let open = state.ledger.as_ref().is_some_and(|l| l.open.contains_key(&pkg.name_any()));
        if open {
            let total = state.ledger.as_ref().and_then(|l| l.open.get(&pkg.name_any())).map_or(0, |p| p.files.len());
            let Some(entry) = state.ledger.as_ref().and_then(|l| outcome::outcome(l, pkg, end, max_attempts, now))
            else {
                continue;
            };
            if !append(state, &Entry::Outcome(entry.clone())).await? {
                continue;
            }
            let labels = LandingMetrics::dest(&ns, &name, &entry.destination);
            let delivered = total.saturating_sub(entry.retry.len() + entry.failed.len());
            ctx.metrics.landing.files_delivered.get_or_create(&labels).inc_by(delivered as u64);
            ctx.metrics.landing.files_failed.get_or_create(&labels).inc_by(entry.failed.len() as u64);
            if !entry.failed.is_empty() || !entry.retry.is_empty() {
                let note = format!(
                    "package {}: {} file(s) to be packaged again, {} recorded failed (first: {})",
                    entry.package,
                    entry.retry.len(),
                    entry.failed.len(),
                    entry.failed.first().or(entry.retry.first()).map_or("", |u| u.reason.as_str())
                );
                publish(&ctx.recorder, datum, true, "FilesNotDelivered", note).await;
            }
        }
        if let Err(err) = packages::release(client, pkg).await {
            tracing::warn!(%err, package = %pkg.name_any(), "failed to release a landing package");
        }
    }
    // Open packages that do not exist yet (the leader before stopped between writing the
    // batch and creating them, or this turn's creation failed).
    let existing: HashSet<String> = own.iter().map(|p| p.name_any()).collect();
    let missing: Vec<(u64, PackageFiles)> = state
        .ledger
        .as_ref()
        .map(|l| {
            l.open
                .iter()
                .filter(|(n, _)| !existing.contains(*n))
                .map(|(n, p)| {
                    (
                        p.batch,
                        PackageFiles { destination: p.destination.clone(), name: n.clone(), files: p.files.clone() },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let who = owner(datum);
    for (batch, p) in missing {
        match packages::create(client, &who, landing, batch, &p).await {
            Ok(true) => tracing::info!(package = %p.name, batch, "created a landing package the ledger lists"),
            Ok(false) => {}
            Err(err) => tracing::warn!(%err, package = %p.name, "failed to create a landing package"),
        }
    }
    // History: recorded, finished packages beyond the limits.
    let recorded: Vec<&DeliveryPackage> = own
        .iter()
        .map(AsRef::as_ref)
        .filter(|p| {
            matches!(outcome::end_of(p), Some(super::ledger::PackageEnd::Complete | super::ledger::PackageEnd::Failed))
                && p.metadata.deletion_timestamp.is_none()
                && !state.ledger.as_ref().is_some_and(|l| l.open.contains_key(&p.name_any()))
        })
        .collect();
    let successful = usize::try_from(landing.successful_packages_history_limit).unwrap_or(0);
    let failed = usize::try_from(landing.failed_packages_history_limit).unwrap_or(0);
    for p in packages::beyond_history(&recorded, successful, failed) {
        if let Err(err) = packages::delete(client, p).await {
            tracing::warn!(%err, package = %p.name_any(), "failed to delete an old landing package");
        }
    }
    Ok(())
}

/// Lists the landing path, reports changed files and cuts a batch when one is due.
async fn poll(
    ctx: &Context,
    client: &Client,
    datum: &Datum,
    landing: &Landing,
    state: &mut DatumState,
    now: u64,
) -> Result<(), StoreError> {
    let (ns, name) = (datum.namespace().unwrap_or_default(), datum.name_any());
    let rules = rules_of(landing);
    let listing = match list(&landing.path).await {
        Ok(l) => l,
        Err(err) => {
            tracing::warn!(namespace = %ns, datum = %name, error = &err as &dyn std::error::Error, "landing listing failed");
            state.seen.trouble = Some((DatumReason::ListingFailed, err.to_string()));
            return Ok(());
        }
    };
    if matches!(state.seen.trouble, Some((DatumReason::ListingFailed, _))) {
        state.seen.trouble = None;
    }
    let new = rules::observe(&mut state.observations, &listing, now);
    ctx.metrics.landing.files_seen.get_or_create(&LandingMetrics::datum(&ns, &name)).inc_by(new as u64);
    let markers = markers(landing, &listing, state).await;
    let Some(ledger) = &state.ledger else { return Ok(()) };
    let assessment = rules::assess(ledger, &listing, &state.observations, &markers, &rules, now);
    for url in &assessment.too_long {
        tracing::warn!(%url, "a landed file's path is longer than a package allows; it is not taken");
    }
    for (packaged, current) in assessment.changed.clone() {
        let url = packaged.url.clone();
        let note = format!(
            "{url} changed after it was packaged (size {} -> {}, modified {} -> {}); it is not sent again",
            packaged.size, current.size, packaged.modified_ms, current.modified_ms
        );
        if append(state, &Entry::Changed(ChangedEntry { at_ms: now, packaged, now: current })).await? {
            publish(&ctx.recorder, datum, true, "FileChangedAfterPackaging", note).await;
            state.seen.changed.push(url);
        }
    }
    state.listed = listing.iter().map(|f| f.url.clone()).collect();
    state.seen.last_poll_ms = Some(now);
    state.seen.oldest_unpackaged_ms = listing
        .iter()
        .filter(|f| state.ledger.as_ref().is_some_and(|l| !l.files.contains_key(&f.url)))
        .filter_map(|f| state.observations.get(&f.url).map(|o| o.first_seen_ms))
        .min();
    let waiting =
        assessment.ready.len() + assessment.retry.values().map(Vec::len).sum::<usize>() + assessment.missing.len();
    if waiting == 0 {
        state.waiting_since_ms = None;
    } else if state.waiting_since_ms.is_none() {
        state.waiting_since_ms = Some(now);
    }
    let max_files = usize::try_from(landing.max_files_per_package).unwrap_or(1).max(1);
    let window = secs_ms(landing.batch_window_seconds);
    let cut_now = batch::should_cut(state.waiting_since_ms, assessment.ready.len(), max_files, window, now);
    state.seen.assessment = assessment.clone();
    if cut_now {
        cut_batch(ctx, client, datum, landing, state, &assessment, &rules, now).await?;
    }
    maybe_snapshot(state).await
}

/// Cuts, records and creates the next batch.
#[allow(clippy::too_many_arguments)]
async fn cut_batch(
    ctx: &Context,
    client: &Client,
    datum: &Datum,
    landing: &Landing,
    state: &mut DatumState,
    assessment: &rules::Assessment,
    rules: &Rules,
    now: u64,
) -> Result<(), StoreError> {
    let (ns, name) = (datum.namespace().unwrap_or_default(), datum.name_any());
    let Some(ledger) = &state.ledger else { return Ok(()) };
    let destinations: Vec<String> = landing.destinations.iter().map(|d| d.name.clone()).collect();
    let missing: Vec<_> = assessment
        .missing
        .iter()
        .map(|(dest, url, attempts, reason)| batch::missing_file(dest, url, *attempts, reason, rules.max_file_attempts))
        .collect();
    let entry = batch::cut(&CutInput {
        datum: &name,
        destinations: &destinations,
        batch: ledger.next_batch,
        ready: &assessment.ready,
        retry: &assessment.retry,
        missing: &missing,
        max_files: usize::try_from(landing.max_files_per_package).unwrap_or(1).max(1),
        now_ms: now,
    });
    if !append(state, &Entry::Batch(entry.clone())).await? {
        return Ok(()); // decided again at the next poll, on the fresh ledger
    }
    state.waiting_since_ms = None;
    state.next_poll_ms = now; // look again at once: what is left of the listing may wait less
    ctx.metrics.landing.batches.get_or_create(&LandingMetrics::datum(&ns, &name)).inc();
    let who = owner(datum);
    let mut created = Vec::new();
    for p in &entry.packages {
        ctx.metrics
            .landing
            .files_packaged
            .get_or_create(&LandingMetrics::dest(&ns, &name, &p.destination))
            .inc_by(p.files.len() as u64);
        match packages::create(client, &who, landing, entry.batch, p).await {
            Ok(_) => created.push(format!("{} ({} files)", p.name, p.files.len())),
            Err(err) => {
                tracing::warn!(%err, package = %p.name, "failed to create a landing package; retried next turn")
            }
        }
    }
    let failed_missing = entry.missing.iter().filter(|m| m.failed).count();
    let note = format!(
        "batch {}: {} new file(s), {} to package again, {} not found ({} out of attempts); packages {}",
        entry.batch,
        assessment.ready.len(),
        assessment.retry.values().map(Vec::len).sum::<usize>(),
        entry.missing.len(),
        failed_missing,
        if created.is_empty() { "none".to_owned() } else { created.join(", ") }
    );
    tracing::info!(namespace = %ns, datum = %name, "{note}");
    publish(&ctx.recorder, datum, failed_missing > 0, "BatchCut", note).await;
    for m in entry.missing.iter().filter(|m| m.failed) {
        ctx.metrics.landing.files_failed.get_or_create(&LandingMetrics::dest(&ns, &name, &m.destination)).inc();
    }
    Ok(())
}

/// Directories holding the marker, among those of files not in the ledger yet.
async fn markers(landing: &Landing, listing: &[FileStatus], state: &DatumState) -> HashSet<String> {
    let Some(marker) = &landing.marker else { return HashSet::new() };
    let Some(ledger) = &state.ledger else { return HashSet::new() };
    let dirs: HashSet<&str> =
        listing.iter().filter(|f| !ledger.files.contains_key(&f.url)).map(|f| rules::dir_of(&f.url)).collect();
    let Ok(source) = Source::for_url(&landing.path) else { return HashSet::new() };
    let mut present = HashSet::new();
    for dir in dirs {
        if matches!(source.exists(&format!("{dir}/{marker}")).await, Ok(true)) {
            present.insert(dir.to_owned());
        }
    }
    present
}

async fn list(pattern: &str) -> Result<Vec<FileStatus>, SourceError> {
    Source::for_url(pattern)?.list_status(pattern).await
}

async fn maybe_snapshot(state: &mut DatumState) -> Result<(), StoreError> {
    let (Some(store), Some(ledger)) = (&state.store, &mut state.ledger) else { return Ok(()) };
    if ledger.next_entry < state.last_snapshot + super::store::SNAPSHOT_EVERY {
        return Ok(());
    }
    let listed = &state.listed;
    let forgotten = ledger.forget_gone(&|url| listed.contains(url));
    if store.maybe_snapshot(ledger, state.last_snapshot).await? {
        tracing::info!(dir = %store.dir, entry = ledger.next_entry, forgotten, "landing ledger snapshot written");
        state.last_snapshot = ledger.next_entry;
    }
    Ok(())
}

/// Queues the Datum's status with the landing section (on top of the freshest status known,
/// so the Datum controller's Ready condition stays).
fn write_status(ctx: &Context, datum: &Datum, state: &DatumState, landing: &Landing, dir: &str, now: u64) {
    let (ns, name) = (datum.namespace().unwrap_or_default(), datum.name_any());
    let base: DatumStatus =
        ctx.status.latest_status::<Datum>(&ns, &name).or_else(|| datum.status.clone()).unwrap_or_default();
    let destinations: Vec<String> = landing.destinations.iter().map(|d| d.name.clone()).collect();
    let empty = Ledger::default();
    let ledger = state.ledger.as_ref().unwrap_or(&empty);
    let section = status::landing_status(ledger, &state.seen, &destinations, dir, now);
    let labels = LandingMetrics::datum(&ns, &name);
    ctx.metrics.landing.files_pending.get_or_create(&labels).set(section.files_pending);
    ctx.metrics.landing.lag_seconds.get_or_create(&labels).set(section.lag_seconds);
    let time = Time(jiff::Timestamp::now());
    let old_conditions = base.conditions.clone();
    let new = status::with_landing(base, section, &state.seen, datum.metadata.generation, &time);
    let urgent = new.conditions != old_conditions;
    ctx.status.submit_status::<Datum>(&ns, &name, &new, urgent);
}
