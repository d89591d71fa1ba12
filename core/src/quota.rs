//! Quota periods of `rateLimit.requestsPerDay`: the calendar day in the Destination's
//! `quotaResetTimeZone`, or consecutive parts of it `quotaWindowSeconds` long from midnight
//! on. The last part of a day ends at the next midnight, so a day of 23 or 25 hours (a
//! daylight-saving change) has one shorter or longer part, and the default (a whole day) is
//! always the calendar day.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// The longest period: a day.
pub const DAY_MS: u64 = 86_400_000;

/// One quota period, in Unix milliseconds: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub start_unix_ms: u64,
    pub end_unix_ms: u64,
}

/// Why a period cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The time zone is not in the time zone database.
    #[error("unknown time zone {name:?}")]
    UnknownTimeZone {
        name: String,
        #[source]
        source: jiff::Error,
    },
    /// The instant is outside what the calendar handles.
    #[error("no quota period at {unix_ms} ms")]
    OutOfRange {
        unix_ms: u64,
        #[source]
        source: jiff::Error,
    },
}

/// The time zone named `name` (IANA, `UTC`). `UTC` needs no time zone database (a minimal
/// image may have none); any other name is looked up in the system's (`/usr/share/zoneinfo`).
pub fn time_zone(name: &str) -> Result<TimeZone, QuotaError> {
    if matches!(name, "UTC" | "Etc/UTC") {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|source| QuotaError::UnknownTimeZone { name: name.to_owned(), source })
}

/// The period holding `now_unix_ms`, for periods of `window_seconds` (clamped to 1 s … a day)
/// from midnight in `tz`.
pub fn period_at(now_unix_ms: u64, window_seconds: i64, tz: &TimeZone) -> Result<Period, QuotaError> {
    let range = |source| QuotaError::OutOfRange { unix_ms: now_unix_ms, source };
    let now = Timestamp::from_millisecond(i64::try_from(now_unix_ms).unwrap_or(i64::MAX)).map_err(range)?;
    let zoned = now.to_zoned(tz.clone());
    let midnight = zoned.start_of_day().map_err(range)?;
    let next = zoned.tomorrow().and_then(|t| t.start_of_day()).map_err(range)?;
    let day_start = u64::try_from(midnight.timestamp().as_millisecond()).unwrap_or(0);
    let day_end = u64::try_from(next.timestamp().as_millisecond()).unwrap_or(u64::MAX);
    let window = u64::try_from(window_seconds).unwrap_or(1).clamp(1, DAY_MS / 1000) * 1000;
    let per_day = (DAY_MS / window).max(1);
    let parts = per_day.min(day_end.saturating_sub(day_start).div_ceil(window)).max(1);
    let k = (now_unix_ms.saturating_sub(day_start) / window).min(parts - 1);
    let start = day_start + k * window;
    let end = if k == parts - 1 { day_end } else { start + window };
    Ok(Period { start_unix_ms: start, end_unix_ms: end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        let ts: Timestamp = s.parse().expect("timestamp");
        u64::try_from(ts.as_millisecond()).expect("after 1970")
    }

    #[test]
    fn a_day_is_the_calendar_day_of_the_time_zone() {
        let utc = time_zone("UTC").expect("UTC");
        let p = period_at(ms("2026-03-10T13:00:00Z"), 86_400, &utc).expect("period");
        assert_eq!((p.start_unix_ms, p.end_unix_ms), (ms("2026-03-10T00:00:00Z"), ms("2026-03-11T00:00:00Z")));
        let berlin = time_zone("Europe/Berlin").expect("Berlin");
        let p = period_at(ms("2026-03-10T23:30:00Z"), 86_400, &berlin).expect("period");
        assert_eq!(p.start_unix_ms, ms("2026-03-10T23:00:00Z"), "local midnight, UTC+1");
        assert_eq!(p.end_unix_ms, ms("2026-03-11T23:00:00Z"));
    }

    #[test]
    fn daylight_saving_days_keep_their_calendar_length() {
        let berlin = time_zone("Europe/Berlin").expect("Berlin");
        // 2026-03-29: clocks go forward, the day has 23 hours.
        let p = period_at(ms("2026-03-29T12:00:00Z"), 86_400, &berlin).expect("period");
        assert_eq!(p.end_unix_ms - p.start_unix_ms, 23 * 3_600_000);
        // Hourly parts: 23 of them, the last ends at midnight.
        let last = period_at(ms("2026-03-29T21:30:00Z"), 3_600, &berlin).expect("period");
        assert_eq!(last.end_unix_ms, ms("2026-03-29T22:00:00Z"));
        // 2026-10-25: clocks go back, 25 hours; the 24th hourly part lasts two hours.
        let p = period_at(ms("2026-10-25T12:00:00Z"), 86_400, &berlin).expect("period");
        assert_eq!(p.end_unix_ms - p.start_unix_ms, 25 * 3_600_000);
        let last = period_at(ms("2026-10-25T22:30:00Z"), 3_600, &berlin).expect("period");
        assert_eq!(last.end_unix_ms - last.start_unix_ms, 2 * 3_600_000);
    }

    #[test]
    fn short_windows_cut_the_day_from_midnight_and_follow_each_other() {
        let utc = time_zone("UTC").expect("UTC");
        let p = period_at(ms("2026-03-10T00:01:05Z"), 30, &utc).expect("period");
        assert_eq!((p.start_unix_ms, p.end_unix_ms), (ms("2026-03-10T00:01:00Z"), ms("2026-03-10T00:01:30Z")));
        let next = period_at(p.end_unix_ms, 30, &utc).expect("period");
        assert_eq!(next.start_unix_ms, p.end_unix_ms);
        let before = period_at(p.start_unix_ms - 1, 30, &utc).expect("period");
        assert_eq!(before.end_unix_ms, p.start_unix_ms);
    }

    #[test]
    fn an_unknown_time_zone_is_an_error_naming_it() {
        let err = time_zone("Mars/Olympus_Mons").expect_err("unknown");
        assert!(err.to_string().contains("Mars/Olympus_Mons"), "{err}");
    }
}
