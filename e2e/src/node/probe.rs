//! Readiness and liveness probes: `httpGet` and `tcpSocket` against the pod's address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// HTTP GET; success is a status from 200 to 399.
    Http {
        /// Target address.
        addr: SocketAddr,
        /// Request path.
        path: String,
    },
    /// A TCP connection that opens.
    Tcp {
        /// Target address.
        addr: SocketAddr,
    },
    /// A probe this agent cannot run; it always succeeds (and is logged once).
    Unsupported(String),
}

/// A probe with its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSettings {
    /// The check.
    pub check: Check,
    /// Wait before the first check.
    pub initial_delay: Duration,
    /// Time between checks.
    pub period: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Consecutive successes to count as passing again.
    pub success_threshold: u32,
    /// Consecutive failures to count as failing.
    pub failure_threshold: u32,
}

impl ProbeSettings {
    /// Reads a probe of `container` in a pod at `ip`, with Kubernetes' defaults.
    pub fn from_spec(probe: &Probe, container: &Container, ip: IpAddr) -> Self {
        let seconds = |v: Option<i32>, default: u64| Duration::from_secs(v.map_or(default, |s| s.max(0) as u64));
        let count = |v: Option<i32>, default: u32| v.map_or(default, |n| n.max(1) as u32);
        let check = if let Some(http) = &probe.http_get {
            match resolve_port(&http.port, container) {
                Some(_) if http.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("https")) => {
                    Check::Unsupported("httpGet probes over HTTPS".into())
                }
                Some(port) => {
                    let host = http.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(ip);
                    let path = http.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
                    Check::Http { addr: SocketAddr::new(host, port), path }
                }
                None => Check::Unsupported(format!("httpGet port {:?} names no container port", http.port)),
            }
        } else if let Some(tcp) = &probe.tcp_socket {
            match resolve_port(&tcp.port, container) {
                Some(port) => Check::Tcp { addr: SocketAddr::new(ip, port) },
                None => Check::Unsupported(format!("tcpSocket port {:?} names no container port", tcp.port)),
            }
        } else {
            Check::Unsupported("exec and grpc probes".into())
        };
        Self {
            check,
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }

    /// Runs the check once.
    pub async fn check(&self) -> bool {
        let attempt = async {
            match &self.check {
                Check::Http { addr, path } => http_ok(*addr, path).await,
                Check::Tcp { addr } => TcpStream::connect(addr).await.is_ok(),
                Check::Unsupported(_) => true,
            }
        };
        tokio::time::timeout(self.timeout, attempt).await.unwrap_or(false)
    }
}

fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

async fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else { return false };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: courier-node-probe\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < head.len() {
        match stream.read(&mut head[read..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
        if head[..read].contains(&b'\n') {
            break;
        }
    }
    status_is_success(&head[..read])
}

/// True when an HTTP status line carries a code from 200 to 399.
pub fn status_is_success(head: &[u8]) -> bool {
    let line = String::from_utf8_lossy(head);
    line.split_whitespace().nth(1).and_then(|code| code.parse::<u16>().ok()).is_some_and(|c| (200..400).contains(&c))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};
    use std::net::Ipv4Addr;

    #[test]
    fn status_lines_from_200_to_399_pass() {
        assert!(status_is_success(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_is_success(b"HTTP/1.1 302 Found\r\n"));
        assert!(!status_is_success(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(!status_is_success(b""));
    }

    #[test]
    fn a_named_port_resolves_through_the_container_ports_and_the_pod_ip_is_the_host() {
        let container = Container {
            ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
            ..Default::default()
        };
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::String("http".into()),
                path: Some("/healthz".into()),
                ..Default::default()
            }),
            period_seconds: Some(2),
            ..Default::default()
        };
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
        let settings = ProbeSettings::from_spec(&probe, &container, ip);
        assert_eq!(settings.check, Check::Http { addr: SocketAddr::new(ip, 8080), path: "/healthz".into() });
        assert_eq!(settings.period, Duration::from_secs(2));
        assert_eq!(settings.failure_threshold, 3);
    }

    #[tokio::test]
    async fn an_http_check_passes_against_a_real_server_answering_200_and_fails_on_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 512];
            let _ = socket.read(&mut buf).await;
            socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.unwrap();
        });
        let settings = |addr| ProbeSettings {
            check: Check::Http { addr, path: "/".into() },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            success_threshold: 1,
            failure_threshold: 1,
        };
        assert!(settings(addr).check().await);
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        assert!(!settings(closed).check().await);
    }
}
