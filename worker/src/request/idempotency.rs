//! The stable idempotency key of a record.

use sha2::{Digest, Sha256};

/// The idempotency key of the record at `offset` of `file_url` in package `namespace/package`:
/// the first 128 bits of SHA-256 over the four values separated by NUL bytes, as 32 lowercase
/// hex digits. It depends on nothing else, so it is identical across retries, worker restarts
/// and re-sends of the package (a new `retryNonce` does not change it).
///
/// The same key in Python: `hashlib.sha256("\0".join([ns, pkg, url, str(offset)]).encode()).hexdigest()[:32]`.
pub fn idempotency_key(namespace: &str, package: &str, file_url: &str, offset: u64) -> String {
    let mut h = Sha256::new();
    h.update(namespace.as_bytes());
    h.update([0]);
    h.update(package.as_bytes());
    h.update([0]);
    h.update(file_url.as_bytes());
    h.update([0]);
    h.update(offset.to_string().as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(32);
    for b in &digest[..16] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_a_pure_function_of_namespace_package_file_and_offset() {
        let a = idempotency_key("ns", "pkg", "hdfs://nn/data/a.jsonl", 42);
        assert_eq!(a, idempotency_key("ns", "pkg", "hdfs://nn/data/a.jsonl", 42));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        for other in [
            idempotency_key("ns2", "pkg", "hdfs://nn/data/a.jsonl", 42),
            idempotency_key("ns", "pkg2", "hdfs://nn/data/a.jsonl", 42),
            idempotency_key("ns", "pkg", "hdfs://nn/data/b.jsonl", 42),
            idempotency_key("ns", "pkg", "hdfs://nn/data/a.jsonl", 43),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn separators_keep_shifted_boundaries_apart() {
        assert_ne!(idempotency_key("ab", "c", "f", 1), idempotency_key("a", "bc", "f", 1));
    }

    #[test]
    fn the_key_matches_the_documented_recipe() {
        // sha256(b"ns\0pkg\0file:///tmp/x\x000").hexdigest()[:32], computed with Python's hashlib.
        assert_eq!(idempotency_key("ns", "pkg", "file:///tmp/x", 0), "0e1a9e5effdfb765050533f57261ed11");
    }
}
