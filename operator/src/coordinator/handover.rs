//! Handing a worker's capacity over when it runs out of work.
//!
//! Under a limit, each worker of a Destination sends at its share. When one of them finishes
//! its last lease and nothing is pending, its share should go to the workers still sending at
//! once: every tenth of a second it lies idle is a tenth of a second of that share unused
//! (measured: two workers splitting 12 shards 7/5 ended at 97.8–98.6 % of the limit, one
//! worker's share idle for half a second or more while the other waited for its next
//! heartbeat). Two things make the handover quick:
//!
//! - A worker that reports every lease it held done and is granted none has nothing in
//!   flight: every record it read is acknowledged. Its share is void from that heartbeat on
//!   (see [`idle`]), not one heartbeat and a settling pause later.
//! - A worker that could use more than its share learns of the capacity only at its next
//!   heartbeat. The coordinator knows when each worker is likely to finish (bytes left of its
//!   leases, records per byte so far, its rate): it asks a hungry worker back just after the
//!   soonest such moment ([`hungry_interval`]) instead of at its usual half-second.

use crate::planner::Millis;

/// How long after another worker's expected finish a hungry worker is asked back: the
/// finishing worker's last heartbeat must have arrived first.
pub const HANDOVER_MARGIN_MS: Millis = 25;

/// The shortest interval asked for a handover.
pub const HANDOVER_MIN_INTERVAL_MS: u32 = 50;

/// How long after an expected finish that has not happened yet a hungry worker keeps asking
/// at the transition interval (an estimate can be early: the last records retried, the
/// partner slower for a moment); after that, at its usual interval.
pub const OVERDUE_MS: Millis = 1_000;

/// Whether a worker has just finished its work: it reports leases, every one of them done
/// (`done`: each record acknowledged), and none was granted in the answer. It has nothing in
/// flight and nothing to send, so its share may go to others at once. A worker reporting no
/// lease at all was already weighed at nothing (its share went to zero when it last reported
/// one done); a draining worker's share goes the draining way (void once it reports enforcing
/// nothing).
pub fn idle(done: impl Iterator<Item = bool>, draining: bool, granted: usize) -> bool {
    let (mut reported, mut all_done) = (false, true);
    for d in done {
        reported = true;
        all_done &= d;
    }
    reported && all_done && granted == 0 && !draining
}

/// When a worker with `records_left` to send at `rate` requests per second (its measured
/// rate, else its share) is expected to have sent them, from `now`.
pub fn drains_at(now: Millis, records_left: Option<u64>, measured_rps: u64, share_rps: u32) -> Option<Millis> {
    let rate = if measured_rps > 0 { measured_rps } else { u64::from(share_rps) };
    let left = records_left?;
    (rate > 0).then(|| now + (u128::from(left) * 1000 / u128::from(rate)).min(u128::from(u32::MAX)) as Millis)
}

/// The heartbeat interval of a worker that could use more than its share, at `now`: `usual`,
/// or shorter when another worker is expected to finish its leases and give its share up
/// (`soonest` over the others; none while a shard is pending, which a finishing worker takes).
pub fn hungry_interval(now: Millis, soonest: Option<Millis>, usual: u32, transition: u32) -> u32 {
    let Some(at) = soonest else { return usual };
    if at + OVERDUE_MS < now {
        usual
    } else if at <= now {
        transition.min(usual)
    } else {
        let until = (at - now + HANDOVER_MARGIN_MS).min(u64::from(u32::MAX)) as u32;
        until.clamp(HANDOVER_MIN_INTERVAL_MS.min(usual), usual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hungry_worker_comes_back_just_after_the_soonest_expected_finish() {
        // (now, soonest, interval)
        let table = [
            // Nobody expected to finish: the usual interval.
            (10_000, None, 500),
            // Expected in 200 ms: back 25 ms after it.
            (10_000, Some(10_200), 225),
            // Later than the usual interval: the usual interval.
            (10_000, Some(12_000), 500),
            (10_000, Some(10_475), 500),
            // Very soon: not sooner than 50 ms.
            (10_000, Some(10_001), 50),
            (10_000, Some(10_010), 50),
            // Due and not heard of yet: the transition interval, for a second.
            (10_000, Some(10_000), 100),
            (10_000, Some(9_500), 100),
            (10_000, Some(9_000), 100),
            // Overdue by more than a second: the estimate was wrong; the usual interval.
            (10_000, Some(8_999), 500),
        ];
        for (now, soonest, expected) in table {
            assert_eq!(hungry_interval(now, soonest, 500, 100), expected, "{now} {soonest:?}");
        }
        // Never longer than the usual interval, whatever it is.
        assert_eq!(hungry_interval(10_000, Some(10_200), 40, 100), 40);
        assert_eq!(hungry_interval(10_000, Some(9_900), 40, 100), 40);
    }

    #[test]
    fn a_worker_drains_its_records_left_at_its_measured_rate_or_its_share() {
        // (records left, measured, share, expected in ms from 1,000)
        let table = [
            (Some(5_000), 10_000, 5_000, Some(500)),
            (Some(5_000), 0, 5_000, Some(1_000)),
            (Some(0), 10_000, 5_000, Some(0)),
            (None, 10_000, 5_000, None),
            (Some(5_000), 0, 0, None),
            (Some(u64::MAX), 1, 0, Some(u64::from(u32::MAX))),
        ];
        for (left, measured, share, expected) in table {
            assert_eq!(
                drains_at(1_000, left, measured, share),
                expected.map(|e| 1_000 + e),
                "{left:?} {measured} {share}"
            );
        }
    }

    #[test]
    fn a_worker_is_idle_when_every_lease_it_reports_is_done_and_it_gets_none() {
        // (leases reported done or not, draining, granted now, idle)
        let table: [(&[bool], bool, usize, bool); 6] = [
            (&[], false, 0, false),
            (&[true, true], false, 0, true),
            (&[true, false], false, 0, false),
            (&[false], false, 0, false),
            (&[true], false, 1, false),
            (&[true], true, 0, false),
        ];
        for (done, draining, granted, expected) in table {
            assert_eq!(idle(done.iter().copied(), draining, granted), expected, "{done:?} {draining} {granted}");
        }
    }
}
