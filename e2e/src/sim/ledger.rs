//! The ledger of idempotency keys answered with 2xx: proves that no record was
//! lost and counts how many were delivered more than once.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

type Shard = HashMap<Box<str>, u32, BuildHasherDefault<FastHasher>>;

/// Every accepted key with the number of times it was accepted.
#[derive(Debug)]
pub struct Ledger {
    shards: Vec<Mutex<Shard>>,
    unique: AtomicU64,
    duplicates: AtomicU64,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            unique: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        }
    }
}

impl Ledger {
    /// Records one acceptance of `key`.
    pub fn record(&self, key: &str) {
        let hash = BuildHasherDefault::<FastHasher>::default().hash_one(key);
        let shard = &self.shards[(hash >> (64 - SHARD_BITS)) as usize];
        let mut map = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = map.get_mut(key) {
            *count = count.saturating_add(1);
            drop(map);
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            map.insert(key.into(), 1);
            drop(map);
            self.unique.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Number of distinct keys accepted.
    pub fn unique(&self) -> u64 {
        self.unique.load(Ordering::Relaxed)
    }

    /// Number of acceptances beyond the first, summed over all keys.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// A copy of the whole ledger.
    pub fn snapshot(&self) -> HashMap<String, u32> {
        let mut all = HashMap::with_capacity(usize::try_from(self.unique()).unwrap_or(0));
        for shard in &self.shards {
            let map = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            all.extend(map.iter().map(|(key, count)| (key.to_string(), *count)));
        }
        all
    }

    /// Forgets every key.
    pub fn clear(&self) {
        for shard in &self.shards {
            let mut map = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *map = Shard::default();
        }
        self.unique.store(0, Ordering::Relaxed);
        self.duplicates.store(0, Ordering::Relaxed);
    }
}

/// A quick multiply-rotate hasher: keys come from our own tests and benchmarks,
/// so flooding resistance is not needed and speed is.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(26);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(26);
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(K).rotate_left(26);
    }

    fn finish(&self) -> u64 {
        // Final avalanche so the top bits (used for sharding) depend on every input bit.
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z ^ (z >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_count_as_duplicates_and_new_keys_as_unique() {
        let ledger = Ledger::default();
        for key in ["a", "b", "a", "c", "a", "b"] {
            ledger.record(key);
        }
        assert_eq!((ledger.unique(), ledger.duplicates()), (3, 3));
        assert_eq!(ledger.snapshot().get("a"), Some(&3));
        ledger.clear();
        assert_eq!((ledger.unique(), ledger.duplicates(), ledger.snapshot().len()), (0, 0, 0));
    }

    #[test]
    fn keys_spread_over_many_shards() {
        let build = BuildHasherDefault::<FastHasher>::default();
        let used: std::collections::HashSet<u64> =
            (0..1000).map(|i| build.hash_one(format!("key-{i}")) >> (64 - SHARD_BITS)).collect();
        assert!(used.len() > SHARDS / 2, "only {} shards used", used.len());
    }
}
