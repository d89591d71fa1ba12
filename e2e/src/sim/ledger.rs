//! The ledger of idempotency keys answered with 2xx: proves that no record was
//! lost and counts how many were delivered more than once.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// Every accepted key with the number of times it was accepted.
#[derive(Debug)]
pub struct Ledger {
    shards: Vec<Mutex<Shard>>,
    unique: AtomicU64,
    duplicates: AtomicU64,
}

/// One shard: an open-addressing table of 8-byte slots (32 bits of hash, entry
/// number), with keys packed in an arena. Recording a new key touches one random
/// cache line (its slot); entries and key bytes are appended sequentially.
#[derive(Debug, Default)]
struct Shard {
    /// 0 is empty; otherwise `hash << 32 | (entry index + 1)`. Power-of-two
    /// length, at most half full, linear probing.
    slots: Vec<u64>,
    entries: Vec<Entry>,
    arena: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    len: u32,
    count: u32,
}

const INITIAL_SLOTS: usize = 1024;

impl Entry {
    fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

impl Shard {
    fn key(&self, entry: &Entry) -> &[u8] {
        &self.arena[entry.range()]
    }

    /// Counts `key`; true when it was new.
    fn record(&mut self, hash: u32, key: &[u8]) -> bool {
        if self.slots.is_empty() {
            self.slots = vec![0; INITIAL_SLOTS];
        }
        let mask = self.slots.len() - 1;
        let mut pos = hash as usize & mask;
        loop {
            let slot = self.slots[pos];
            if slot == 0 {
                break;
            }
            if (slot >> 32) as u32 == hash {
                let index = (slot & 0xffff_ffff) as usize - 1;
                let entry = &mut self.entries[index];
                if &self.arena[entry.range()] == key {
                    entry.count = entry.count.saturating_add(1);
                    return false;
                }
            }
            pos = (pos + 1) & mask;
        }
        // Offsets are 32-bit: one shard holds up to 4 GiB of keys, far beyond this machine's memory.
        let (Ok(start), Ok(len), Ok(number)) =
            (u32::try_from(self.arena.len()), u32::try_from(key.len()), u32::try_from(self.entries.len() + 1))
        else {
            tracing::error!(shard_bytes = self.arena.len(), "ledger shard full: key counted but not stored");
            return true;
        };
        self.arena.extend_from_slice(key);
        self.entries.push(Entry { start, len, count: 1 });
        self.slots[pos] = (u64::from(hash) << 32) | u64::from(number);
        if self.entries.len() * 2 > self.slots.len() {
            self.grow();
        }
        true
    }

    fn grow(&mut self) {
        let mut slots = vec![0u64; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for &slot in self.slots.iter().filter(|slot| **slot != 0) {
            let mut pos = (slot >> 32) as usize & mask;
            while slots[pos] != 0 {
                pos = (pos + 1) & mask;
            }
            slots[pos] = slot;
        }
        self.slots = slots;
    }
}

/// The shard is chosen by middle bits of the hash: the table itself uses the low
/// bits (bucket) and the top seven (tag), which must stay varied within a shard.
fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize & (SHARDS - 1)
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
    pub fn record(&self, key: &[u8]) {
        let mut hasher = FastHasher::default();
        hasher.write(key);
        let hash = hasher.finish();
        let shard = &self.shards[shard_of(hash)];
        let new = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).record(hash as u32, key);
        let counter = if new { &self.unique } else { &self.duplicates };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Number of distinct keys accepted.
    pub fn unique(&self) -> u64 {
        self.unique.load(Ordering::Relaxed)
    }

    /// Number of acceptances beyond the first, summed over all keys.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// A copy of the whole ledger (keys that are not UTF-8 are shown lossily).
    pub fn snapshot(&self) -> HashMap<String, u32> {
        let mut all = HashMap::with_capacity(usize::try_from(self.unique()).unwrap_or(0));
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            all.extend(
                shard.entries.iter().map(|entry| (String::from_utf8_lossy(shard.key(entry)).into_owned(), entry.count)),
            );
        }
        all
    }

    /// Forgets every key and frees the memory.
    pub fn clear(&self) {
        for shard in &self.shards {
            *shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Shard::default();
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
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    #[test]
    fn repeated_keys_count_as_duplicates_and_new_keys_as_unique() {
        let ledger = Ledger::default();
        for key in ["a", "b", "a", "c", "a", "b"] {
            ledger.record(key.as_bytes());
        }
        assert_eq!((ledger.unique(), ledger.duplicates()), (3, 3));
        assert_eq!(ledger.snapshot().get("a"), Some(&3));
        ledger.clear();
        assert_eq!((ledger.unique(), ledger.duplicates(), ledger.snapshot().len()), (0, 0, 0));
    }

    #[test]
    fn two_hundred_thousand_keys_are_all_found_again() {
        let ledger = Ledger::default();
        for i in 0..200_000 {
            ledger.record(format!("bench-1764-{i}").as_bytes());
        }
        ledger.record(b"bench-1764-199999");
        assert_eq!((ledger.unique(), ledger.duplicates()), (200_000, 1));
    }

    #[test]
    fn keys_spread_over_many_shards() {
        let build = BuildHasherDefault::<FastHasher>::default();
        let used: std::collections::HashSet<usize> =
            (0..1000).map(|i| shard_of(build.hash_one(format!("key-{i}")))).collect();
        assert!(used.len() > SHARDS / 2, "only {} shards used", used.len());
    }

    #[test]
    fn colliding_hashes_keep_their_keys_apart() {
        let mut shard = Shard::default();
        assert!(shard.record(7, b"first"));
        assert!(shard.record(7, b"second"));
        assert!(!shard.record(7, b"first"));
        assert_eq!(shard.entries.iter().map(|e| e.count).collect::<Vec<_>>(), vec![2, 1]);
    }
}
