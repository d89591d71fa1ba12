//! Every record decoder: the first byte picks the format (JSON lines plain/gzip/zstd, CSV
//! plain/gzip, TSV, Parquet, Avro), the rest is the file (`courier_worker::fuzzing::records`).
#![no_main]
use courier_worker::fuzzing::{RecordFormat, records};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&pick, file)) = data.split_first() {
        let format = RecordFormat::ALL[usize::from(pick) % RecordFormat::ALL.len()];
        records(format, file);
    }
});
