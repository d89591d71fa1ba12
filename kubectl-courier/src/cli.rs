//! The command line (clap). A bad flag or argument is one line on stderr and exit code 2.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// kubectl courier: watch and steer Courier deliveries.
#[derive(Debug, Parser)]
#[command(name = "kubectl-courier", bin_name = "kubectl courier", version, about, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
    /// Output format instead of the table (status, describe, dead-letters, top).
    #[arg(short, long, global = true, value_enum)]
    pub output: Option<OutputFormat>,
    /// No colours (also off when stdout is not a terminal or NO_COLOR is set).
    #[arg(long, global = true)]
    pub no_color: bool,
}

/// Where to find the cluster and which namespace to look at.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path of the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
}

/// Machine-readable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Json,
    Yaml,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Progress of packages: bar, percent, rate, ETA, counters, phase and reason.
    Status(StatusArgs),
    /// One package in detail: shards, workers and their shares, failure reasons, dead letters.
    Describe(DescribeArgs),
    /// Start a new attempt of a package (sets a new spec.retryNonce).
    Retry(RetryArgs),
    /// Suspend a package (default) or a Destination: `suspend NAME`, `suspend destination NAME`.
    Suspend(TargetArgs),
    /// Resume a suspended package or Destination.
    Resume(TargetArgs),
    /// Print a package's dead letters (read from HDFS or file://) with status and reason.
    DeadLetters(DeadLettersArgs),
    /// Destinations: limit, effective and achieved rate, workers, backlog, 429s.
    Top(TopArgs),
}

/// `status` flags.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// One package (default: every package of the namespace).
    pub package: Option<String>,
    /// Packages of every namespace.
    #[arg(short = 'A', long, conflicts_with = "package")]
    pub all_namespaces: bool,
    /// Keep watching: redraws in place on a terminal, prints a line per change otherwise. With
    /// a PACKAGE it ends when the package finishes (exit 1 if it failed).
    #[arg(short, long)]
    pub watch: bool,
}

/// `describe` arguments.
#[derive(Debug, Clone, Args)]
pub struct DescribeArgs {
    /// The package.
    pub package: String,
}

/// What a retry re-sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    /// Only the records dead-lettered by earlier attempts.
    #[value(name = "FailedRecords", alias = "failed-records")]
    FailedRecords,
    /// Every record again.
    #[value(name = "All", alias = "all")]
    All,
}

impl Scope {
    /// The value of `spec.retryScope`.
    pub fn as_api(self) -> &'static str {
        match self {
            Scope::FailedRecords => "FailedRecords",
            Scope::All => "All",
        }
    }
}

/// `retry` flags.
#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// The package.
    pub package: String,
    /// What the new attempt re-sends.
    #[arg(long, value_enum, default_value = "FailedRecords")]
    pub scope: Scope,
}

/// `suspend` / `resume` arguments: `NAME`, `package NAME`, `destination NAME`, `dp/NAME`,
/// `dest/NAME`.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// `[package|destination] NAME`, or `dp/NAME`, `dest/NAME`.
    #[arg(required = true, num_args = 1..=2, value_names = ["KIND", "NAME"])]
    pub target: Vec<String>,
}

/// A resource `suspend` and `resume` act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Package(String),
    Destination(String),
}

impl TargetArgs {
    /// The resource named by the arguments.
    pub fn target(&self) -> Result<Target, String> {
        parse_target(&self.target)
    }
}

/// Parses `NAME`, `KIND NAME` or `KIND/NAME` (kinds as kubectl spells them).
pub fn parse_target(words: &[String]) -> Result<Target, String> {
    let kind_of = |kind: &str, name: &str| match kind.to_ascii_lowercase().as_str() {
        "package" | "packages" | "dp" | "deliverypackage" | "deliverypackages" => Ok(Target::Package(name.to_owned())),
        "destination" | "destinations" | "dest" => Ok(Target::Destination(name.to_owned())),
        other => Err(format!("unknown kind {other:?}: use package (dp) or destination (dest)")),
    };
    match words {
        [one] => match one.split_once('/') {
            Some((kind, name)) if !name.is_empty() => kind_of(kind, name),
            Some(_) => Err(format!("no name in {one:?}")),
            None if one.is_empty() => Err("empty name".to_owned()),
            None => Ok(Target::Package(one.clone())),
        },
        [kind, name] if !name.is_empty() && !name.contains('/') => kind_of(kind, name),
        _ => Err("expected NAME, KIND NAME or KIND/NAME".to_owned()),
    }
}

/// `dead-letters` flags.
#[derive(Debug, Clone, Args)]
pub struct DeadLettersArgs {
    /// The package.
    pub package: String,
    /// At most this many dead letters.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub limit: u64,
    /// Dead letters of this attempt (default: the current one).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
}

/// `top` flags.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Destinations of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Print once and exit (the default when stdout is not a terminal or with -o).
    #[arg(long)]
    pub once: bool,
    /// Seconds between two refreshes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
}

/// The first line of a clap error without its `error: ` prefix.
pub fn one_line(message: &str) -> String {
    let first = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
    first.trim().trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn suspend_targets_read_like_kubectl() {
        let p = |n: &str| Ok(Target::Package(n.to_owned()));
        let d = |n: &str| Ok(Target::Destination(n.to_owned()));
        let cases = [
            ("users", p("users")),
            ("package users", p("users")),
            ("dp/users", p("users")),
            ("deliverypackage users", p("users")),
            ("destination partner", d("partner")),
            ("dest/partner", d("partner")),
            ("Destination partner", d("partner")),
        ];
        for (input, want) in cases {
            assert_eq!(parse_target(&words(input)), want, "{input}");
        }
        for bad in ["dp/", "pod x", "pods/x", "dest a/b"] {
            assert!(parse_target(&words(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_parse_and_bad_ones_are_refused() {
        let ok = Cli::try_parse_from(["kubectl-courier", "status", "-A", "--watch", "-o", "json"]).expect("valid");
        assert_eq!(ok.output, Some(OutputFormat::Json));
        let retry = Cli::try_parse_from(["kubectl-courier", "retry", "p", "--scope", "All"]).expect("valid");
        match retry.command {
            Command::Retry(r) => assert_eq!(r.scope, Scope::All),
            other => panic!("{other:?}"),
        }
        for bad in [
            &["kubectl-courier", "status", "-o", "xml"][..],
            &["kubectl-courier", "status", "p", "-A"],
            &["kubectl-courier", "retry", "p", "--scope", "Some"],
            &["kubectl-courier", "dead-letters", "p", "--limit", "0"],
            &["kubectl-courier", "frobnicate"],
            &["kubectl-courier", "top", "--interval", "x"],
        ] {
            let err = Cli::try_parse_from(bad).expect_err("refused");
            let line = one_line(&err.to_string());
            assert!(!line.is_empty() && !line.contains('\n'), "{bad:?}: {line}");
        }
    }
}
