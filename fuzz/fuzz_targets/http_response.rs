//! A partner's answer: response head and body framing (`courier_worker::fuzzing::http_response`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| courier_worker::fuzzing::http_response(data));
