//! Package progress roll-ups: percent, rate over a sliding window, ETA, completed shard ranges
//! and the top failure reasons.

use std::collections::VecDeque;

use super::Millis;

/// Percent done (0..=100), rounded down; 100 for an empty package.
pub fn percent(done: u64, total: u64) -> i32 {
    if total == 0 {
        return 100;
    }
    (u128::from(done.min(total)) * 100 / u128::from(total)) as i32
}

/// How long after the last report a reading starts to lower the rate (two heartbeats).
pub const REPORT_GRACE_MS: Millis = 2_000;

/// Cumulative (records, bytes) samples over a sliding window, for rates.
///
/// Two kinds of sample: a *report* (workers' counters just taken in: the records they had sent
/// by then) and a *clock* sample (a reading between reports, so a rate decays when reports stop
/// moving). Only the latest clock sample is kept, at the back: it never becomes the baseline a
/// rate is measured from. A clock sample taken just before a report that shows the first
/// records moved is an instant at which records had already been sent but not reported, and as
/// a baseline it made a starting package's rate read far above the limit for a whole window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindow {
    window_ms: Millis,
    /// (at, records, bytes, reported)
    samples: VecDeque<(Millis, u64, u64, bool)>,
}

impl RateWindow {
    /// A window of `window_ms`.
    pub fn new(window_ms: Millis) -> Self {
        RateWindow { window_ms, samples: VecDeque::new() }
    }

    /// Records cumulative totals just reported at `now`, dropping samples older than the
    /// window (keeping one just outside it as the baseline). Leading samples with the records
    /// count of the next one are dropped too: time before the first record of the window was
    /// acknowledged (workers starting, a pause that ended) is not delivery time, and counting
    /// it made the rate of a starting package climb for a whole window.
    pub fn record(&mut self, now: Millis, records: u64, bytes: u64) {
        self.push(now, records, bytes, true);
    }

    /// Records the totals at `now` between reports: the last point of the window until the
    /// next sample replaces it, never a baseline.
    pub fn record_clock(&mut self, now: Millis, records: u64, bytes: u64) {
        self.push(now, records, bytes, false);
    }

    fn push(&mut self, now: Millis, records: u64, bytes: u64, reported: bool) {
        while let Some(&(t, _, _, was_reported)) = self.samples.back()
            && (t >= now || !was_reported)
        {
            self.samples.pop_back();
        }
        self.samples.push_back((now, records, bytes, reported));
        while self.samples.len() > 2
            && self.samples.get(1).is_some_and(|&(t, ..)| now.saturating_sub(t) >= self.window_ms)
        {
            self.samples.pop_front();
        }
        // (Only ever down to a report: a reading never becomes the baseline.)
        while self.samples.len() > 1
            && self.samples.get(1).is_some_and(|s| s.3 && Some(s.1) == self.samples.front().map(|f| f.1))
        {
            self.samples.pop_front();
        }
    }

    fn per_second(&self, pick: impl Fn(&(Millis, u64, u64, bool)) -> u64) -> u64 {
        // A reading soon after the last report is no sign of a stall: the rate is measured to
        // that report (reports come once a heartbeat; a reading half-way through would lower
        // the rate of a package moving at full speed by half a heartbeat's worth).
        let last = match self.last_report() {
            Some(report) if self.report_age() <= REPORT_GRACE_MS => Some(report),
            _ => self.samples.back(),
        };
        match (self.samples.front(), last) {
            (Some(first), Some(last)) if last.0 > first.0 => {
                pick(last).saturating_sub(pick(first)) * 1000 / (last.0 - first.0)
            }
            _ => 0,
        }
    }

    /// Records per second over the window.
    pub fn records_per_second(&self) -> u64 {
        self.per_second(|s| s.1)
    }

    /// Bytes per second over the window.
    pub fn bytes_per_second(&self) -> u64 {
        self.per_second(|s| s.2)
    }

    /// The latest report (the back, or just before the one reading kept behind it).
    fn last_report(&self) -> Option<&(Millis, u64, u64, bool)> {
        self.samples.iter().rev().find(|s| s.3)
    }

    /// How old the last report is at the last reading (0 when the last sample is a report).
    pub fn report_age(&self) -> Millis {
        match (self.samples.back(), self.last_report()) {
            (Some(&(at, ..)), Some(&(reported, ..))) => at.saturating_sub(reported),
            _ => 0,
        }
    }
}

/// How much a worker's clock may run slow against the leader's before its stamps lag: the
/// offset estimate grows by this many milliseconds per second (1,000 ppm), far above real
/// clock drift and far below the heartbeat delays it filters out.
pub const CLOCK_AGING_PER_SECOND_MS: i64 = 1;

/// How far back a stamp may ever lie (a guard against a nonsense clock).
pub const MAX_STAMP_LAG_MS: Millis = 5_000;

/// When a worker took a heartbeat's counters, on the leader's clock.
///
/// A heartbeat held up on its way (a connection opened anew, a retransmitted SYN, a stalled
/// process) arrives late with the counters of when it left. Stamped at arrival, a late one
/// read as a lull and the next on-time one as a burst: a starting package whose first report
/// came in 0.7 s late showed RATE 226/s at a limit of 200/s. Each heartbeat carries the
/// worker's own monotonic clock; the smallest `arrival − clock` seen is the heartbeat that
/// travelled fastest, and `clock + that offset` is when the counters were taken. The estimate
/// ages by [`CLOCK_AGING_PER_SECOND_MS`] so a slow worker clock does not drift behind for ever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerClock {
    /// (offset = arrival − worker clock, arrival it was seen at) of the fastest heartbeat.
    fastest: Option<(i64, Millis)>,
}

impl WorkerClock {
    /// The leader-clock instant a heartbeat arriving at `now`, sent at `worker_ms` on the
    /// worker's clock, took its counters; `now` when the worker sends no clock.
    pub fn stamp(&mut self, worker_ms: Option<u64>, now: Millis) -> Millis {
        let Some(worker_ms) = worker_ms.and_then(|w| i64::try_from(w).ok()) else { return now };
        let Ok(arrival) = i64::try_from(now) else { return now };
        let observed = arrival.saturating_sub(worker_ms);
        let estimate = match self.fastest {
            Some((offset, seen)) => {
                let aged = i64::try_from(now.saturating_sub(seen))
                    .unwrap_or(i64::MAX)
                    .saturating_mul(CLOCK_AGING_PER_SECOND_MS)
                    / 1_000;
                offset.saturating_add(aged)
            }
            None => i64::MAX,
        };
        let offset = if observed <= estimate {
            self.fastest = Some((observed, now));
            observed
        } else {
            estimate
        };
        let stamp = u64::try_from(worker_ms.saturating_add(offset)).unwrap_or(now);
        stamp.clamp(now.saturating_sub(MAX_STAMP_LAG_MS), now)
    }
}

/// Seconds left for `remaining` units at `rate` units per second, counted as the units were
/// `age_ms` ago (the last report): that time has gone by already. Rounded to the nearest
/// second, and at least 1 while anything remains; `None` when not moving.
pub fn eta_seconds(remaining: u64, rate: u64, age_ms: Millis) -> Option<u64> {
    if remaining == 0 {
        return Some(0);
    }
    if rate == 0 {
        return None;
    }
    let left_ms = (u128::from(remaining) * 1_000 / u128::from(rate)).saturating_sub(u128::from(age_ms));
    Some(u64::try_from(left_ms.saturating_add(500) / 1_000).unwrap_or(u64::MAX).max(1))
}

/// Records a package still has to deliver, estimated from its bytes: the records
/// acknowledged so far per byte done, times the bytes left. `None` before any byte is done
/// (nothing to estimate from).
pub fn remaining_records(acknowledged: u64, bytes_done: u64, bytes_total: u64) -> Option<u64> {
    let left = bytes_total.saturating_sub(bytes_done);
    if left == 0 {
        return Some(0);
    }
    if bytes_done == 0 || acknowledged == 0 {
        return None;
    }
    let estimate = u128::from(acknowledged) * u128::from(left) / u128::from(bytes_done);
    Some(u64::try_from(estimate).unwrap_or(u64::MAX))
}

/// A package's ETA: the records left at the windowed records rate, so RATE and ETA agree;
/// before any byte is done, the bytes left at the bytes rate.
pub fn package_eta(acknowledged: u64, bytes_done: u64, bytes_total: u64, window: &RateWindow) -> Option<u64> {
    match remaining_records(acknowledged, bytes_done, bytes_total) {
        Some(records) => eta_seconds(records, window.records_per_second(), window.report_age()),
        None => eta_seconds(bytes_total.saturating_sub(bytes_done), window.bytes_per_second(), window.report_age()),
    }
}

pub use courier_api::common::human_duration;

/// Encodes shard ids as run-length ranges: `0-41,43,45-60` (input in any order, duplicates ok).
pub fn encode_ranges(ids: &[u32]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(",")
}

/// A malformed range list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid shard range {part:?} in {input:?}")]
pub struct RangeError {
    pub input: String,
    pub part: String,
}

/// Decodes [`encode_ranges`] output (spaces around parts allowed; empty string = none).
pub fn decode_ranges(input: &str) -> Result<Vec<u32>, RangeError> {
    let mut out = Vec::new();
    let err = |part: &str| RangeError { input: input.to_owned(), part: part.to_owned() };
    for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.trim().parse().map_err(|_| err(part))?;
                let b: u32 = b.trim().parse().map_err(|_| err(part))?;
                if a > b || b - a > 10_000_000 {
                    return Err(err(part));
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| err(part))?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// One failure reason with its count and a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub count: u64,
    pub sample: Option<String>,
}

/// Merges reason lists (counts summed per code, first sample kept), most frequent first (ties
/// by code), at most `top` of them.
pub fn merge_reasons<'a>(lists: impl IntoIterator<Item = &'a Reason>, top: usize) -> Vec<Reason> {
    let mut merged: std::collections::BTreeMap<&str, Reason> = std::collections::BTreeMap::new();
    for r in lists {
        let entry = merged.entry(&r.code).or_insert_with(|| Reason { code: r.code.clone(), count: 0, sample: None });
        entry.count += r.count;
        if entry.sample.is_none() {
            entry.sample = r.sample.clone();
        }
    }
    let mut out: Vec<Reason> = merged.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
    out.truncate(top);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_down_and_treats_empty_as_done() {
        let cases = [(0, 100, 0), (50, 100, 50), (999, 1000, 99), (1000, 1000, 100), (5, 0, 100), (200, 100, 100)];
        for (done, total, expected) in cases {
            assert_eq!(percent(done, total), expected, "{done}/{total}");
        }
    }

    #[test]
    fn the_rate_is_measured_over_the_sliding_window() {
        let mut w = RateWindow::new(10_000);
        assert_eq!(w.records_per_second(), 0);
        w.record(0, 0, 0);
        w.record(1_000, 100, 1_000);
        assert_eq!(w.records_per_second(), 100);
        assert_eq!(w.bytes_per_second(), 1_000);
        for t in 2..=30 {
            w.record(t * 1_000, 100 + (t - 1) * 10, 0);
        }
        assert_eq!(w.records_per_second(), 10, "old fast samples left the window");
        w.record(30_000, 500, 0);
        assert!(w.records_per_second() > 10, "a sample at the same instant replaces the last");
    }

    #[test]
    fn a_reading_between_reports_is_never_the_baseline_of_a_rate() {
        // Leased at 0; the worker sends 150/s from 0 and reports every second. Readings between
        // reports (status writes) see 0 until the first report at 1 s says 150.
        let mut w = RateWindow::new(15_000);
        w.record(0, 0, 0);
        w.record_clock(400, 0, 0);
        w.record_clock(950, 0, 0);
        w.record(1_000, 150, 0);
        assert_eq!(w.records_per_second(), 150, "measured from the report at 0, not the reading at 0.95 s");
        for t in 2..=5u64 {
            w.record_clock(t * 1_000 - 10, (t - 1) * 150, 0);
            w.record(t * 1_000, t * 150, 0);
        }
        assert_eq!(w.records_per_second(), 150);
        // A reading within the grace after a report: still the reported rate.
        w.record_clock(6_900, 750, 0);
        assert_eq!(w.records_per_second(), 150);
        // Reports stop: the readings make the rate decay.
        w.record_clock(10_000, 750, 0);
        assert_eq!(w.records_per_second(), 75);
        w.record_clock(12_000, 750, 0);
        assert_eq!(w.records_per_second(), 62, "only the latest reading is kept");
        w.record_clock(30_000, 750, 0);
        assert_eq!(w.records_per_second(), 0, "nothing moved within the window");
    }

    #[test]
    fn time_before_the_first_acknowledgement_is_not_delivery_time() {
        // Registered at 0; workers start and the first records are acknowledged at 8 s, then
        // 100 records/s: the rate is 100/s at once, not an average that includes the start.
        let mut w = RateWindow::new(15_000);
        for t in 0..=8 {
            w.record(t * 1_000, 0, 0);
        }
        for t in 9..=12 {
            w.record(t * 1_000, (t - 8) * 100, (t - 8) * 1_000);
        }
        assert_eq!(w.records_per_second(), 100);
        assert_eq!(w.bytes_per_second(), 1_000);
        // A pause: no records for 5 s, then delivery again; a stall inside the window counts.
        for t in 13..=17 {
            w.record(t * 1_000, 400, 4_000);
        }
        assert!(w.records_per_second() < 100, "{}", w.records_per_second());
        // A window that saw nothing move says 0.
        for t in 18..=40 {
            w.record(t * 1_000, 400, 4_000);
        }
        assert_eq!(w.records_per_second(), 0);
    }

    #[test]
    fn the_eta_is_the_estimated_records_left_at_the_records_rate() {
        let cases = [
            // acknowledged, bytes done, bytes total, expected remaining records
            (100, 1_000, 10_000, Some(900)),
            (0, 0, 10_000, None),
            (50, 0, 10_000, None),
            (100, 10_000, 10_000, Some(0)),
            (7, 3, 0, Some(0)),
            (u64::MAX, 1, u64::MAX, Some(u64::MAX)),
        ];
        for (acked, done, total, expected) in cases {
            assert_eq!(remaining_records(acked, done, total), expected, "{acked} {done}/{total}");
        }
        let mut w = RateWindow::new(15_000);
        w.record(0, 0, 0);
        w.record(10_000, 1_000, 10_000);
        // 1,000 records in 10,000 bytes; 90,000 bytes left: 9,000 records at 100/s.
        assert_eq!(package_eta(1_000, 10_000, 100_000, &w), Some(90));
        // Nothing done yet: bytes left at the bytes rate.
        assert_eq!(package_eta(0, 0, 100_000, &w), Some(100));
        let idle = RateWindow::new(15_000);
        assert_eq!(package_eta(1_000, 10_000, 100_000, &idle), None);
    }

    #[test]
    fn the_age_of_the_last_report_is_measured_at_the_last_reading() {
        let mut w = RateWindow::new(15_000);
        assert_eq!(w.report_age(), 0, "empty");
        w.record(1_000, 10, 0);
        assert_eq!(w.report_age(), 0, "the last sample is a report");
        w.record_clock(1_700, 10, 0);
        assert_eq!(w.report_age(), 700);
        w.record_clock(2_300, 10, 0);
        assert_eq!(w.report_age(), 1_300, "a later reading replaces the one before");
        w.record(2_400, 30, 0);
        assert_eq!(w.report_age(), 0);
        // 1,000 records in 10,000 bytes, 90,000 bytes left: 9,000 records at 100/s, counted
        // 1.6 s before this reading.
        let mut w = RateWindow::new(15_000);
        w.record(0, 0, 0);
        w.record(10_000, 1_000, 10_000);
        w.record_clock(11_600, 1_000, 10_000);
        assert_eq!(w.records_per_second(), 100, "a reading within the grace does not lower the rate");
        assert_eq!(package_eta(1_000, 10_000, 100_000, &w), Some(88), "9,000 at 100/s, less 1.6 s");
    }

    #[test]
    fn eta_is_remaining_over_rate_and_unknown_when_stalled() {
        // (remaining, rate, age of the counts in ms, expected)
        let cases = [
            (100, 10, 0, Some(10)),
            (101, 10, 0, Some(10)),
            (105, 10, 0, Some(11)),
            (100, 10, 1_400, Some(9)),
            (100, 10, 1_600, Some(8)),
            (1, 10, 5_000, Some(1)),
            (0, 0, 0, Some(0)),
            (5, 0, 0, None),
            (u64::MAX, 1, 0, Some(u64::MAX)),
        ];
        for (remaining, rate, age, expected) in cases {
            assert_eq!(eta_seconds(remaining, rate, age), expected, "{remaining} at {rate}/s, {age} ms old");
        }
    }

    #[test]
    fn durations_read_like_kubectl_ages() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (200, "3m20s"),
            (3_600, "1h"),
            (3_720, "1h2m"),
            (3_725, "1h2m"),
            (86_400, "1d"),
            (190_000, "2d4h"),
        ];
        for (secs, expected) in cases {
            assert_eq!(human_duration(secs), expected, "{secs}");
        }
    }

    #[test]
    fn shard_ranges_encode_runs_and_decode_back() {
        let cases: &[(&[u32], &str)] = &[
            (&[], ""),
            (&[0], "0"),
            (&[0, 1, 2], "0-2"),
            (&[3, 1, 2, 2], "1-3"),
            (&[0, 1, 2, 4, 6, 7, 8], "0-2,4,6-8"),
            (&[5, 9], "5,9"),
        ];
        for (ids, text) in cases {
            assert_eq!(encode_ranges(ids), *text);
            let mut sorted = ids.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(decode_ranges(text), Ok(sorted));
        }
        let big: Vec<u32> = (0..=41).chain([43]).chain(45..=60).collect();
        assert_eq!(encode_ranges(&big), "0-41,43,45-60");
        assert_eq!(decode_ranges("0-41, 43,45-60").map(|v| v.len()), Ok(59));
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in ["a", "1-", "-3", "5-2", "1,,x", "0-99999999999"] {
            assert!(decode_ranges(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reasons_merge_by_code_most_frequent_first_with_a_sample() {
        let r = |code: &str, count, sample: Option<&str>| Reason {
            code: code.into(),
            count,
            sample: sample.map(Into::into),
        };
        let a = [r("400", 3, None), r("503", 10, Some("busy"))];
        let b = [r("400", 4, Some("bad json")), r("timeout", 1, None), r("422", 7, None)];
        let merged = merge_reasons(a.iter().chain(&b), 3);
        assert_eq!(merged, vec![r("503", 10, Some("busy")), r("400", 7, Some("bad json")), r("422", 7, None)]);
    }

    #[test]
    fn a_heartbeat_held_up_on_its_way_is_stamped_when_its_counters_were_taken() {
        // The worker's clock starts at 0 when the leader's reads 10,000; arrivals are the send
        // instant plus a delay.
        // (worker clock, arrival, expected stamp) per beat
        type Beats = &'static [(u64, u64, u64)];
        let cases: &[(&str, Beats)] = &[
            ("on time", &[(0, 10_002, 10_002), (1_000, 11_002, 11_002), (2_000, 12_004, 12_003)]),
            (
                "the first one late: its stamp is its arrival, the next ones learn the offset",
                &[(0, 10_700, 10_700), (1_000, 11_002, 11_002), (2_000, 12_002, 12_002)],
            ),
            (
                "a late one later is stamped when it left",
                &[(0, 10_002, 10_002), (1_000, 11_002, 11_002), (2_000, 12_700, 12_003), (3_000, 13_002, 13_002)],
            ),
        ];
        for (name, beats) in cases {
            let mut clock = WorkerClock::default();
            for &(worker, arrival, expected) in beats.iter() {
                assert_eq!(clock.stamp(Some(worker), arrival), expected, "{name}: beat at {worker}");
            }
        }
    }

    #[test]
    fn a_worker_clock_is_trusted_only_as_far_as_it_goes() {
        let mut clock = WorkerClock::default();
        assert_eq!(clock.stamp(None, 5_000), 5_000, "no clock: the arrival");
        // A worker clock running 0.5 % slow: the stamp lags by at most the aging allowance.
        let mut clock = WorkerClock::default();
        let mut worst = 0;
        for i in 0..3_600u64 {
            let arrival = 1_000_000 + i * 1_000;
            let worker = i * 995;
            let stamp = clock.stamp(Some(worker), arrival);
            assert!(stamp <= arrival, "never after the arrival");
            worst = worst.max(arrival - stamp);
        }
        assert!(worst <= MAX_STAMP_LAG_MS, "lag {worst} ms");
        // A nonsense clock far ahead of the leader's: never before MAX_STAMP_LAG_MS ago.
        let mut clock = WorkerClock::default();
        assert_eq!(clock.stamp(Some(u64::MAX), 10_000), 10_000);
        clock.stamp(Some(0), 100_000);
        assert_eq!(clock.stamp(Some(0), 200_000), 200_000 - MAX_STAMP_LAG_MS);
    }

    #[test]
    fn rate_from_stamped_reports_is_the_sending_rate_though_the_first_came_late() {
        // 200 records/s from the leader's 10,000 (the worker's 0); a heartbeat 600 ms after the
        // answer to the one before, the one carrying the first records 700 ms late.
        let mut stamped = RateWindow::new(15_000);
        let mut arrived = RateWindow::new(15_000);
        let mut clock = WorkerClock::default();
        clock.stamp(Some(0), 10_001); // the beat the lease was granted in
        let mut sent_at = 0;
        for k in 1..=10u64 {
            sent_at += 600;
            let delay = if k == 1 { 700 } else { 1 };
            let arrival = 10_000 + sent_at + delay;
            let records = sent_at / 5;
            stamped.record(clock.stamp(Some(sent_at), arrival), records, 0);
            arrived.record(arrival, records, 0);
            sent_at += delay;
        }
        let rate = stamped.records_per_second();
        assert!((198..=202).contains(&rate), "stamped when taken: {rate}");
        assert!(arrived.records_per_second() > 215, "stamped at arrival: {}", arrived.records_per_second());
    }
}
