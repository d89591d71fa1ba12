//! The lease table: which shard is leased to whom, checkpoints and counters (pure, no I/O).
