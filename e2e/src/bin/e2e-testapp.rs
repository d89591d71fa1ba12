#![forbid(unsafe_code)]
//! `e2e-testapp`: a tiny pod payload for the node agent's tests.
//!
//! Serves HTTP on `$POD_IP:${PORT:-8080}`:
//! - `/healthz` → `200 ok <pod>` (503 while draining);
//! - `/pid` → its process id;
//! - `/env/<NAME>` → the value of an environment variable (404 if unset);
//! - `/file/<absolute path>` → a file's contents as the process sees them (404 if unreadable);
//! - `/kube` → an in-cluster kube-rs request: reads the apiserver version and its own Pod
//!   with the projected service-account token (`200 ok ...` or `500 <error>`).
//!
//! On SIGTERM it logs, drains for `$TESTAPP_DRAIN_MS` (default 1000) and exits 0.
//! With `$TESTAPP_EXIT_AFTER_MS` set it exits by itself after that long with
//! `$TESTAPP_EXIT_CODE` (default 1), to play a crashing or finishing program.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

struct App {
    pod: String,
    namespace: String,
    draining: AtomicBool,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ip: IpAddr = env_or("POD_IP", "127.0.0.1").parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let port: u16 = env_number("PORT", 8080);
    let app = Arc::new(App {
        pod: env_or("POD_NAME", "e2e-testapp"),
        namespace: env_or("POD_NAMESPACE", "default"),
        draining: AtomicBool::new(false),
    });
    let listener = TcpListener::bind(SocketAddr::new(ip, port)).await?;
    println!(
        "e2e-testapp listening on {} (pod {}/{}, pid {})",
        listener.local_addr()?,
        app.namespace,
        app.pod,
        std::process::id()
    );

    let mut terminate = signal(SignalKind::terminate())?;
    let exit_after = std::env::var("TESTAPP_EXIT_AFTER_MS").ok().and_then(|v| v.parse::<u64>().ok());
    let exit_timer = async {
        match exit_after {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(exit_timer);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let app = app.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| handle(app.clone(), request));
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            _ = terminate.recv() => {
                let drain = Duration::from_millis(env_number("TESTAPP_DRAIN_MS", 1000));
                println!("SIGTERM received: draining for {} ms", drain.as_millis());
                app.draining.store(true, Ordering::SeqCst);
                tokio::time::sleep(drain).await;
                println!("drain complete; exiting 0");
                return Ok(());
            }
            () = &mut exit_timer => {
                let code: i32 = env_number("TESTAPP_EXIT_CODE", 1);
                println!("exiting by request with code {code}");
                std::process::exit(code);
            }
        }
    }
}

async fn handle(app: Arc<App>, request: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, body) = match request.uri().path() {
        "/healthz" if app.draining.load(Ordering::SeqCst) => (StatusCode::SERVICE_UNAVAILABLE, "draining".to_string()),
        "/healthz" => (StatusCode::OK, format!("ok {}", app.pod)),
        "/pid" => (StatusCode::OK, std::process::id().to_string()),
        path if path.starts_with("/env/") => match std::env::var(&path["/env/".len()..]) {
            Ok(value) => (StatusCode::OK, value),
            Err(_) => (StatusCode::NOT_FOUND, "unset".to_string()),
        },
        path if path.starts_with("/file/") => match std::fs::read_to_string(&path["/file".len()..]) {
            Ok(text) => (StatusCode::OK, text),
            Err(error) => (StatusCode::NOT_FOUND, error.to_string()),
        },
        "/kube" => match kube_check(&app).await {
            Ok(report) => (StatusCode::OK, report),
            Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}")),
        },
        _ => (StatusCode::NOT_FOUND, "not found".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

/// An in-cluster request the way a real workload makes it: `Client::try_default()`.
async fn kube_check(app: &App) -> anyhow::Result<String> {
    let client = kube::Client::try_default().await?;
    let version = client.apiserver_version().await?;
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, &app.namespace);
    let me = pods.get(&app.pod).await?;
    Ok(format!("ok version={} pod={} uid={}", version.git_version, app.pod, me.metadata.uid.unwrap_or_default()))
}
