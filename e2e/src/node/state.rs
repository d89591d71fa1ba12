//! The state directory: per-pod volume dirs, process records and container logs.
//!
//! Layout under `--state-dir`:
//! - `logs/<namespace>_<pod>_<container>.log` — each container's stdout and stderr;
//! - `pods/<uid>/volumes/<volume>/` — emptyDir, secret, configMap and projected volumes;
//! - `pods/<uid>/pids/<container>` — `<pid> <start time>` of the running process, so a
//!   restarted agent can kill processes its previous run left behind.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::launch;

/// Paths inside the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Creates the directory layout under `root`.
    pub fn create(root: &Path) -> Result<Self> {
        for dir in [root.join("logs"), root.join("pods")] {
            std::fs::create_dir_all(&dir).map_err(Error::io("create state directory", &dir))?;
        }
        let root = std::fs::canonicalize(root).map_err(Error::io("resolve state directory", root))?;
        Ok(Self { root })
    }

    /// Log file of one container.
    pub fn log_file(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        self.root.join("logs").join(format!("{namespace}_{pod}_{container}.log"))
    }

    /// Directory of one pod.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }

    /// Directory of one volume of one pod.
    pub fn volume_dir(&self, uid: &str, volume: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes").join(volume)
    }

    fn pid_file(&self, uid: &str, container: &str) -> PathBuf {
        self.pod_dir(uid).join("pids").join(container)
    }

    /// Records the process now running `container` of pod `uid`.
    pub fn record_process(&self, uid: &str, container: &str, pid: u32) -> Result<()> {
        let file = self.pid_file(uid, container);
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create pid directory", dir))?;
        }
        let start = launch::process_start_time(pid).unwrap_or_default();
        std::fs::write(&file, format!("{pid} {start}\n")).map_err(Error::io("write pid record", &file))
    }

    /// Forgets the process of `container` of pod `uid` (it exited).
    pub fn forget_process(&self, uid: &str, container: &str) {
        let _ = std::fs::remove_file(self.pid_file(uid, container));
    }

    /// Removes everything of pod `uid`.
    pub fn remove_pod(&self, uid: &str) {
        let dir = self.pod_dir(uid);
        if let Err(error) = std::fs::remove_dir_all(&dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), %error, "could not remove pod directory");
        }
    }

    /// Pod uids that have a directory here.
    pub fn pod_uids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join("pods")) else { return Vec::new() };
        entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()
    }

    /// Kills (SIGKILL, whole process group) every process a previous agent run
    /// recorded and that is still the same process; returns their pids.
    pub fn kill_stale_processes(&self) -> Vec<u32> {
        let mut killed = Vec::new();
        for uid in self.pod_uids() {
            let Ok(entries) = std::fs::read_dir(self.pod_dir(&uid).join("pids")) else { continue };
            for entry in entries.flatten() {
                let record = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if let Some((pid, start)) = parse_record(&record)
                    && launch::process_start_time(pid).as_deref() == Some(start)
                {
                    tracing::info!(pid, pod_uid = %uid, "killing a process left by a previous run");
                    launch::signal_group(pid, "KILL");
                    killed.push(pid);
                }
                let _ = std::fs::remove_file(entry.path());
            }
        }
        killed
    }
}

fn parse_record(record: &str) -> Option<(u32, &str)> {
    let mut fields = record.split_whitespace();
    let pid = fields.next()?.parse().ok()?;
    Some((pid, fields.next()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_record_holds_pid_and_start_time() {
        assert_eq!(parse_record("42 12345\n"), Some((42, "12345")));
        assert_eq!(parse_record("42\n"), None);
        assert_eq!(parse_record("x 1"), None);
    }

    #[test]
    fn a_recorded_process_of_our_own_is_found_and_a_dead_one_is_not_killed() {
        let dir = std::env::temp_dir().join(format!("courier-node-state-{}", std::process::id()));
        let state = StateDir::create(&dir).unwrap();
        std::fs::create_dir_all(state.pod_dir("u1").join("pids")).unwrap();
        std::fs::write(state.pod_dir("u1").join("pids").join("c"), "999999999 1\n").unwrap();
        assert!(state.kill_stale_processes().is_empty());
        assert!(!state.pod_dir("u1").join("pids").join("c").exists());
        state.remove_pod("u1");
        assert!(state.pod_uids().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
