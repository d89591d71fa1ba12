//! e2e against the local cluster: `kubectl courier` used as a person uses it. A tmux session
//! runs `kubectl courier status PACKAGE --watch` on a terminal during a delivery; snapshots of
//! the pane (`tmux capture-pane`) show the progress bar, the percent, the rate and the ETA
//! while it runs, and the final state (Complete, 100 %, exit 0) at the end. `describe` and
//! `top --once` are read the same way. Ignored by a plain `cargo test`; `make test` runs it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;
use courier_e2e::cluster::{repo_root, state_dir};
use courier_e2e::sim::SimConfig;

/// Builds the plugin (make test built it already) and returns its path.
fn plugin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["build", "-q", "-p", "kubectl-courier", "--bin", "kubectl-courier", "--message-format=json"])
        .current_dir(repo_root())
        .output()
        .expect("cargo build");
    assert!(out.status.success(), "cargo build -p kubectl-courier: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .find(|p| p.file_name().is_some_and(|n| n == "kubectl-courier"))
        .expect("the kubectl-courier executable in cargo's messages")
}

/// A tmux server of its own (its socket named after the namespace), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(socket: &str, command: &str) -> Tmux {
        let tmux = Tmux { socket: socket.to_owned() };
        let status = Command::new("tmux")
            .args(["-L", socket, "new-session", "-d", "-s", "t", "-x", "180", "-y", "12", command])
            .status()
            .expect("tmux (apt-get install tmux)");
        assert!(status.success(), "tmux new-session");
        tmux
    }

    fn capture(&self) -> String {
        let out =
            Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-t", "t"]).output().expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

fn run(plugin: &PathBuf, kubeconfig: &str, args: &[&str]) -> String {
    let out = Command::new(plugin).args(args).args(["--kubeconfig", kubeconfig]).output().expect("kubectl-courier");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "kubectl courier {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local cluster: make test runs it with --include-ignored"]
async fn status_watch_on_a_terminal_shows_the_bar_the_numbers_and_the_final_state() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let plugin = plugin();
    let kubeconfig = state_dir().join("cluster/admin.kubeconfig").to_string_lossy().into_owned();
    let destination =
        |url: &str| destination_yaml_with("partner", url, "{ requestsPerSecond: 150 }", "{ min: 1, max: 1 }", "");
    let ground = start_ground("op-kubectl", SimConfig::default(), destination, (6, 1_000)).await;
    let Ground { cluster, ns, client, operator, .. } = &ground;
    let command =
        format!("{} status p -n {ns} --watch --kubeconfig {kubeconfig}; echo EXIT=$?; sleep 600", plugin.display());
    let tmux = Tmux::start(ns, &command);
    ground.apply_package("p", "").await;

    // While it runs: a bar, a percent between 1 and 99, a rate near the limit and an ETA.
    let mut running = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while running.is_none() && Instant::now() < deadline {
        let pane = tmux.capture();
        let line = pane.lines().find(|l| l.starts_with("p ") && l.contains("Running")).map(str::to_owned);
        if let Some(line) = line {
            let percent: Option<u32> =
                line.split_whitespace().find_map(|w| w.strip_suffix('%')).and_then(|n| n.parse().ok());
            let rate: Option<u32> =
                line.split_whitespace().find_map(|w| w.strip_suffix("/s")).and_then(|n| n.parse().ok());
            if let (Some(p), Some(r)) = (percent, rate)
                && (10..=90).contains(&p)
                && r > 0
            {
                running = Some((pane.clone(), line, p, r));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (pane, line, percent, rate) = running.unwrap_or_else(|| panic!("no running line; pane:\n{}", tmux.capture()));
    eprintln!("while running:\n{pane}");
    assert!(line.contains('█') && line.contains('░'), "a progress bar: {line}");
    assert!((100..=200).contains(&rate), "rate {rate}/s near the limit of 150/s: {line}");
    assert!(line.contains("partner"), "the Destination: {line}");
    let eta = line
        .split_whitespace()
        .find(|w| w.ends_with('s') && w.chars().next().is_some_and(|c| c.is_ascii_digit()) && !w.ends_with("/s"));
    assert!(eta.is_some(), "an ETA: {line}");
    assert!(percent < 100);

    // Meanwhile, describe and top read as a person would read them.
    let describe = run(&plugin, &kubeconfig, &["describe", "p", "-n", ns]);
    eprintln!("describe:\n{describe}");
    assert!(describe.contains("partner") && describe.contains("Running"), "{describe}");
    let top = run(&plugin, &kubeconfig, &["top", "--once", "-n", ns]);
    eprintln!("top:\n{top}");
    assert!(top.lines().any(|l| l.contains("partner") && l.contains("150")), "the limit of partner: {top}");

    // The end: Complete at 100 %, and the watch exits 0 by itself.
    wait_condition(cluster, client, ns, "p", "Complete", operator).await;
    let end = Instant::now() + Duration::from_secs(30);
    let pane = loop {
        let pane = tmux.capture();
        if pane.contains("EXIT=") || Instant::now() > end {
            break pane;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("at the end:\n{pane}");
    assert!(pane.contains("EXIT=0"), "the watch ends with exit 0 when the package completes:\n{pane}");
    let last = pane.lines().find(|l| l.starts_with("p ")).unwrap_or_default();
    assert!(last.contains("Complete") && last.contains("100%"), "final state: {last}");
}
