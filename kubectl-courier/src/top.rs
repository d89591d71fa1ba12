//! `kubectl courier top`: Destinations refreshed every few seconds, full screen (ratatui) on
//! a terminal; printed once on a pipe, with `--once` or with `-o`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use courier_api::{DeliveryPackage, Destination};
use kube::api::ListParams;
use kube::{Api, Client};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table as TuiTable};

use crate::cli::{Global, OutputFormat, TopArgs};
use crate::error::Error;
use crate::output;
use crate::table::{Align, Terminal, Tone};
use crate::view::top::{DestinationRow, cells, headers, rows, table, with_rates};
use crate::workers;

/// Where `top` looks.
struct Scope {
    client: Client,
    namespace: Option<String>,
}

impl Scope {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    async fn rows(&self) -> Result<Vec<DestinationRow>, Error> {
        let lp = ListParams::default();
        let dests = self.api::<Destination>().list(&lp).await.map_err(Error::api("list Destinations"))?;
        let pkgs = self.api::<DeliveryPackage>().list(&lp).await.map_err(Error::api("list packages"))?;
        let pods = workers::list(&self.client, self.namespace.as_deref(), None, true).await?;
        Ok(rows(&dests.items, &pkgs.items, &pods))
    }
}

/// Runs `top`.
pub async fn run(
    global: &Global,
    args: &TopArgs,
    format: Option<OutputFormat>,
    term: &Terminal,
) -> Result<ExitCode, Error> {
    let (client, namespace) = crate::client::connect(global).await?;
    let scope = Scope { client, namespace: (!args.all_namespaces).then_some(namespace.clone()) };
    if format.is_some() || args.once || !term.tty {
        let rows = scope.rows().await?;
        if let Some(f) = format {
            output::print(f, &rows)?;
        } else if rows.is_empty() {
            eprintln!(
                "No Destinations found{}.",
                if args.all_namespaces { String::new() } else { format!(" in namespace {namespace}") }
            );
        } else {
            let mut out = std::io::stdout().lock();
            for line in table(&rows, args.all_namespaces).lines(term.colour) {
                writeln!(out, "{line}").map_err(Error::Output)?;
            }
            out.flush().map_err(Error::Output)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    full_screen(&scope, args, term.colour, &namespace).await
}

/// Keys, read on a thread of their own (crossterm's reads block).
fn keys() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::thread::spawn(move || {
        while !tx.is_closed() {
            match event::poll(Duration::from_millis(200)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => break,
            }
            if let Ok(Event::Key(k)) = event::read()
                && k.kind == KeyEventKind::Press
                && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                    || (k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL)))
            {
                let _ = tx.blocking_send(());
                break;
            }
        }
    });
    rx
}

async fn full_screen(scope: &Scope, args: &TopArgs, colour: bool, namespace: &str) -> Result<ExitCode, Error> {
    let mut terminal = ratatui::try_init().map_err(Error::Terminal)?;
    let mut quit = keys();
    let mut previous: Option<(Instant, Vec<DestinationRow>)> = None;
    let title = if args.all_namespaces { "all namespaces".to_owned() } else { format!("namespace {namespace}") };
    let result = loop {
        let fetched = scope.rows().await;
        let now = Instant::now();
        let (rows, error) = match fetched {
            Ok(rows) => {
                let rows = match &previous {
                    Some((at, before)) => with_rates(rows, before, now.duration_since(*at).as_secs_f64()),
                    None => rows,
                };
                previous = Some((now, rows.clone()));
                (rows, None)
            }
            Err(e) => (previous.as_ref().map(|p| p.1.clone()).unwrap_or_default(), Some(e.to_string())),
        };
        let drawn = terminal.draw(|frame| {
            let [head, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(frame.area());
            let clock = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
            let mut status = vec![Span::styled(
                format!("kubectl courier top — {title} — {clock} — every {}s — q to quit", args.interval),
                Style::default().add_modifier(Modifier::BOLD),
            )];
            if let Some(e) = &error {
                status.push(Span::styled(format!("  {e}"), Style::default().fg(Color::Red)));
            }
            frame.render_widget(Paragraph::new(Line::from(status)), head);
            let hs = headers(args.all_namespaces);
            let header =
                Row::new(hs.iter().map(|(h, _)| (*h).to_owned())).style(Style::default().add_modifier(Modifier::BOLD));
            let mut widths: Vec<usize> = hs.iter().map(|(h, _)| h.len()).collect();
            let body_rows: Vec<Vec<crate::table::Cell>> = rows.iter().map(|r| cells(r, args.all_namespaces)).collect();
            for r in &body_rows {
                for (i, c) in r.iter().enumerate() {
                    widths[i] = widths[i].max(c.text.chars().count());
                }
            }
            let tui_rows = body_rows.iter().map(|r| {
                Row::new(r.iter().zip(&hs).zip(&widths).map(|((c, (_, align)), w)| {
                    let text = match align {
                        Align::Right => format!("{:>w$}", c.text, w = *w),
                        Align::Left => c.text.clone(),
                    };
                    Span::styled(text, if colour { style_of(c.tone) } else { Style::default() })
                }))
            });
            let constraints: Vec<Constraint> =
                widths.iter().map(|w| Constraint::Length(u16::try_from(*w).unwrap_or(u16::MAX))).collect();
            let table = TuiTable::new(tui_rows, constraints).header(header).column_spacing(3).block(Block::default());
            frame.render_widget(table, body);
        });
        if let Err(e) = drawn {
            break Err(Error::Terminal(e));
        }
        tokio::select! {
            _ = quit.recv() => break Ok(ExitCode::SUCCESS),
            _ = tokio::signal::ctrl_c() => break Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
        }
    };
    ratatui::restore();
    result
}

fn style_of(tone: Tone) -> Style {
    match tone {
        Tone::Plain => Style::default(),
        Tone::Good => Style::default().fg(Color::Green),
        Tone::Bad => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        Tone::Warn => Style::default().fg(Color::Yellow),
        Tone::Info => Style::default().fg(Color::Cyan),
        Tone::Dim => Style::default().add_modifier(Modifier::DIM),
    }
}
