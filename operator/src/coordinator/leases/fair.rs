//! The even split of a Destination's open shards among its workers.
//!
//! A worker asks for as many shards as it has free slots. Granting them all to whichever
//! worker asks first leaves the workers that join a moment later with nothing to do when a
//! package has few shards: the limit is then shared by workers with work and workers
//! without, and the package ends later than it needs to. So a worker holds at most its even
//! share of the open shards, rounded up.

/// The most shards one of `workers` workers should hold when `open` shards (pending or
/// leased) are left: `open / workers`, rounded up. With no worker counted, one worker takes
/// them all.
pub fn fair_share(open: usize, workers: usize) -> usize {
    open.div_ceil(workers.max(1))
}

#[cfg(test)]
mod tests {
    use super::fair_share;

    #[test]
    fn the_open_shards_split_evenly_rounded_up() {
        // (open shards, workers, most shards per worker)
        let table = [
            (0, 3, 0),
            (1, 3, 1),
            (2, 3, 1),
            (3, 3, 1),
            (4, 3, 2),
            (8, 3, 3),
            (9, 3, 3),
            (10, 3, 4),
            (10, 1, 10),
            (10, 0, 10),
            (100, 4, 25),
            (5, 10, 1),
        ];
        for (open, workers, most) in table {
            assert_eq!(fair_share(open, workers), most, "{open} open shards, {workers} workers");
        }
    }

    #[test]
    fn every_open_shard_finds_a_worker() {
        for open in 0..50 {
            for workers in 1..12 {
                assert!(fair_share(open, workers) * workers >= open, "{open} over {workers}");
            }
        }
    }
}
