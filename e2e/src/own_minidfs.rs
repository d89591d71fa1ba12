//! A MiniDFS that one test owns, for faults of HDFS itself.
//!
//! The shared instance ([`crate::minidfs`]) serves every test at once and is never restarted.
//! A test that stops a NameNode or a DataNode starts its own instance instead: the same launcher
//! (`e2e/minidfs`, built and cached by `minidfs.sh classpath`), with its own data directory,
//! its own ports on the node IP (so pods reach it) and as many DataNodes as it needs. The
//! launcher reads commands on stdin and answers each with a line on stdout (`Control.java`);
//! stdin closing shuts it down, so the instance never outlives the test process.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdfs_native::{Client, ClientBuilder};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::cluster::node_ip;

/// The line the launcher prints once it serves (`Main.READY_PREFIX`).
const READY_PREFIX: &str = "MINIDFS READY ";
/// A cold JVM with two DataNodes on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// A NameNode restart's answer comes once it is out of safe mode again: its down time plus this.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// What to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnMiniDfsConfig {
    /// The address every daemon binds (the node IP by default, reachable from pods).
    pub host: IpAddr,
    /// NameNode RPC port; it must differ from the shared instance's 9000.
    pub port: u16,
    /// NameNode web port; it must differ from the shared instance's 9870.
    pub http_port: u16,
    /// DataNodes (they take free ports of `host`).
    pub datanodes: u32,
    /// Hadoop settings (`--conf key=value`), e.g. `dfs.replication=2`.
    pub conf: Vec<(String, String)>,
    /// JVM heap (`-Xmx`).
    pub heap: String,
}

impl Default for OwnMiniDfsConfig {
    fn default() -> Self {
        OwnMiniDfsConfig {
            host: node_ip(),
            port: 19000,
            http_port: 19870,
            datanodes: 1,
            conf: Vec::new(),
            heap: "512m".to_owned(),
        }
    }
}

impl OwnMiniDfsConfig {
    /// The launcher's arguments after the main class.
    fn launcher_args(&self, data_dir: &Path) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_owned(),
            data_dir.display().to_string(),
            "--host".to_owned(),
            self.host.to_string(),
            "--port".to_owned(),
            self.port.to_string(),
            "--http-port".to_owned(),
            self.http_port.to_string(),
            "--datanodes".to_owned(),
            self.datanodes.to_string(),
        ];
        for (key, value) in &self.conf {
            args.push("--conf".to_owned());
            args.push(format!("{key}={value}"));
        }
        args
    }

    /// `hdfs://host:port`.
    pub fn url(&self) -> String {
        format!("hdfs://{}", SocketAddr::new(self.host, self.port))
    }
}

/// The launcher's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Ok { command: String },
    Err { command: String, reason: String },
}

/// `OK <command>` or `ERR <command>: <reason>`; anything else is not an answer.
fn parse_answer(line: &str) -> Option<Answer> {
    if let Some(command) = line.strip_prefix("OK ") {
        return Some(Answer::Ok { command: command.trim().to_owned() });
    }
    let rest = line.strip_prefix("ERR ")?;
    let (command, reason) = rest.split_once(": ").unwrap_or((rest, ""));
    Some(Answer::Err { command: command.trim().to_owned(), reason: reason.trim().to_owned() })
}

/// The NameNode URI of a READY line.
fn parse_ready(line: &str) -> Option<&str> {
    line.strip_prefix(READY_PREFIX).map(str::trim).filter(|uri| !uri.is_empty())
}

/// The command line of a NameNode restart with `down` of down time (in seconds, 0.1 s steps).
fn restart_command(down: Duration) -> String {
    format!("restart-namenode {:.1}", down.as_secs_f64())
}

/// A running instance; dropping it kills the JVM (and its data directory goes with the guard).
pub struct OwnMiniDfs {
    config: OwnMiniDfsConfig,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for OwnMiniDfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnMiniDfs").field("url", &self.url()).field("log", &self.log).finish()
    }
}

impl OwnMiniDfs {
    /// Builds the launcher if needed, starts it and returns once it serves reads and writes.
    pub async fn start(config: OwnMiniDfsConfig) -> anyhow::Result<OwnMiniDfs> {
        let addr = SocketAddr::new(config.host, config.port);
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            bail!("{addr} is taken: another MiniDFS (or something else) listens there");
        }
        let classpath = launcher_classpath().await?;
        let dir = tempfile::Builder::new().prefix("courier-own-minidfs-").tempdir().context("a data directory")?;
        let log = dir.path().join("minidfs.log");
        let stderr = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut child = Command::new("java")
            .arg(format!("-Xmx{}", config.heap))
            .arg("-Djava.net.preferIPv4Stack=true")
            .arg("-cp")
            .arg(&classpath)
            .arg("dev.courier.minidfs.Main")
            .args(config.launcher_args(&dir.path().join("data")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("spawn java (the MiniDFS launcher)")?;
        let stdin = child.stdin.take().context("the launcher's stdin")?;
        let stdout = child.stdout.take().context("the launcher's stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut dfs = OwnMiniDfs { config, child, stdin: Some(stdin), lines, log, _dir: dir };
        let started = Instant::now();
        loop {
            let line =
                match tokio::time::timeout(START_TIMEOUT.saturating_sub(started.elapsed()), dfs.lines.recv()).await {
                    Ok(Some(line)) => line,
                    Ok(None) => bail!("the launcher exited before it was ready; its log:\n{}", dfs.log_tail(40)),
                    Err(_) => bail!("not ready after {START_TIMEOUT:?}; its log:\n{}", dfs.log_tail(40)),
                };
            if let Some(uri) = parse_ready(&line) {
                tracing::info!(%uri, seconds = started.elapsed().as_secs_f64(), "own MiniDFS ready");
                return Ok(dfs);
            }
        }
    }

    /// The NameNode URL, `hdfs://host:port`.
    pub fn url(&self) -> String {
        self.config.url()
    }

    /// The launcher's log (its stderr: Hadoop's logs and the commands it ran).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A new client of this instance (one per runtime, as with [`crate::minidfs::MiniDfs`]).
    pub fn client(&self) -> anyhow::Result<Client> {
        ClientBuilder::new().with_url(self.url()).build().with_context(|| format!("an HDFS client of {}", self.url()))
    }

    /// Stops the NameNode, keeps it down `down`, starts it again; returns once it serves again,
    /// with how long that took from the command.
    pub async fn restart_namenode(&mut self, down: Duration) -> anyhow::Result<Duration> {
        self.command(&restart_command(down), down + COMMAND_TIMEOUT).await
    }

    /// Shuts DataNode `index` (from 0) down for good; the NameNode is not told.
    pub async fn stop_datanode(&mut self, index: u32) -> anyhow::Result<Duration> {
        self.command(&format!("stop-datanode {index}"), COMMAND_TIMEOUT).await
    }

    /// Sends `command` and waits for its answer.
    async fn command(&mut self, command: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let stdin = self.stdin.as_mut().context("the launcher is shutting down")?;
        stdin.write_all(format!("{command}\n").as_bytes()).await.with_context(|| format!("send {command:?}"))?;
        stdin.flush().await.with_context(|| format!("send {command:?}"))?;
        loop {
            let line = match tokio::time::timeout(timeout.saturating_sub(started.elapsed()), self.lines.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) => bail!("the launcher exited during {command:?}; its log:\n{}", self.log_tail(40)),
                Err(_) => bail!("no answer to {command:?} within {timeout:?}; its log:\n{}", self.log_tail(40)),
            };
            match parse_answer(&line) {
                Some(Answer::Ok { command: done }) if done == command => return Ok(started.elapsed()),
                Some(Answer::Err { command: failed, reason }) if failed == command => {
                    bail!("{command:?} failed: {reason}")
                }
                _ => tracing::debug!(%line, "launcher output that answers nothing"),
            }
        }
    }

    /// Closes stdin (the launcher's signal to stop) and waits for it to exit; kills it if it
    /// does not in time.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status.context("wait for the launcher")?;
                Ok(())
            }
            Err(_) => {
                self.child.kill().await.context("kill the launcher")?;
                bail!("the launcher did not stop within {SHUTDOWN_TIMEOUT:?} of stdin closing; killed")
            }
        }
    }
}

/// `minidfs.sh classpath`: builds the launcher if its sources changed, prints its classpath.
async fn launcher_classpath() -> anyhow::Result<String> {
    let script = crate::minidfs::script_path();
    let output = Command::new(&script)
        .arg("classpath")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {} classpath", script.display()))?;
    if !output.status.success() {
        bail!("{} classpath failed ({}): {}", script.display(), output.status, String::from_utf8_lossy(&output.stderr));
    }
    let classpath = String::from_utf8(output.stdout).context("the classpath is not UTF-8")?;
    let classpath = classpath.trim();
    if classpath.is_empty() {
        bail!("{} classpath printed nothing", script.display());
    }
    Ok(classpath.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_told_apart_from_other_output() {
        assert_eq!(parse_answer("OK stop-datanode 1"), Some(Answer::Ok { command: "stop-datanode 1".into() }));
        assert_eq!(
            parse_answer("ERR stop-datanode 1: DataNode 1 is already stopped"),
            Some(Answer::Err { command: "stop-datanode 1".into(), reason: "DataNode 1 is already stopped".into() })
        );
        assert_eq!(parse_answer("ERR bogus"), Some(Answer::Err { command: "bogus".into(), reason: String::new() }));
        assert_eq!(parse_answer("MINIDFS READY hdfs://10.87.0.1:19000"), None);
        assert_eq!(parse_answer("OKAY"), None);
    }

    #[test]
    fn ready_lines_carry_the_uri() {
        assert_eq!(parse_ready("MINIDFS READY hdfs://10.87.0.1:19000\n"), Some("hdfs://10.87.0.1:19000"));
        assert_eq!(parse_ready("MINIDFS READY "), None);
        assert_eq!(parse_ready("OK ping"), None);
    }

    #[test]
    fn restart_commands_give_the_down_time_in_seconds() {
        assert_eq!(restart_command(Duration::from_secs(5)), "restart-namenode 5.0");
        assert_eq!(restart_command(Duration::from_millis(2500)), "restart-namenode 2.5");
    }

    #[test]
    fn the_launcher_gets_its_ports_datanodes_and_settings() {
        let config = OwnMiniDfsConfig {
            host: "10.87.0.1".parse().expect("an IP"),
            datanodes: 2,
            conf: vec![("dfs.replication".into(), "2".into())],
            ..OwnMiniDfsConfig::default()
        };
        let args = config.launcher_args(Path::new("/tmp/d"));
        assert_eq!(
            args.join(" "),
            "--data-dir /tmp/d --host 10.87.0.1 --port 19000 --http-port 19870 --datanodes 2 --conf dfs.replication=2"
        );
        assert_eq!(config.url(), "hdfs://10.87.0.1:19000");
    }

    #[test]
    fn its_ports_are_not_the_shared_instances() {
        let config = OwnMiniDfsConfig::default();
        assert_ne!(config.port, crate::minidfs::PORT);
        assert_ne!(config.http_port, 9870);
    }
}
