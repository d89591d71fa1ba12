//! How many workers a Destination needs.
//!
//! Zero without backlog once `cooldownSeconds` have passed (or `min`); before the partner's
//! latency was ever measured, one worker (or `min`) to measure it; otherwise
//! `clamp(min, max, ⌈effective ÷ capacity per worker⌉)`, never more than there are shards to
//! lease, and at least one while there is backlog. Capacity per worker is the smaller of
//! Little's law (`maxInFlight ÷ p50 latency`) and the measured CPU-bound throughput.

use super::Millis;

/// Latency assumed before any is measured.
pub const DEFAULT_LATENCY_MICROS: u64 = 50_000;
/// Requests/s one worker is assumed to manage on its CPU before it is measured.
pub const DEFAULT_CPU_BOUND_RPS: u64 = 2_000;

/// Everything the decision depends on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AutoscaleInput {
    pub min: i32,
    pub max: i32,
    pub cooldown_seconds: i32,
    /// Requests/s the Destination may do (after AIMD).
    pub effective_rps: u32,
    /// Requests in flight one worker may have.
    pub max_in_flight_per_worker: u32,
    /// Median latency seen by the workers, if measured.
    pub latency_p50_micros: Option<u64>,
    /// Requests/s of a worker that is CPU-bound (busy and not waiting on the limiter), if measured.
    pub cpu_bound_rps: Option<u64>,
    /// Shards pending or leased.
    pub leasable_shards: u32,
    /// True while any package of the Destination has work left.
    pub has_backlog: bool,
    /// Since when there has been no backlog.
    pub idle_since: Option<Millis>,
    pub now: Millis,
    /// Replicas now (kept during the cooldown).
    pub current_replicas: i32,
    /// The Destination is suspended.
    pub suspended: bool,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoscaleDecision {
    pub replicas: i32,
    /// Why, for logs and events.
    pub reason: String,
}

/// Requests/s one worker can do: the smaller of Little's law and the CPU-bound figure.
pub fn capacity_per_worker(max_in_flight: u32, latency_p50_micros: Option<u64>, cpu_bound_rps: Option<u64>) -> u64 {
    let latency = latency_p50_micros.filter(|&l| l > 0).unwrap_or(DEFAULT_LATENCY_MICROS);
    let little = u64::from(max_in_flight.max(1)) * 1_000_000 / latency;
    little.min(cpu_bound_rps.filter(|&c| c > 0).unwrap_or(DEFAULT_CPU_BOUND_RPS)).max(1)
}

/// Desired replicas and why.
pub fn desired_replicas(input: &AutoscaleInput) -> AutoscaleDecision {
    let min = input.min.max(0);
    let max = input.max.max(min).max(1);
    if input.suspended {
        return AutoscaleDecision { replicas: 0, reason: "Destination suspended".into() };
    }
    if !input.has_backlog {
        let cooled = input.idle_since.is_none_or(|since| {
            input.now.saturating_sub(since) >= u64::from(input.cooldown_seconds.max(0) as u32) * 1000
        });
        if cooled {
            return AutoscaleDecision { replicas: min, reason: format!("no backlog: scaled to min {min}") };
        }
        let keep = input.current_replicas.clamp(min, max);
        return AutoscaleDecision { replicas: keep, reason: "no backlog: cooling down".into() };
    }
    if input.latency_p50_micros.is_none() {
        // Little's law needs the partner's latency: one worker measures it first (a guess
        // started as many as 10× too many pods, stopped seconds later). Workers already
        // running are kept: a new leader has not heard their latency yet, and stopping them
        // would cut deliveries short.
        let replicas = input.current_replicas.max(1).clamp(min.max(1), max);
        let reason = if input.current_replicas > 1 {
            format!(
                "latency not measured yet: keeps the {replicas} running; {} leasable shards; bounds {min}..{max}",
                input.leasable_shards
            )
        } else {
            format!(
                "latency not measured yet: {replicas} to measure it; {} leasable shards; bounds {min}..{max}",
                input.leasable_shards
            )
        };
        return AutoscaleDecision { replicas, reason };
    }
    let capacity = capacity_per_worker(input.max_in_flight_per_worker, input.latency_p50_micros, input.cpu_bound_rps);
    let needed = u64::from(input.effective_rps).div_ceil(capacity).max(1);
    let by_shards = u64::from(input.leasable_shards).max(1);
    let wanted = needed.min(by_shards).min(i32::MAX as u64) as i32;
    let replicas = wanted.clamp(min.max(1), max);
    let reason = format!(
        "{} rps at {capacity} rps per worker needs {needed}; {} leasable shards; bounds {min}..{max}",
        input.effective_rps, input.leasable_shards
    );
    AutoscaleDecision { replicas, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(effective_rps: u32, shards: u32) -> AutoscaleInput {
        AutoscaleInput {
            min: 0,
            max: 10,
            cooldown_seconds: 60,
            effective_rps,
            max_in_flight_per_worker: 64,
            latency_p50_micros: Some(100_000),
            cpu_bound_rps: None,
            leasable_shards: shards,
            has_backlog: true,
            idle_since: None,
            now: 1_000_000,
            current_replicas: 1,
            suspended: false,
        }
    }

    #[test]
    fn capacity_follows_littles_law_capped_by_cpu() {
        let cases: &[(u32, Option<u64>, Option<u64>, u64)] = &[
            (64, Some(100_000), None, 640),
            (64, Some(10_000), None, 2_000),
            (64, Some(10_000), Some(5_000), 5_000),
            (64, None, None, 1_280),
            (1, Some(2_000_000), None, 1),
            (8, Some(0), Some(0), 160),
        ];
        for &(in_flight, lat, cpu, expected) in cases {
            assert_eq!(capacity_per_worker(in_flight, lat, cpu), expected, "{in_flight} {lat:?} {cpu:?}");
        }
    }

    #[test]
    fn replicas_cover_the_limit_within_bounds_and_shards() {
        let cases: Vec<(AutoscaleInput, i32)> = vec![
            (backlog(1_000, 100), 2),
            (backlog(640, 100), 1),
            (backlog(6_400, 100), 10),
            (backlog(64_000, 100), 10),
            (backlog(6_400, 3), 3),
            (backlog(6_400, 0), 1),
            (AutoscaleInput { min: 4, ..backlog(100, 100) }, 4),
            (AutoscaleInput { max: 2, ..backlog(100_000, 100) }, 2),
            (AutoscaleInput { cpu_bound_rps: Some(100), ..backlog(1_000, 100) }, 10),
            // Latency never measured: one worker measures it (or min), whatever the limit.
            (AutoscaleInput { latency_p50_micros: None, ..backlog(64_000, 100) }, 1),
            (AutoscaleInput { latency_p50_micros: None, min: 3, ..backlog(64_000, 100) }, 3),
            (AutoscaleInput { latency_p50_micros: None, max: 0, ..backlog(64_000, 100) }, 1),
            // ... and those running are kept until it is (a new leader's first reconciles).
            (AutoscaleInput { latency_p50_micros: None, current_replicas: 3, ..backlog(64_000, 100) }, 3),
            (AutoscaleInput { latency_p50_micros: None, current_replicas: 3, max: 2, ..backlog(64_000, 1) }, 2),
        ];
        for (input, expected) in cases {
            let d = desired_replicas(&input);
            assert_eq!(d.replicas, expected, "{input:?}: {}", d.reason);
        }
    }

    #[test]
    fn without_backlog_it_keeps_workers_through_the_cooldown_then_scales_to_min() {
        let idle = |since: Option<Millis>, min: i32| AutoscaleInput {
            has_backlog: false,
            idle_since: since,
            current_replicas: 3,
            min,
            ..backlog(1_000, 0)
        };
        assert_eq!(desired_replicas(&idle(Some(999_000), 0)).replicas, 3);
        assert_eq!(desired_replicas(&idle(Some(940_000), 0)).replicas, 0);
        assert_eq!(desired_replicas(&idle(None, 0)).replicas, 0);
        assert_eq!(desired_replicas(&idle(None, 2)).replicas, 2);
        assert!(desired_replicas(&idle(Some(999_000), 0)).reason.contains("cooling"));
    }

    #[test]
    fn the_reason_tells_the_figures_behind_the_count() {
        let d = desired_replicas(&backlog(3_000, 12));
        assert_eq!(d.reason, "3000 rps at 640 rps per worker needs 5; 12 leasable shards; bounds 0..10");
        let d = desired_replicas(&AutoscaleInput { latency_p50_micros: None, ..backlog(3_000, 12) });
        assert_eq!(d.reason, "latency not measured yet: 1 to measure it; 12 leasable shards; bounds 0..10");
    }

    #[test]
    fn a_suspended_destination_has_no_workers() {
        let d = desired_replicas(&AutoscaleInput { suspended: true, min: 3, ..backlog(1_000, 10) });
        assert_eq!(d.replicas, 0);
    }
}
