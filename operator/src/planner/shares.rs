//! shares
