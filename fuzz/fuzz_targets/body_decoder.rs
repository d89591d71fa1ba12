//! Response bodies of every framing (`courier_worker::fuzzing::body`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| courier_worker::fuzzing::body(data));
