//! Lock-free, seedable randomness: the n-th draw is a pure function of (seed, n),
//! so a seeded run makes the same decisions for the same request order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config::Latency;

/// A counter-based random source shared by all connections.
#[derive(Debug)]
pub struct Random {
    seed: u64,
    counter: AtomicU64,
}

impl Random {
    /// A source seeded with `seed`, or from the clock when `None`.
    pub fn new(seed: Option<u64>) -> Self {
        let seed = seed
            .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x5eed, |d| d.as_nanos() as u64));
        Self { seed, counter: AtomicU64::new(0) }
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        splitmix64(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// A uniform float in [0, 1).
    pub fn unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (never draws when `p` is 0, always true at 1).
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.unit() < p)
    }

    /// A standard normal sample (Box–Muller).
    fn normal(&self) -> f64 {
        let u1 = 1.0 - self.unit(); // (0, 1]: keeps ln finite
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A delay drawn from `latency`.
    pub fn latency(&self, latency: &Latency) -> Option<Duration> {
        let ms = match *latency {
            Latency::None => return None,
            Latency::Fixed { ms } => ms,
            Latency::Uniform { min_ms, max_ms } => min_ms + (max_ms - min_ms) * self.unit(),
            Latency::LogNormal { p50_ms, p99_ms } => {
                // ln(X) ~ N(mu, sigma): the median is e^mu, the 99th percentile e^(mu + 2.326 sigma).
                let sigma = (p99_ms.ln() - p50_ms.ln()) / 2.326_347_9;
                (p50_ms.ln() + sigma * self.normal()).exp()
            }
        };
        (ms > 0.0).then(|| Duration::from_secs_f64(ms.min(3_600_000.0) / 1000.0))
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_the_same_sequence() {
        let (a, b) = (Random::new(Some(7)), Random::new(Some(7)));
        let draws_a: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let draws_b: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(draws_a, draws_b);
    }

    #[test]
    fn lognormal_latency_has_the_configured_median_and_p99() {
        let random = Random::new(Some(1));
        let latency = Latency::LogNormal { p50_ms: 10.0, p99_ms: 100.0 };
        let mut samples: Vec<f64> =
            (0..100_000).map(|_| random.latency(&latency).map_or(0.0, |d| d.as_secs_f64() * 1000.0)).collect();
        samples.sort_by(f64::total_cmp);
        let (p50, p99) = (samples[50_000], samples[99_000]);
        assert!((9.5..10.5).contains(&p50), "p50 {p50}");
        assert!((90.0..110.0).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn chance_of_one_is_always_and_zero_is_never() {
        let random = Random::new(None);
        assert!((0..1000).all(|_| random.chance(1.0)));
        assert!((0..1000).all(|_| !random.chance(0.0)));
    }
}
