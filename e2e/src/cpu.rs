//! Where the machine's CPU went during a benchmark run: every process's user + system time from
//! `/proc/PID/stat` before and after, grouped by command name (worker pods are the
//! `courier-worker` processes on the node, the simulator is this bench process), how long their
//! threads waited runnable for a core (`/proc/PID/task/*/schedstat`: a machine too small for the
//! run shows there), and the whole machine's busy share from `/proc/stat`. Linux only; elsewhere
//! the figures are empty.

use std::collections::HashMap;
use std::time::Instant;

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU ticks per process and for the machine at one instant.
pub struct Snapshot {
    at: Instant,
    /// Command, CPU ticks, and nanoseconds its threads waited runnable for a core, so far.
    by_pid: HashMap<u32, (String, u64, u64)>,
    machine: (u64, u64),
}

/// What a run used: per command, percent of one core (summed over its processes) and how
/// many processes; the machine's busy share of all its cores.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub by_command: Vec<(String, f64, usize)>,
    /// Per command (the same order), percent of the run its threads together waited runnable
    /// for a core (100: one thread's worth all the time).
    pub waited: Vec<f64>,
    pub machine_busy: f64,
    pub cores: usize,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let mut by_pid = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
                if let Some((comm, ticks)) =
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| parse(&s))
                {
                    by_pid.insert(pid, (comm, ticks, waited_ns(pid)));
                }
            }
        }
        Snapshot { at: Instant::now(), by_pid, machine: machine() }
    }

    /// Usage from `self` to `later`, the busiest `top` commands first.
    pub fn until(&self, later: &Snapshot, top: usize) -> Usage {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let mut by_command: HashMap<&str, (u64, usize, u64)> = HashMap::new();
        for (pid, (comm, ticks, waited)) in &later.by_pid {
            // A pid reused by another command since counts from zero.
            let (ticks_before, waited_before) =
                self.by_pid.get(pid).filter(|(c, ..)| c == comm).map_or((0, 0), |(_, t, w)| (*t, *w));
            let used = ticks.saturating_sub(ticks_before);
            if used > 0 {
                let e = by_command.entry(comm).or_default();
                e.0 += used;
                e.1 += 1;
                e.2 += waited.saturating_sub(waited_before);
            }
        }
        let mut rows: Vec<(String, f64, usize, f64)> = by_command
            .into_iter()
            .map(|(c, (t, n, w))| (c.to_owned(), 100.0 * t as f64 / TICKS / secs, n, 100.0 * w as f64 / 1e9 / secs))
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        rows.truncate(top);
        let waited = rows.iter().map(|r| r.3).collect();
        let by_command = rows.into_iter().map(|(c, p, n, _)| (c, p, n)).collect();
        let (busy, total) =
            (later.machine.0.saturating_sub(self.machine.0), later.machine.1.saturating_sub(self.machine.1));
        Usage {
            by_command,
            waited,
            machine_busy: if total == 0 { 0.0 } else { 100.0 * busy as f64 / total as f64 },
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Usage {
    /// `97 % of 2 cores: cluster_workers 71, courier-worker×2 88 (waited 12), …` (percent of one
    /// core; the time its threads waited runnable for a core, when 1 % or more).
    pub fn cell(&self) -> String {
        if self.cores == 0 || self.by_command.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .by_command
            .iter()
            .enumerate()
            .map(|(i, (c, pct, n))| {
                let name = if *n > 1 { format!("{c}×{n}") } else { c.clone() };
                match self.waited.get(i).filter(|w| **w >= 1.0) {
                    Some(w) => format!("{name} {pct:.0} (waited {w:.0})"),
                    None => format!("{name} {pct:.0}"),
                }
            })
            .collect();
        format!("{:.0} % of {} cores: {}", self.machine_busy, self.cores, parts.join(", "))
    }
}

/// (command, utime + stime) of one `/proc/PID/stat` line; the command may hold spaces and
/// parentheses, so the fields are counted from its last `)`.
fn parse(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // After the command: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Nanoseconds the threads of `pid` waited runnable for a core: the second field of each
/// `/proc/PID/task/TID/schedstat` (0 where the kernel keeps no schedstats).
fn waited_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|line| schedstat_wait(&line))
        .sum()
}

/// The run-queue wait (second field) of a schedstat line.
fn schedstat_wait(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// (busy, total) jiffies of all cores from `/proc/stat`'s first line.
fn machine() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
    let Some(line) = stat.lines().next() else { return (0, 0) };
    let values: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().sum();
    // idle and iowait are not busy.
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

#[cfg(test)]
mod tests {
    use super::{Usage, parse, schedstat_wait};

    #[test]
    fn a_schedstat_line_gives_its_run_queue_wait() {
        assert_eq!(schedstat_wait("123456 7890 12\n"), Some(7890));
        assert_eq!(schedstat_wait("123456"), None);
        assert_eq!(schedstat_wait(""), None);
    }

    #[test]
    fn a_cell_names_each_command_its_share_and_its_wait() {
        let usage = Usage {
            by_command: vec![("courier-worker".into(), 77.4, 4), ("java".into(), 3.0, 1)],
            waited: vec![18.2, 0.4],
            machine_busy: 78.0,
            cores: 2,
        };
        assert_eq!(usage.cell(), "78 % of 2 cores: courier-worker×4 77 (waited 18), java 3");
    }

    #[test]
    fn a_stat_line_gives_its_command_and_cpu_ticks() {
        let table = [
            ("1234 (nginx) S 1 2 3 4 5 6 7 8 9 10 250 40 0 0", Some(("nginx", 290))),
            ("77 (tokio (rt) x) R 1 2 3 4 5 6 7 8 9 10 5 6 0", Some(("tokio (rt) x", 11))),
            ("99 (short) S 1 2", None),
            ("garbage", None),
        ];
        for (line, want) in table {
            assert_eq!(parse(line).as_ref().map(|(c, t)| (c.as_str(), *t)), want, "{line}");
        }
    }
}
