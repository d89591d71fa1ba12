//! aimd
