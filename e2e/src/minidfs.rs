//! The shared MiniDFS instance tests write to and read from.
//!
//! One instance on fixed ports of the local cluster's node IP (`hdfs://10.87.0.1:9000`,
//! reachable from pods too) serves every test;
//! it is normally started by the test command (`e2e/minidfs/minidfs.sh
//! start`). [`MiniDfs::ensure_running`] starts it through the same script
//! when nothing answers, so a single test also works when run alone. Tests
//! isolate themselves with [`MiniDfs::unique_dir`], never by restarting it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdfs_native::ClientBuilder;
pub use hdfs_native::{Client, WriteOptions};

use crate::cluster::{node_ip, node_ip_is_local};

/// Environment variable naming the NameNode URL.
pub const URL_ENV: &str = "COURIER_MINIDFS_URL";
/// The NameNode port `minidfs.sh` serves on the node IP.
pub const PORT: u16 = 9000;

/// The URL `minidfs.sh` serves: `hdfs://<node IP>:9000`.
pub fn default_url() -> String {
    format!("hdfs://{}:{PORT}", node_ip())
}
/// HDFS directory under which [`MiniDfs::unique_dir`] creates test directories.
pub const TEST_ROOT: &str = "/courier-e2e";

/// How long [`MiniDfs::ensure_running`] waits for a NameNode that answers to
/// also accept a write (its DataNode may still be registering).
const WRITABLE_TIMEOUT: Duration = Duration::from_secs(90);
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Serialises starts within one test process; `minidfs.sh` itself locks
/// across processes.
static START_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Why MiniDFS is not usable.
#[derive(Debug, thiserror::Error)]
pub enum MiniDfsError {
    /// The URL is not `hdfs://host:port`.
    #[error("MiniDFS url {url:?} is not hdfs://<host>:<port>")]
    BadUrl {
        /// The offending URL.
        url: String,
    },
    /// Nothing answers and the URL is not the one the script serves.
    #[error("nothing answers at {url}, and only {} can be started by minidfs.sh", default_url())]
    Unreachable {
        /// The URL tried.
        url: String,
    },
    /// The start script could not be run.
    #[error("failed to run {}: {source}", script.display())]
    Spawn {
        /// Script path.
        script: PathBuf,
        /// Spawn error.
        #[source]
        source: std::io::Error,
    },
    /// The start script exited unsuccessfully.
    #[error("`minidfs.sh {action}` failed ({status}): {stderr}")]
    Script {
        /// Sub-command run.
        action: &'static str,
        /// Exit status.
        status: std::process::ExitStatus,
        /// Tail of its stderr.
        stderr: String,
    },
    /// The NameNode answered but did not accept a write in time.
    #[error("MiniDFS at {url} did not accept writes within {timeout:?}: {last_error}")]
    NotWritable {
        /// The URL probed.
        url: String,
        /// How long we waited.
        timeout: Duration,
        /// The last probe failure.
        last_error: String,
    },
    /// An HDFS call failed.
    #[error("hdfs operation on {path} failed: {source}")]
    Hdfs {
        /// Path involved (or the URL for client construction).
        path: String,
        /// Client error.
        #[source]
        source: hdfs_native::HdfsError,
    },
}

/// A handle on a running MiniDFS (or any HDFS named by [`URL_ENV`]).
#[derive(Debug, Clone)]
pub struct MiniDfs {
    url: String,
}

impl MiniDfs {
    /// The NameNode URL tests use: `$COURIER_MINIDFS_URL`, else [`default_url`].
    pub fn url() -> String {
        std::env::var(URL_ENV).ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(default_url)
    }

    /// Returns once the NameNode at [`Self::url`] accepts writes, starting
    /// it with `minidfs.sh start` first if nothing answers there (only for
    /// [`default_url`]). The node IP is not connected to before it is an address
    /// of this machine (`minidfs.sh start` creates it): a packet to it would
    /// otherwise leave through the default route.
    pub async fn ensure_running() -> Result<Self, MiniDfsError> {
        let dfs = Self { url: Self::url() };
        let addr = namenode_addr(&dfs.url)?;
        let _guard = START_LOCK.lock().await;
        let local = addr.ip() != node_ip() || node_ip_is_local();
        if !local || !answers(addr).await {
            if dfs.url.trim_end_matches('/') != default_url() {
                return Err(MiniDfsError::Unreachable { url: dfs.url });
            }
            run_script("start").await?;
        }
        dfs.wait_writable().await?;
        Ok(dfs)
    }

    /// This instance's NameNode URL.
    pub fn namenode_url(&self) -> &str {
        &self.url
    }

    /// A new client. Create one per test: a client belongs to the tokio
    /// runtime it was first used on.
    pub fn client(&self) -> Result<Client, MiniDfsError> {
        ClientBuilder::new()
            .with_url(self.url.clone())
            .build()
            .map_err(|source| MiniDfsError::Hdfs { path: self.url.clone(), source })
    }

    /// Creates and returns a fresh directory `/courier-e2e/<name>-<pid>-<n>`
    /// that no other test (in this or another process) uses.
    pub async fn unique_dir(&self, client: &Client, name: &str) -> Result<String, MiniDfsError> {
        let path = format!("{TEST_ROOT}/{}", unique_name(name));
        client.mkdirs(&path, 0o755, true).await.map_err(|source| MiniDfsError::Hdfs { path: path.clone(), source })?;
        Ok(path)
    }

    /// Probes with a tiny write until one succeeds or the time is up.
    async fn wait_writable(&self) -> Result<(), MiniDfsError> {
        let deadline = Instant::now() + WRITABLE_TIMEOUT;
        loop {
            let last_error = match self.probe_write().await {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(MiniDfsError::NotWritable { url: self.url.clone(), timeout: WRITABLE_TIMEOUT, last_error });
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    async fn probe_write(&self) -> Result<(), MiniDfsError> {
        let client = self.client()?;
        let path = format!("{TEST_ROOT}/.probe/{}", unique_name("probe"));
        let hdfs_err = |source| MiniDfsError::Hdfs { path: path.clone(), source };
        let mut writer = client.create(&path, WriteOptions::default().create_parent(true)).await.map_err(hdfs_err)?;
        writer.write_bytes(b"ok".to_vec().into()).await.map_err(hdfs_err)?;
        writer.close().await.map_err(hdfs_err)?;
        client.delete(&path, false).await.map_err(hdfs_err)?;
        Ok(())
    }
}

/// Path of the launcher script in this checkout.
pub fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("minidfs").join("minidfs.sh")
}

async fn run_script(action: &'static str) -> Result<(), MiniDfsError> {
    let script = script_path();
    let output = tokio::process::Command::new(&script)
        .arg(action)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| MiniDfsError::Spawn { script: script.clone(), source })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
    Err(MiniDfsError::Script {
        action,
        status: output.status,
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

/// `hdfs://host:port[/…]` → a socket address (host must be an IP or `localhost`).
fn namenode_addr(url: &str) -> Result<SocketAddr, MiniDfsError> {
    let bad = || MiniDfsError::BadUrl { url: url.to_owned() };
    let rest = url.strip_prefix("hdfs://").ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
    let host = if host == "localhost" { "127.0.0.1" } else { host.trim_matches(['[', ']']) };
    let ip = host.parse().map_err(|_| bad())?;
    let port = port.parse().map_err(|_| bad())?;
    Ok(SocketAddr::new(ip, port))
}

async fn answers(addr: SocketAddr) -> bool {
    matches!(tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
}

fn unique_name(name: &str) -> String {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!("{clean}-{}-{nanos:x}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namenode_addresses_are_parsed_from_urls() {
        let addr = namenode_addr("hdfs://127.0.0.1:9000").expect("valid");
        assert_eq!(addr, "127.0.0.1:9000".parse().expect("addr"));
        let addr = namenode_addr("hdfs://localhost:8020/some/path").expect("valid");
        assert_eq!(addr, "127.0.0.1:8020".parse().expect("addr"));
        assert!(namenode_addr("http://127.0.0.1:9000").is_err());
        assert!(namenode_addr("hdfs://127.0.0.1").is_err());
    }

    #[test]
    fn unique_names_differ_and_are_path_safe() {
        let a = unique_name("my test/one");
        let b = unique_name("my test/one");
        assert_ne!(a, b);
        assert!(a.starts_with("my-test-one-"));
    }
}
