//! Starting a container's process and signalling it.
//!
//! A container with volume mounts runs inside its own mount namespace:
//! `unshare --mount --propagation private -- sh -c '<mkdir + mount --bind ...>; exec "$@"' sh <cmd> <args>`,
//! so a pod sees e.g. its service-account token at the standard
//! `/var/run/secrets/kubernetes.io/serviceaccount` without touching the host's view.
//! Each process leads its own process group, which is what gets signalled.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::error::{Error, Result};

/// A directory (or file) of the host that appears at `target` inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the container.
    pub target: String,
    /// Remount read-only after binding.
    pub read_only: bool,
}

/// Everything needed to start one container process.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Program to execute.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The complete environment (nothing is inherited from the agent).
    pub env: Vec<(String, String)>,
    /// Bind mounts to set up first.
    pub mounts: Vec<Mount>,
    /// Working directory inside the container.
    pub working_dir: Option<String>,
    /// File receiving stdout and stderr (appended to).
    pub log_file: PathBuf,
}

/// Starts the process described by `spec` as the leader of a new process group.
pub fn spawn(spec: &LaunchSpec, header: &str) -> Result<tokio::process::Child> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_file)
        .map_err(Error::io("open container log", &spec.log_file))?;
    writeln!(log, "{header}").map_err(Error::io("write container log", &spec.log_file))?;
    let stderr = log.try_clone().map_err(Error::io("open container log", &spec.log_file))?;

    let mut command = if spec.mounts.is_empty() {
        let mut command = tokio::process::Command::new(&spec.program);
        command.args(&spec.args);
        let dir = spec.working_dir.as_deref().unwrap_or("/");
        std::fs::create_dir_all(dir).map_err(Error::io("create working directory", dir))?;
        command.current_dir(dir);
        command
    } else {
        let mut command = tokio::process::Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(wrapper_script(&spec.mounts, spec.working_dir.as_deref()))
            .arg("sh")
            .arg(&spec.program)
            .args(&spec.args)
            .current_dir("/");
        command
    };
    command
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().map_err(Error::io("start container process", Path::new(&spec.program)))
}

/// The shell script that sets up the mounts, changes directory and execs the program.
pub fn wrapper_script(mounts: &[Mount], working_dir: Option<&str>) -> String {
    let mut script = String::from("set -e\n");
    for mount in mounts {
        let source = quote(&mount.source.to_string_lossy());
        let target = quote(&mount.target);
        if mount.source.is_dir() {
            let _ = writeln!(script, "mkdir -p {target}");
        } else {
            let _ = writeln!(script, "mkdir -p \"$(dirname {target})\"; [ -e {target} ] || touch {target}");
        }
        let _ = writeln!(script, "mount --bind {source} {target}");
        if mount.read_only {
            let _ = writeln!(script, "mount -o remount,bind,ro {target}");
        }
    }
    if let Some(dir) = working_dir {
        let _ = writeln!(script, "mkdir -p {0}; cd {0}", quote(dir));
    }
    script.push_str("exec \"$@\"\n");
    script
}

/// Single-quotes `text` for `sh`.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Sends `signal` (a name such as `TERM` or `KILL`) to the process group led by `pid`;
/// false if `kill` reported no such group.
pub fn signal_group(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), which tells a
/// recorded process from a later one that reuses its pid.
pub fn process_start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_string)
}

/// Waits until none of `pids` is a live process (gone or a zombie), at most `limit`.
pub async fn wait_gone(pids: &[u32], limit: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while pids.iter().any(|pid| is_alive(*pid)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    state != Some("Z")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_wrapper_binds_each_directory_then_execs_the_arguments() {
        let mounts = vec![Mount { source: "/tmp".into(), target: "/var/run/x".into(), read_only: true }];
        let script = wrapper_script(&mounts, Some("/work"));
        assert!(script.contains("mkdir -p '/var/run/x'\nmount --bind '/tmp' '/var/run/x'\n"), "{script}");
        assert!(script.contains("mount -o remount,bind,ro '/var/run/x'"), "{script}");
        assert!(script.ends_with("cd '/work'\nexec \"$@\"\n"), "{script}");
    }

    #[test]
    fn our_own_start_time_is_readable_and_a_missing_process_has_none() {
        assert!(process_start_time(std::process::id()).is_some());
        assert_eq!(process_start_time(999_999_999), None);
    }

    #[test]
    fn we_are_alive_and_a_missing_pid_is_not() {
        assert!(is_alive(std::process::id()));
        assert!(!is_alive(999_999_999));
    }
}
