//! A Datum's request template rendered for a record (`courier_worker::fuzzing::template`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| courier_worker::fuzzing::template(data));
