//! What the commands show, as plain data built from API objects by pure functions (so they
//! can be table-tested and printed as a table, JSON or YAML alike).

pub mod deadletter;
pub mod describe;
pub mod package;
pub mod top;

/// The operator's duration format (`eta` in status), for figures the plugin computes itself.
pub use courier_api::common::human_duration;

/// A count with thousands separators: `12,345`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Age of an instant (`3m20s`), `-` when unknown.
pub fn age(then: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, now: jiff::Timestamp) -> String {
    then.map_or_else(
        || "-".to_owned(),
        |t| human_duration(u64::try_from(now.as_second() - t.0.as_second()).unwrap_or(0)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        let cases = [(0, "0"), (999, "999"), (1_000, "1,000"), (1_234_567, "1,234,567"), (-12_000, "-12,000")];
        for (n, want) in cases {
            assert_eq!(count(n), want);
        }
    }

    #[test]
    fn durations_read_like_kubectl_ages() {
        let cases = [(0, "0s"), (45, "45s"), (60, "1m"), (200, "3m20s"), (3_720, "1h2m"), (190_000, "2d4h")];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want);
        }
    }
}
