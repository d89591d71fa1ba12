//! The class of a failed attempt ([`TransportError`]), told the same way whichever path sent
//! it: the lean HTTP/1.1 connection (`conn`) or hyper (HTTP/2, and HTTP/1.1 chosen by ALPN).
//! Where it failed decides the class — before a connection (connect), while writing (write),
//! waiting for or reading the answer (read), an answer that breaks HTTP (protocol) — and the
//! class decides the retry rule (`TransportError::retry_entry`).

use std::error::Error;

use super::conn::ExchangeError;
use super::retry::TransportError;

/// The class of a lean-path exchange that failed on an open connection.
pub(crate) fn of_exchange(error: &ExchangeError) -> TransportError {
    match error {
        ExchangeError::Write(_) => TransportError::Write,
        ExchangeError::Read(_) | ExchangeError::Closed { .. } => TransportError::Read,
        ExchangeError::Wire(_) => TransportError::Protocol,
    }
}

/// The class of a request hyper-util's client could not complete.
pub(crate) fn of_client(error: &hyper_util::client::legacy::Error) -> TransportError {
    if error.is_connect() { TransportError::Connect } else { of_chain(error) }
}

/// The class of an error from hyper (a request or a response body), from the first error in
/// its chain that says where it failed. An error that says nothing is a read failure: the
/// request may have reached the partner.
pub(crate) fn of_chain(error: &(dyn Error + 'static)) -> TransportError {
    let mut next = Some(error);
    while let Some(err) = next {
        if let Some(class) = of_hyper(err).or_else(|| of_h2(err)) {
            return class;
        }
        if err.is::<std::io::Error>() {
            return TransportError::Read;
        }
        next = err.source();
    }
    TransportError::Read
}

fn of_hyper(err: &(dyn Error + 'static)) -> Option<TransportError> {
    let err = err.downcast_ref::<hyper::Error>()?;
    if err.is_parse() || err.is_parse_status() || err.is_parse_too_large() {
        Some(TransportError::Protocol)
    } else if err.is_body_write_aborted() || err.is_user() {
        Some(TransportError::Write)
    } else if err.is_timeout() {
        Some(TransportError::Timeout)
    } else if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        Some(TransportError::Read)
    } else {
        // An HTTP/2 error or an I/O error underneath: its source tells.
        None
    }
}

fn of_h2(err: &(dyn Error + 'static)) -> Option<TransportError> {
    let err = err.downcast_ref::<h2::Error>()?;
    Some(if err.is_io() {
        TransportError::Read
    } else if err.reason() == Some(h2::Reason::REFUSED_STREAM) {
        // RFC 9113 §8.7: a refused stream was not processed at all.
        TransportError::Connect
    } else {
        TransportError::Protocol
    })
}
