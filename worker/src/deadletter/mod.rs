//! Dead letters: every record the worker gives up on — refused by the partner, out of
//! attempts, impossible to build a request from, or malformed in the source — is written as one
//! JSON line with its reason, to a file:// or hdfs:// sink. Entries are buffered and written
//! out on every checkpoint, before the checkpoint is reported.

mod entry;
mod hdfs;
mod sink;
mod writer;

pub use entry::DeadLetter;
pub use sink::{AnySink, DeadLetterError, DeadLetterSink, FileSink, HdfsSink, dead_letter_file_name};
pub use writer::DeadLetterWriter;
