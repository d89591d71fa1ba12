//! What a partner saw of a delivery, as the scale benchmark judges it: the steady rate, how
//! even it was second by second and in 100 ms bins, the busiest sliding second, and how the
//! accepted requests split among the senders. Pure functions over the simulator's arrivals.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::sim::{Arrival, bins, busiest_window};

const SECOND: u64 = 1_000_000;

/// The figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RateFigures {
    /// Accepted requests per second over the steady window.
    pub rate: f64,
    /// Length of the steady window in seconds (whole seconds).
    pub window_secs: u64,
    /// Requests (accepted or not) in the busiest sliding second of the whole run.
    pub busiest_second: usize,
    /// Accepted requests in the busiest 100 ms bin of the steady window.
    pub busiest_tenth: u64,
    /// Coefficient of variation of the accepted requests per second over the steady window.
    pub per_second_cv: f64,
    /// Requests answered 429 over the whole run.
    pub rate_limited: usize,
    /// Accepted requests of each sender over the steady window, busiest first.
    pub senders: Vec<(Option<IpAddr>, u64)>,
    /// The same, counted only while every sender was sending (from the latest first request
    /// of a sender to the earliest last one, within the steady window): how the limit was
    /// split while all had work, whatever the shards left one of them at the end.
    pub senders_together: Vec<(Option<IpAddr>, u64)>,
}

impl RateFigures {
    /// The figures of `arrivals` (sorted by time). The steady window leaves out the first
    /// `skip_start` (workers starting, connections opening) and the last `skip_end` (shards
    /// running out), and is cut to whole seconds. `None` when no whole second remains.
    pub fn of(arrivals: &[Arrival], skip_start: Duration, skip_end: Duration) -> Option<RateFigures> {
        let accepted: Vec<&Arrival> = arrivals.iter().filter(|a| a.accepted).collect();
        let first = accepted.first()?.at_unix_micros;
        let last = accepted.last()?.at_unix_micros;
        let from = first.saturating_add(micros(skip_start));
        let to = last.saturating_sub(micros(skip_end));
        let window_secs = to.saturating_sub(from) / SECOND;
        if window_secs == 0 {
            return None;
        }
        let to = from + window_secs * SECOND;
        let in_window: Vec<&Arrival> =
            accepted.iter().copied().filter(|a| (from..to).contains(&a.at_unix_micros)).collect();
        let times: Vec<u64> = in_window.iter().map(|a| a.at_unix_micros).collect();
        let mut per_second = bins(&times, from, Duration::from_secs(1));
        per_second.resize(usize::try_from(window_secs).unwrap_or(usize::MAX), 0);
        let all: Vec<u64> = arrivals.iter().map(|a| a.at_unix_micros).collect();
        Some(RateFigures {
            rate: times.len() as f64 / window_secs as f64,
            window_secs,
            busiest_second: busiest_window(&all, Duration::from_secs(1)),
            busiest_tenth: bins(&times, from, Duration::from_millis(100)).into_iter().max().unwrap_or(0),
            per_second_cv: variation(&per_second),
            rate_limited: arrivals.iter().filter(|a| a.rate_limited).count(),
            senders: senders(&in_window),
            senders_together: senders(&together(&in_window)),
        })
    }

    /// How far the busiest sender's and the idlest sender's counts are from their mean, as a
    /// fraction of it (0 when one sender or none).
    pub fn unfairness(&self) -> f64 {
        spread(&self.senders)
    }

    /// [`Self::unfairness`] while every sender was sending.
    pub fn unfairness_together(&self) -> f64 {
        spread(&self.senders_together)
    }
}

/// How far the busiest and the idlest of `senders` are from their mean, as a fraction of it.
fn spread(senders: &[(Option<IpAddr>, u64)]) -> f64 {
    let counts: Vec<f64> = senders.iter().map(|(_, n)| *n as f64).collect();
    if counts.len() < 2 {
        return 0.0;
    }
    let mean = counts.iter().sum::<f64>() / counts.len() as f64;
    if mean == 0.0 {
        return 0.0;
    }
    counts.iter().map(|c| (c - mean).abs() / mean).fold(0.0, f64::max)
}

/// Standard deviation over mean of `counts` (0 for none or a zero mean).
pub fn variation(counts: &[u64]) -> f64 {
    if counts.is_empty() {
        return 0.0;
    }
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<u64>() as f64 / n;
    if mean == 0.0 {
        return 0.0;
    }
    let var = counts.iter().map(|&c| (c as f64 - mean).powi(2)).sum::<f64>() / n;
    var.sqrt() / mean
}

/// The arrivals (sorted by time) from the latest first arrival of a sender to the earliest
/// last one: while every sender was sending. Empty when they never all sent at once.
fn together<'a>(arrivals: &[&'a Arrival]) -> Vec<&'a Arrival> {
    let mut spans: BTreeMap<Option<IpAddr>, (u64, u64)> = BTreeMap::new();
    for a in arrivals {
        let span = spans.entry(a.peer).or_insert((a.at_unix_micros, a.at_unix_micros));
        span.1 = a.at_unix_micros;
    }
    let from = spans.values().map(|s| s.0).max().unwrap_or(0);
    let to = spans.values().map(|s| s.1).min().unwrap_or(0);
    arrivals.iter().copied().filter(|a| from < to && (from..=to).contains(&a.at_unix_micros)).collect()
}

/// The requests of each sender, busiest first.
fn senders(arrivals: &[&Arrival]) -> Vec<(Option<IpAddr>, u64)> {
    let mut by: BTreeMap<Option<IpAddr>, u64> = BTreeMap::new();
    for a in arrivals {
        *by.entry(a.peer).or_default() += 1;
    }
    let mut out: Vec<(Option<IpAddr>, u64)> = by.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 88, 0, last]))
    }

    /// `rate` accepted requests per second for `secs` seconds, evenly spaced, alternating among
    /// `senders` peers, starting at 1,000 s.
    fn even(rate: u64, secs: u64, senders: u8) -> Vec<Arrival> {
        let step = SECOND / rate;
        (0..rate * secs)
            .map(|i| Arrival {
                at_unix_micros: 1_000 * SECOND + i * step,
                accepted: true,
                rate_limited: false,
                peer: ip((i % u64::from(senders)) as u8),
            })
            .collect()
    }

    #[test]
    fn the_split_while_all_sent_leaves_out_a_sender_that_ran_out_of_work() {
        // Two senders alternating for 6 s, then the first alone for 4 s.
        let mut arrivals = even(1_000, 6, 2);
        let last = arrivals.last().map_or(0, |a| a.at_unix_micros);
        arrivals.extend((1..=4_000u64).map(|i| Arrival {
            at_unix_micros: last + i * 1_000,
            accepted: true,
            rate_limited: false,
            peer: ip(0),
        }));
        let f = RateFigures::of(&arrivals, Duration::from_secs(1), Duration::from_secs(1)).expect("window");
        assert!(f.unfairness() > 0.25, "over the whole window the first sent far more (4,500 against 2,500): {f:?}");
        assert!(f.unfairness_together() < 0.01, "while both sent they split evenly: {f:?}");
        let both: u64 = f.senders_together.iter().map(|(_, n)| n).sum();
        assert!((4_900..=5_100).contains(&both), "from 1 s to the second's last request: {both}");
        // One sender, or none at all: nothing to compare.
        let alone = RateFigures::of(&even(1_000, 5, 1), Duration::from_secs(1), Duration::from_secs(1)).expect("w");
        assert_eq!(alone.unfairness_together(), 0.0);
    }

    #[test]
    fn an_even_run_has_its_rate_no_variation_and_fair_senders() {
        let f = RateFigures::of(&even(1_000, 10, 2), Duration::from_secs(2), Duration::from_secs(1)).expect("window");
        assert_eq!(f.window_secs, 6, "10 s less 2 at the start and 1 at the end, whole seconds");
        assert!((f.rate - 1_000.0).abs() < 1e-9, "{f:?}");
        assert_eq!(f.busiest_second, 1_000);
        assert_eq!(f.busiest_tenth, 100);
        assert!(f.per_second_cv < 1e-9);
        assert_eq!(f.rate_limited, 0);
        assert_eq!(f.senders.len(), 2);
        assert!(f.unfairness() < 1e-9);
    }

    #[test]
    fn the_busiest_second_counts_every_request_and_429s_are_counted() {
        let mut a = even(100, 5, 1);
        // A clump of 50 refused requests in the middle of the third second.
        let mid = 1_002 * SECOND + SECOND / 2;
        a.extend((0..50).map(|i| Arrival {
            at_unix_micros: mid + i,
            accepted: false,
            rate_limited: true,
            peer: ip(0),
        }));
        a.sort_by_key(|x| x.at_unix_micros);
        let f = RateFigures::of(&a, Duration::ZERO, Duration::ZERO).expect("window");
        assert_eq!(f.busiest_second, 150);
        assert_eq!(f.rate_limited, 50);
        assert!((f.rate - 100.0).abs() < 1e-9, "the 429s are not in the rate: {f:?}");
    }

    #[test]
    fn an_uneven_run_shows_in_the_variation_and_the_senders() {
        // One sender sends 400/s, the other 200/s, for 4 s.
        let mut a: Vec<Arrival> = even(400, 4, 1);
        a.extend(even(200, 4, 1).into_iter().map(|x| Arrival { peer: ip(1), ..x }));
        a.sort_by_key(|x| x.at_unix_micros);
        let f = RateFigures::of(&a, Duration::ZERO, Duration::ZERO).expect("window");
        assert_eq!(f.senders, [(ip(0), 1_200), (ip(1), 600)], "busiest first (the window is 3 whole seconds)");
        assert!((f.unfairness() - 1.0 / 3.0).abs() < 1e-9, "{}", f.unfairness());
        let cv = variation(&[90, 110, 100, 100]);
        assert!((cv - (50.0f64).sqrt() / 100.0).abs() < 1e-9, "{cv}");
    }

    #[test]
    fn too_short_a_run_has_no_window() {
        assert_eq!(RateFigures::of(&even(100, 2, 1), Duration::from_secs(1), Duration::from_secs(1)), None);
        assert_eq!(RateFigures::of(&[], Duration::ZERO, Duration::ZERO), None);
        assert_eq!(variation(&[]), 0.0);
        assert_eq!(variation(&[0, 0]), 0.0);
    }
}
