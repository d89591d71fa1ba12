//! The ledger of idempotency keys answered with 2xx: proves that no record was
//! lost and counts how many were delivered more than once.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// Every accepted key with the number of times it was accepted.
#[derive(Debug)]
pub struct Ledger {
    shards: Vec<Mutex<Shard>>,
    unique: AtomicU64,
    duplicates: AtomicU64,
}

/// One shard: key bytes packed in an arena (no allocation per key) and a table
/// of 16-byte entries pointing into it. Each entry keeps 32 bits of its key's
/// hash, so growing the table never re-reads the keys.
#[derive(Debug, Default)]
struct Shard {
    arena: Vec<u8>,
    table: HashTable<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u32,
    start: u32,
    len: u32,
    count: u32,
}

impl Entry {
    fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// The table's 64-bit hash, rebuilt from the 32 bits an entry keeps; the
/// multiplication spreads them over the top bits the table uses as tags.
fn table_hash(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Shard {
    fn key(&self, entry: &Entry) -> &[u8] {
        &self.arena[entry.range()]
    }

    /// Counts `key`; true when it was new.
    fn record(&mut self, hash: u32, key: &[u8]) -> bool {
        let Self { arena, table } = self;
        let eq = |e: &Entry| e.hash == hash && &arena[e.range()] == key;
        if let Some(entry) = table.find_mut(table_hash(hash), eq) {
            entry.count = entry.count.saturating_add(1);
            return false;
        }
        // Offsets are 32-bit: one shard holds up to 4 GiB of keys, far beyond this machine's memory.
        let (Ok(start), Ok(len)) = (u32::try_from(arena.len()), u32::try_from(key.len())) else {
            tracing::error!(shard_bytes = arena.len(), "ledger shard full: key counted but not stored");
            return true;
        };
        arena.extend_from_slice(key);
        table.insert_unique(table_hash(hash), Entry { hash, start, len, count: 1 }, |e| table_hash(e.hash));
        true
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
                shard.table.iter().map(|entry| (String::from_utf8_lossy(shard.key(entry)).into_owned(), entry.count)),
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
    fn keys_of_one_shard_still_have_varied_table_tags() {
        let build = BuildHasherDefault::<FastHasher>::default();
        let tags: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| build.hash_one(format!("key-{i}")))
            .filter(|hash| shard_of(*hash) == 0)
            .map(|hash| table_hash(hash as u32) >> 57)
            .collect();
        assert!(tags.len() > 64, "only {} of 128 tags used", tags.len());
    }
}
