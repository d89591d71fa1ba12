//! The even split of a Destination's open shards among its workers.
//!
//! A worker asks for as many shards as it has free slots. Granting them all to whichever
//! worker asks first leaves the workers that join a moment later with nothing to do when a
//! package has few shards: the limit is then shared by workers with work and workers
//! without, and the package ends later than it needs to. So a worker holds at most its even
//! share of the open shards, rounded up.
//!
//! That alone still lets the first worker to finish take every shard left while the others
//! are about to finish theirs: 12 shards, 2 workers of 4 slots — each leases 4, one finishes
//! first, finds 8 open (its fair 4) and takes the last 4, and the package ends on one worker
//! while the other has nothing (measured: 89 % of twice one worker's throughput, against 99 %
//! when the shards divide evenly). So a worker also takes at most its even share of the
//! *pending* shards, rounded up (guided self-scheduling): the last 4 go 2 and 2. A worker's
//! rate is bound by its requests in flight and its share of the limit, not by how many shards
//! it holds, so a worker with fewer shards loses nothing while they last; a shard left pending
//! goes to the next worker that asks (within a heartbeat).

/// The most shards one of `workers` workers should hold when `open` shards (pending or
/// leased) are left: `open / workers`, rounded up. With no worker counted, one worker takes
/// them all.
pub fn fair_share(open: usize, workers: usize) -> usize {
    open.div_ceil(workers.max(1))
}

/// How many more shards a worker holding `held` of the `leased` ones may take when `pending`
/// wait and `workers` share the Destination: up to its even share of the open shards
/// (`pending + leased`), and at most its even share of the pending ones. Whenever a shard is
/// pending and the worker holds less than its share of the open ones, it may take one.
pub fn fair_room(pending: usize, leased: usize, held: usize, workers: usize) -> usize {
    let of_open = fair_share(pending + leased, workers).saturating_sub(held);
    of_open.min(fair_share(pending, workers))
}

#[cfg(test)]
mod tests {
    use super::{fair_room, fair_share};

    #[test]
    fn a_worker_takes_no_more_than_its_share_of_the_open_and_of_the_pending_shards() {
        // (pending, leased by all, held by this worker, workers, room)
        let table = [
            // The start: 12 shards, 2 workers — each may take 6 (its slots cap it at 4).
            (12, 0, 0, 2, 6),
            (8, 4, 0, 2, 4),
            // The tail: one worker done with its 4 while the other holds 4 — 2, not all 4.
            (4, 4, 0, 2, 2),
            // ... and the other, done a moment later, takes 1 of the 2 left, then 1 again.
            (2, 2, 0, 2, 1),
            (1, 3, 1, 2, 1),
            // Holding its share of the open shards: nothing more.
            (4, 4, 4, 2, 0),
            (1, 3, 2, 2, 0),
            // One worker takes everything pending.
            (10, 0, 0, 1, 10),
            (3, 5, 5, 1, 3),
            // Nothing pending: nothing to take.
            (0, 6, 0, 3, 0),
            // 7 over 3 workers as they come: 3, then 2 (of 4 pending), then 1 (of 2), then 1.
            (7, 0, 0, 3, 3),
            (4, 3, 0, 3, 2),
            (2, 5, 0, 3, 1),
            (1, 6, 2, 3, 1),
            // No worker counted yet: one takes its fill.
            (5, 0, 0, 0, 5),
        ];
        for (pending, leased, held, workers, room) in table {
            assert_eq!(
                fair_room(pending, leased, held, workers),
                room,
                "{pending} pending, {leased} leased ({held} held), {workers} workers"
            );
        }
    }

    #[test]
    fn a_pending_shard_always_finds_a_worker_below_its_share() {
        for pending in 1..30 {
            for leased in 0..30 {
                for workers in 1..8 {
                    // A worker holding nothing always may take one.
                    assert!(fair_room(pending, leased, 0, workers) >= 1, "{pending}/{leased}/{workers}");
                }
            }
        }
    }

    #[test]
    fn equal_workers_end_a_package_together() {
        // Workers of 4 slots, equally fast, each as fast with one shard as with four (its
        // rate is bound by its requests in flight): a worker asks again when it has finished
        // what it holds, i.e. the one with the least work given so far asks next. The last
        // worker to finish then has no more shards than an even split: ceil(shards / workers).
        for shards in 1..=48usize {
            for workers in 1..=4usize {
                let (mut pending, mut holds, mut given) = (shards, vec![0usize; workers], vec![0usize; workers]);
                while pending > 0 {
                    let w = (0..workers).min_by_key(|&w| (given[w], w)).unwrap_or(0);
                    holds[w] = 0;
                    let leased: usize = holds.iter().sum();
                    let take = fair_room(pending, leased, 0, workers).min(4).min(pending);
                    assert!(take > 0, "{shards} shards over {workers}: worker {w} got nothing");
                    holds[w] = take;
                    given[w] += take;
                    pending -= take;
                }
                let last = given.iter().max().copied().unwrap_or(0);
                assert_eq!(last, shards.div_ceil(workers), "{shards} shards over {workers}: {given:?}");
            }
        }
    }

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
