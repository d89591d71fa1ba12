//! Where the machine's CPU went during a benchmark run: every process's user + system time from
//! `/proc/PID/stat` before and after, grouped by command name (worker pods are the
//! `courier-worker` processes on the node, the simulator is this bench process), and the whole
//! machine's busy share from `/proc/stat`. Linux only; elsewhere the figures are empty.

use std::collections::HashMap;
use std::time::Instant;

/// Clock ticks per second of `/proc` times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU ticks per process and for the machine at one instant.
pub struct Snapshot {
    at: Instant,
    by_pid: HashMap<u32, (String, u64)>,
    machine: (u64, u64),
}

/// What a run used: per command, percent of one core (summed over its processes) and how
/// many processes; the machine's busy share of all its cores.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub by_command: Vec<(String, f64, usize)>,
    pub machine_busy: f64,
    pub cores: usize,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let mut by_pid = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
                if let Some(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| parse(&s)) {
                    by_pid.insert(pid, stat);
                }
            }
        }
        Snapshot { at: Instant::now(), by_pid, machine: machine() }
    }

    /// Usage from `self` to `later`, the busiest `top` commands first.
    pub fn until(&self, later: &Snapshot, top: usize) -> Usage {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let mut by_command: HashMap<&str, (u64, usize)> = HashMap::new();
        for (pid, (comm, ticks)) in &later.by_pid {
            let before = self.by_pid.get(pid).filter(|(c, _)| c == comm).map_or(0, |(_, t)| *t);
            let used = ticks.saturating_sub(before);
            if used > 0 {
                let e = by_command.entry(comm).or_default();
                e.0 += used;
                e.1 += 1;
            }
        }
        let mut by_command: Vec<(String, f64, usize)> =
            by_command.into_iter().map(|(c, (t, n))| (c.to_owned(), 100.0 * t as f64 / TICKS / secs, n)).collect();
        by_command.sort_by(|a, b| b.1.total_cmp(&a.1));
        by_command.truncate(top);
        let (busy, total) =
            (later.machine.0.saturating_sub(self.machine.0), later.machine.1.saturating_sub(self.machine.1));
        Usage {
            by_command,
            machine_busy: if total == 0 { 0.0 } else { 100.0 * busy as f64 / total as f64 },
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Usage {
    /// `machine 97 % of 2 cores: cluster_workers 71, courier-worker×2 88, …` (percent of one core).
    pub fn cell(&self) -> String {
        if self.cores == 0 || self.by_command.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .by_command
            .iter()
            .map(|(c, pct, n)| if *n > 1 { format!("{c}×{n} {pct:.0}") } else { format!("{c} {pct:.0}") })
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
    use super::parse;

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
