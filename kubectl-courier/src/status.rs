//! `kubectl courier status [PACKAGE|-A] [--watch]`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use courier_api::DeliveryPackage;
use futures::StreamExt as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::api::ListParams;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt as _};

use crate::cli::{Global, OutputFormat, StatusArgs};
use crate::error::Error;
use crate::output;
use crate::table::{Terminal, Tone, paint};
use crate::view::package::{PackageRow, status_table};

/// Runs `status`.
pub async fn run(
    global: &Global,
    args: &StatusArgs,
    format: Option<OutputFormat>,
    term: &Terminal,
) -> Result<ExitCode, Error> {
    let (client, namespace) = crate::client::connect(global).await?;
    let api: Api<DeliveryPackage> =
        if args.all_namespaces { Api::all(client) } else { Api::namespaced(client, &namespace) };
    if args.watch {
        return watch(api, args, &namespace, format, term).await;
    }
    let rows = match &args.package {
        Some(name) => {
            let pkg = api.get_opt(name).await.map_err(Error::api(format!("get package {name}")))?.ok_or_else(|| {
                Error::NotFound { kind: "DeliveryPackage", name: name.clone(), namespace: namespace.clone() }
            })?;
            vec![PackageRow::of(&pkg)]
        }
        None => {
            let list = api.list(&ListParams::default()).await.map_err(Error::api("list packages"))?;
            let mut rows: Vec<PackageRow> = list.items.iter().map(PackageRow::of).collect();
            rows.sort_by_key(PackageRow::key);
            rows
        }
    };
    match format {
        Some(f) if args.package.is_some() => output::print(f, &rows[0])?,
        Some(f) => output::print(f, &rows)?,
        None if rows.is_empty() => eprintln!("No packages found{}.", scope(args, &namespace)),
        None => print_lines(&status_table(&rows, args.all_namespaces, term.tty).lines(term.colour))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn scope(args: &StatusArgs, namespace: &str) -> String {
    if args.all_namespaces { String::new() } else { format!(" in namespace {namespace}") }
}

fn print_lines(lines: &[String]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}").map_err(Error::Output)?;
    }
    out.flush().map_err(Error::Output)
}

/// Lines redrawn in place on a terminal (indicatif draws and clears them).
struct LiveLines {
    progress: MultiProgress,
    lines: Vec<ProgressBar>,
    style: ProgressStyle,
}

impl LiveLines {
    fn new() -> LiveLines {
        let style = ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner());
        LiveLines { progress: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()), lines: Vec::new(), style }
    }

    fn show(&mut self, lines: &[String]) {
        while self.lines.len() < lines.len() {
            let line = self.progress.add(ProgressBar::new(1).with_style(self.style.clone()));
            self.lines.push(line);
        }
        while self.lines.len() > lines.len() {
            if let Some(line) = self.lines.pop() {
                line.finish_and_clear();
                self.progress.remove(&line);
            }
        }
        for (bar, text) in self.lines.iter().zip(lines) {
            bar.set_message(text.clone());
        }
    }

    fn finish(self) {
        for line in &self.lines {
            line.finish();
        }
    }
}

/// How the watch prints.
enum Sink {
    Live(LiveLines),
    Lines,
    Json,
}

async fn watch(
    api: Api<DeliveryPackage>,
    args: &StatusArgs,
    namespace: &str,
    format: Option<OutputFormat>,
    term: &Terminal,
) -> Result<ExitCode, Error> {
    let mut config = watcher::Config::default();
    if let Some(name) = &args.package {
        config = config.fields(&format!("metadata.name={name}"));
    }
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut sink = match format {
        Some(_) => Sink::Json,
        None if term.tty => Sink::Live(LiveLines::new()),
        None => Sink::Lines,
    };
    let mut packages: BTreeMap<String, PackageRow> = BTreeMap::new();
    let mut init: BTreeMap<String, PackageRow> = BTreeMap::new();
    let mut printed: BTreeMap<String, PackageRow> = BTreeMap::new();
    let mut ready = false;
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut interrupted => break,
        };
        let Some(event) = event else { break };
        match event.map_err(|source| Error::Watch { what: "packages".to_owned(), source })? {
            Event::Apply(p) => {
                packages.insert(key(&p), PackageRow::of(&p));
            }
            Event::Delete(p) => {
                packages.remove(&key(&p));
                if args.package.is_some() {
                    finish(sink);
                    eprintln!("package {} was deleted", key(&p));
                    return Ok(ExitCode::FAILURE);
                }
            }
            Event::Init => init.clear(),
            Event::InitApply(p) => {
                init.insert(key(&p), PackageRow::of(&p));
            }
            Event::InitDone => {
                packages = std::mem::take(&mut init);
                ready = true;
                if packages.is_empty() {
                    let what =
                        args.package.as_deref().map_or_else(|| "packages".to_owned(), |n| format!("package {n}"));
                    eprintln!("waiting for {what}{}…", scope(args, namespace));
                }
            }
        }
        if !ready {
            continue;
        }
        show(&mut sink, &packages, &mut printed, args.all_namespaces, term)?;
        if args.package.is_some()
            && let Some(row) = packages.values().next()
            && row.finished
        {
            let failed = row.phase == "Failed";
            finish(sink);
            return Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS });
        }
    }
    finish(sink);
    Ok(ExitCode::SUCCESS)
}

fn key(p: &DeliveryPackage) -> String {
    format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())
}

fn show(
    sink: &mut Sink,
    packages: &BTreeMap<String, PackageRow>,
    printed: &mut BTreeMap<String, PackageRow>,
    namespaces: bool,
    term: &Terminal,
) -> Result<(), Error> {
    match sink {
        Sink::Live(live) => {
            let rows: Vec<PackageRow> = packages.values().cloned().collect();
            let mut lines =
                if rows.is_empty() { Vec::new() } else { status_table(&rows, namespaces, true).lines(term.colour) };
            let now = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
            lines.push(paint(
                &format!("{} package(s), updated {now}; Ctrl-C to stop", rows.len()),
                Tone::Dim,
                term.colour,
            ));
            live.show(&lines);
        }
        Sink::Lines | Sink::Json => {
            let mut out = std::io::stdout().lock();
            for (k, row) in packages {
                if printed.get(k) == Some(row) {
                    continue;
                }
                let text = match sink {
                    Sink::Json => output::json_line(row)?,
                    _ => format!("{} {}", jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"), row.log_line()),
                };
                writeln!(out, "{text}").map_err(Error::Output)?;
                printed.insert(k.clone(), row.clone());
            }
            out.flush().map_err(Error::Output)?;
        }
    }
    Ok(())
}

fn finish(sink: Sink) {
    if let Sink::Live(live) = sink {
        live.finish();
    }
}
