//! What every integration-test binary of the workspace shares: modules taking turns.
//!
//! Each crate has one integration-test binary with its test files as modules. The tests of one
//! module may run beside each other, as they did when every file was its own binary; the tests
//! of two modules never do (they would share the cluster, MiniDFS, the cores and the timings
//! they judge). Every test starts with `let _turn = turn(module_path!());`.

use std::sync::{Condvar, Mutex, PoisonError};

/// Whose turn it is and how many of its tests run.
struct Turns {
    holder: Mutex<(Option<&'static str>, usize)>,
    changed: Condvar,
}

static TURNS: Turns = Turns { holder: Mutex::new((None, 0)), changed: Condvar::new() };

/// A module's turn, held by one of its tests until dropped.
#[must_use = "the turn ends when this is dropped"]
pub struct Turn {
    module: &'static str,
}

/// Waits until no other module's test runs, then holds `module`'s turn (shared with the other
/// tests of `module`).
pub fn turn(module: &'static str) -> Turn {
    let mut holder = TURNS.holder.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        match *holder {
            (None, _) => {
                *holder = (Some(module), 1);
                break;
            }
            (Some(m), ref mut running) if m == module => {
                *running += 1;
                break;
            }
            _ => holder = TURNS.changed.wait(holder).unwrap_or_else(PoisonError::into_inner),
        }
    }
    Turn { module }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut holder = TURNS.holder.lock().unwrap_or_else(PoisonError::into_inner);
        if holder.0 == Some(self.module) {
            holder.1 = holder.1.saturating_sub(1);
            if holder.1 == 0 {
                *holder = (None, 0);
                TURNS.changed.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn tests_of_one_module_share_a_turn_and_two_modules_never_overlap() {
        // (running now of module a, of module b, worst overlap seen)
        let running = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let overlap = Arc::new(AtomicUsize::new(0));
        let together = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (running, overlap, together) = (running.clone(), overlap.clone(), together.clone());
                std::thread::spawn(move || {
                    let (me, other, module) = if i % 2 == 0 { (0, 1, "kit::a") } else { (1, 0, "kit::b") };
                    let _turn = turn(module);
                    let now = running[me].fetch_add(1, Ordering::SeqCst) + 1;
                    together.fetch_max(now, Ordering::SeqCst);
                    overlap.fetch_max(running[other].load(Ordering::SeqCst), Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running[me].fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("joins");
        }
        assert_eq!(overlap.load(Ordering::SeqCst), 0, "a test of the other module ran meanwhile");
        assert!(together.load(Ordering::SeqCst) > 1, "tests of one module ran side by side");
    }
}
