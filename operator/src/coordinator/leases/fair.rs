//! The even split of a Destination's work among its workers.
//!
//! A worker asks for as many shards as it has free slots. Granting them all to whichever
//! worker asks first leaves the workers that join a moment later with nothing to do when a
//! package has few shards: the limit is then shared by workers with work and workers
//! without, and the package ends later than it needs to. So a worker takes at most its even
//! share of the *pending* shards, rounded up (guided self-scheduling), and only as many as
//! bring the work it holds nearest its even share of all the work left, counted in bytes:
//! with 12 shards over 2 workers of 4 slots, each leases 4, and the last 4 go 2 and 2 — by
//! shard counts alone, the first worker to finish took every one left while the other was
//! finishing its own (measured: 87–89 % of twice one worker's throughput, against 99 % when
//! the shards divide evenly). A worker's rate is bound by its requests in flight and its share
//! of the limit, not by how many shards it holds, so a worker with fewer shards loses nothing
//! while they last; a shard left pending goes to the next worker that asks (within a
//! heartbeat), and a worker holding nothing may always take one.

/// The most shards one of `workers` workers should hold when `open` shards (pending or
/// leased) are left: `open / workers`, rounded up. With no worker counted, one worker takes
/// them all.
pub fn fair_share(open: usize, workers: usize) -> usize {
    open.div_ceil(workers.max(1))
}

/// The work of a Destination as one worker asking for shards sees it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Work {
    /// Shards waiting for a worker, and their bytes.
    pub pending: usize,
    pub pending_bytes: u64,
    /// Bytes left in the leased shards (the asking worker's included).
    pub leased_left: u64,
    /// Bytes left in the shards the asking worker holds.
    pub held_left: u64,
}

impl Work {
    /// [`fair_room`] for `workers` workers, as a slot count.
    pub fn room(self, workers: usize) -> u32 {
        u32::try_from(fair_room(self, workers)).unwrap_or(u32::MAX)
    }
}

/// How many more shards a worker may take, when `workers` share the Destination: as many as
/// bring the work it holds closest to an even share of all the work left (a shard is taken
/// when that brings it nearer than leaving it), at least one when it holds nothing, and at
/// most its even share of the pending shards.
///
/// Counting work rather than shards matters at a package's end: a worker whose shards finish
/// one after the other asks once per shard, and by shard counts the others' shards, nearly done,
/// still weigh a whole shard each — so it took every pending shard, one per ask, and the
/// package ended on it alone (measured: 87–88 % of twice one worker's throughput, 12 shards
/// over 2 workers that started a quarter of a second apart).
pub fn fair_room(work: Work, workers: usize) -> usize {
    if work.pending == 0 {
        return 0;
    }
    let by_work = room_by_work(work, workers.max(1) as u64);
    // Idle, it always may take one, so a pending shard always finds a worker.
    let by_work = if work.held_left == 0 { by_work.max(1) } else { by_work };
    fair_share(work.pending, workers).min(by_work)
}

/// Shards of average size that bring `held_left` nearest to the even share of the work left.
fn room_by_work(work: Work, workers: u64) -> usize {
    let all = u128::from(work.pending_bytes) + u128::from(work.leased_left);
    let fair = all / u128::from(workers);
    let held = u128::from(work.held_left);
    if held >= fair {
        return 0;
    }
    let average = (u128::from(work.pending_bytes) / work.pending as u128).max(1);
    // The most shards k with held + (k - 1/2)·average < fair: each one taken brings it nearer
    // its share than leaving it would (at a tie it is left for another worker).
    ((2 * (fair - held) + average - 1) / (2 * average)).min(work.pending as u128) as usize
}

#[cfg(test)]
mod tests {
    use super::{Work, fair_room, fair_share};

    const S: u64 = 1_000;

    fn work(pending: usize, leased_left: u64, held_left: u64) -> Work {
        Work { pending, pending_bytes: pending as u64 * S, leased_left, held_left }
    }

    #[test]
    fn a_worker_takes_its_share_of_the_work_left_and_of_the_pending_shards() {
        // (pending shards of S bytes, bytes left in leased shards, of them held by this worker,
        // workers, room)
        let table = [
            // The start: 12 shards, 2 workers — each may take 6 (its slots cap it at 4).
            (12, 0, 0, 2, 6),
            (8, 4 * S, 0, 2, 4),
            // The tail, equal progress: one worker done with its 4 while the other's 4 are
            // half done — 2 of the 4 pending, not all.
            (4, 2 * S, 0, 2, 2),
            // Its first shard of the last round is under way: one more brings it to 2 S of the
            // 5 S left (a tie with 3 S: left for the other worker).
            (3, 2 * S, S, 2, 1),
            // The other's shards nearly done: the first to ask takes 2 of 4, no more, whatever
            // order the asks come in.
            (4, 80, 40, 2, 2),
            (3, 1_040, 1_000, 2, 1),
            (2, 2_040, 2_000, 2, 0),
            (2, 2_040, 40, 2, 1),
            // Holding a third of the work left: two more bring it to half.
            (4, 8 * S, 4 * S, 2, 2),
            // Holding half: nothing more.
            (4, 8 * S, 6 * S, 2, 0),
            // One worker takes everything pending.
            (10, 0, 0, 1, 10),
            (3, 5 * S, 5 * S, 1, 3),
            // Nothing pending: nothing to take.
            (0, 6 * S, 0, 3, 0),
            // A worker holding nothing always may take one, however much the others hold.
            (1, 0, 0, 3, 1),
            (1, 30 * S, 0, 3, 1),
            // 7 over 3 workers as they come: 2 (a third is 2.33 S), 2, then 1 (a third of the 3
            // pending); the last goes to the first to finish.
            (7, 0, 0, 3, 2),
            (5, 2 * S, 0, 3, 2),
            (3, 4 * S, 0, 3, 1),
            (2, 5 * S, 2 * S, 3, 0),
            // No worker counted yet: one takes its fill.
            (5, 0, 0, 0, 5),
        ];
        for (pending, leased, held, workers, room) in table {
            assert_eq!(
                fair_room(work(pending, leased, held), workers),
                room,
                "{pending} pending, {leased} B leased ({held} B held), {workers} workers"
            );
        }
        // Shards of no bytes (empty files) still go out, one an ask.
        assert_eq!(fair_room(Work { pending: 3, ..Work::default() }, 2), 1);
    }

    #[test]
    fn a_pending_shard_always_finds_an_idle_worker() {
        for pending in 1..30 {
            for leased in 0..30 {
                for workers in 1..8 {
                    assert!(fair_room(work(pending, leased * S, 0), workers) >= 1, "{pending}/{leased}/{workers}");
                }
            }
        }
    }

    /// Workers of 4 slots and equal speed, each sending as fast with one shard as with four
    /// (its requests in flight bind it), starting `stagger` apart: every shard is S bytes; a
    /// worker asks whenever one of its shards ends. Returns when the last worker finished, in
    /// shard-times (a worker's time to send one shard alone).
    fn makespan(shards: usize, workers: usize, stagger: f64) -> f64 {
        let mut pending = shards;
        // Per worker: the bytes left of each shard it holds, and when it may first ask.
        let mut held: Vec<Vec<f64>> = vec![Vec::new(); workers];
        let mut now = 0.0f64;
        let mut asks: Vec<usize> = Vec::new();
        let mut started = vec![false; workers];
        let mut end = 0.0f64;
        loop {
            for (w, started) in started.iter_mut().enumerate() {
                if !*started && now + 1e-9 >= w as f64 * stagger {
                    *started = true;
                    asks.push(w);
                }
            }
            for w in asks.drain(..) {
                let leased: f64 = held.iter().flatten().sum();
                let mine: f64 = held[w].iter().sum();
                let work = Work {
                    pending,
                    pending_bytes: pending as u64 * S,
                    leased_left: leased.round() as u64,
                    held_left: mine.round() as u64,
                };
                let take = fair_room(work, workers).min(4 - held[w].len()).min(pending);
                pending -= take;
                held[w].extend(std::iter::repeat_n(S as f64, take));
            }
            // The next event: a shard ending (each of a worker's h shards goes at S/h per
            // shard-time), or a worker starting.
            let next_end = (0..workers)
                .filter(|&w| !held[w].is_empty())
                .map(|w| held[w].iter().copied().fold(f64::MAX, f64::min) * held[w].len() as f64 / S as f64)
                .fold(f64::MAX, f64::min);
            let next_start =
                (0..workers).filter(|&w| !started[w]).map(|w| w as f64 * stagger - now).fold(f64::MAX, f64::min);
            let step = next_end.min(next_start);
            if step == f64::MAX {
                break;
            }
            now += step;
            for (w, shards) in held.iter_mut().enumerate() {
                let h = shards.len() as f64;
                if h == 0.0 {
                    continue;
                }
                for b in shards.iter_mut() {
                    *b -= step * S as f64 / h;
                }
                let before = shards.len();
                shards.retain(|b| *b > 1e-6);
                if shards.len() < before {
                    end = end.max(now);
                    asks.push(w);
                }
            }
        }
        assert_eq!(pending, 0, "{shards} over {workers}: shards left");
        end
    }

    #[test]
    fn workers_starting_apart_end_a_package_together() {
        for shards in 1..=32usize {
            for workers in 1..=4usize {
                for stagger in [0.0, 0.02, 0.05, 0.25] {
                    let ideal = shards as f64 / workers as f64;
                    let last = makespan(shards, workers, stagger);
                    // Shards are whole: the last worker may end up to one shard-time after an
                    // even split, and the stagger delays it.
                    assert!(
                        last <= ideal.ceil() + 1.0 + stagger * workers as f64,
                        "{shards} shards over {workers}, {stagger} apart: ends at {last:.2}, even split {ideal:.2}"
                    );
                }
            }
        }
        // The case measured: 12 over 2, a quarter of a shard apart — 6 each, not 7 and 5.
        assert!(makespan(12, 2, 0.05) < 6.2, "{}", makespan(12, 2, 0.05));
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
