//! Logging shared by both binaries: JSON in the cluster and human-readable text on a terminal,
//! with a level (an `EnvFilter` directive such as `info` or `info,courier_worker=debug`) that
//! can be changed while the process runs, through `GET`/`PUT /log-level` on its metrics port.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON lines, unless stderr is a terminal.
    Auto,
    /// Human-readable text (colours on a terminal).
    Text,
    /// One JSON object per line, with the fields of every span the line is in.
    Json,
}

impl LogFormat {
    /// `Auto` decided: JSON off a terminal.
    pub fn resolve(self, stderr_is_terminal: bool) -> LogFormat {
        match self {
            LogFormat::Auto if stderr_is_terminal => LogFormat::Text,
            LogFormat::Auto => LogFormat::Json,
            other => other,
        }
    }
}

/// The longest filter directive accepted over HTTP.
pub const MAX_DIRECTIVE_LEN: usize = 1024;

/// A filter directive was refused.
#[derive(Debug, thiserror::Error)]
pub enum LogLevelError {
    #[error("invalid log level {directive:?}: {source}")]
    Invalid {
        directive: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("log level too long ({0} bytes, at most {MAX_DIRECTIVE_LEN})")]
    TooLong(usize),
    #[error("logging was not set up by courier_core::telemetry")]
    NotInitialised,
    #[error("failed to change the log level: {0}")]
    Reload(#[source] reload::Error),
}

struct Control {
    handle: reload::Handle<EnvFilter, Registry>,
    current: std::sync::Mutex<String>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// The filter to start with: `level` (a flag), else `RUST_LOG`, else `default`.
pub fn initial_directive(level: Option<&str>, rust_log: Option<&str>, default: &str) -> String {
    level.or(rust_log).filter(|s| !s.trim().is_empty()).unwrap_or(default).trim().to_owned()
}

fn parse(directive: &str) -> Result<EnvFilter, LogLevelError> {
    if directive.len() > MAX_DIRECTIVE_LEN {
        return Err(LogLevelError::TooLong(directive.len()));
    }
    EnvFilter::builder()
        .parse(directive)
        .map_err(|source| LogLevelError::Invalid { directive: directive.to_owned(), source })
}

/// Installs the global subscriber writing to stderr. `directive` must parse (check it with
/// [`check_directive`] first to report a bad flag); a subscriber already installed (tests) is
/// left in place.
pub fn init(format: LogFormat, directive: &str) -> Result<(), LogLevelError> {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (filter, handle) = reload::Layer::new(parse(directive)?);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format.resolve(terminal) {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        _ => {
            registry.with(tracing_subscriber::fmt::layer().with_ansi(terminal).with_writer(std::io::stderr)).try_init()
        }
    };
    if installed.is_ok() {
        let _ = CONTROL.set(Control { handle, current: std::sync::Mutex::new(directive.to_owned()) });
    }
    Ok(())
}

/// Whether `directive` is a valid filter (for flags: a bad one is a usage error).
pub fn check_directive(directive: &str) -> Result<(), LogLevelError> {
    parse(directive).map(|_| ())
}

/// The filter in force.
pub fn current_level() -> Option<String> {
    CONTROL.get().map(|c| c.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
}

/// Replaces the filter in force.
pub fn set_level(directive: &str) -> Result<(), LogLevelError> {
    let directive = directive.trim();
    let filter = parse(directive)?;
    let control = CONTROL.get().ok_or(LogLevelError::NotInitialised)?;
    control.handle.reload(filter).map_err(LogLevelError::Reload)?;
    *control.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = directive.to_owned();
    tracing::info!(level = directive, "log level changed");
    Ok(())
}

/// The answer of the `/log-level` endpoint to `method` with `body`: (HTTP status, text).
/// `GET` shows the filter; `PUT` or `POST` with a directive as the body replaces it.
pub fn log_level_endpoint(method: &http::Method, body: &[u8]) -> (http::StatusCode, String) {
    use http::{Method, StatusCode};
    match *method {
        Method::GET => match current_level() {
            Some(level) => (StatusCode::OK, format!("{level}\n")),
            None => (StatusCode::SERVICE_UNAVAILABLE, "logging not initialised\n".to_owned()),
        },
        Method::PUT | Method::POST => {
            let Ok(text) = std::str::from_utf8(body) else {
                return (StatusCode::BAD_REQUEST, "the log level must be UTF-8 text\n".to_owned());
            };
            match set_level(text) {
                Ok(()) => (StatusCode::OK, format!("{}\n", text.trim())),
                Err(e @ LogLevelError::NotInitialised) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
                Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
            }
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, "use GET, or PUT with a level such as debug\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_means_json_off_a_terminal() {
        assert_eq!(LogFormat::Auto.resolve(false), LogFormat::Json);
        assert_eq!(LogFormat::Auto.resolve(true), LogFormat::Text);
        assert_eq!(LogFormat::Json.resolve(true), LogFormat::Json);
        assert_eq!(LogFormat::Text.resolve(false), LogFormat::Text);
    }

    #[test]
    fn the_flag_wins_over_rust_log_which_wins_over_the_default() {
        assert_eq!(initial_directive(Some("debug"), Some("warn"), "info"), "debug");
        assert_eq!(initial_directive(None, Some("warn"), "info"), "warn");
        assert_eq!(initial_directive(None, None, "info"), "info");
        assert_eq!(initial_directive(Some(" "), None, "info"), "info");
    }

    #[test]
    fn directives_are_checked() {
        for good in ["info", "debug", "info,courier_worker=trace", "warn,kube=error"] {
            assert!(check_directive(good).is_ok(), "{good}");
        }
        for bad in ["info,=x=y", "courier_worker=loud", &"x".repeat(MAX_DIRECTIVE_LEN + 1)] {
            assert!(check_directive(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_endpoint_changes_the_level_and_refuses_bad_ones() {
        use http::{Method, StatusCode};
        init(LogFormat::Text, "info").expect("valid");
        // This is the only test of this binary that installs a subscriber.
        assert!(CONTROL.get().is_some(), "the subscriber was installed");
        assert_eq!(log_level_endpoint(&Method::GET, b""), (StatusCode::OK, "info\n".to_owned()));
        assert_eq!(log_level_endpoint(&Method::PUT, b"debug\n"), (StatusCode::OK, "debug\n".to_owned()));
        assert_eq!(current_level().as_deref(), Some("debug"));
        assert!(tracing::enabled!(tracing::Level::DEBUG));
        assert_eq!(log_level_endpoint(&Method::PUT, b"courier_worker=loud").0, StatusCode::BAD_REQUEST);
        assert_eq!(log_level_endpoint(&Method::PUT, &[0xff]).0, StatusCode::BAD_REQUEST);
        assert_eq!(log_level_endpoint(&Method::DELETE, b"").0, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(current_level().as_deref(), Some("debug"), "a refused level changes nothing");
        assert_eq!(log_level_endpoint(&Method::PUT, b"warn").0, StatusCode::OK);
        assert!(!tracing::enabled!(tracing::Level::INFO));
    }
}
