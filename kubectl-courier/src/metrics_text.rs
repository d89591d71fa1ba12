//! Reads the few samples `describe` and `top` need from a worker's `/metrics` text
//! (Prometheus/OpenMetrics exposition). Lines it does not understand are skipped.

use std::collections::BTreeMap;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of the exposition `text`.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].rfind('}')? + open;
            (&line[..open], parse_labels(&line[open + 1..close])?, &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, BTreeMap::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample { name: name.to_owned(), labels, value })
}

fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.insert(key.trim().trim_start_matches(',').trim().to_owned(), value);
        rest = after[end + 1..].trim_start_matches([',', ' ']);
    }
    Some(labels)
}

/// The sum of the samples named `name` whose labels include `with`.
pub fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name && with.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP courier_worker_rate_share_requests_per_second Requests per second this worker may send.
# TYPE courier_worker_rate_share_requests_per_second gauge
courier_worker_rate_share_requests_per_second{destination="partner"} 100
courier_worker_records_total{destination="partner",outcome="sent"} 1234
courier_worker_records_total{destination="partner",outcome="dead_lettered"} 5
courier_worker_throttled_requests_total{destination="a \"quoted\", name"} 3
courier_worker_up 1
garbage line
# EOF
"#;

    #[test]
    fn samples_are_read_with_their_labels_and_unknown_lines_skipped() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 5, "{samples:?}");
        assert_eq!(sum(&samples, "courier_worker_rate_share_requests_per_second", &[]), Some(100.0));
        assert_eq!(sum(&samples, "courier_worker_records_total", &[("outcome", "sent")]), Some(1234.0));
        assert_eq!(sum(&samples, "courier_worker_records_total", &[]), Some(1239.0));
        assert_eq!(samples[3].labels["destination"], "a \"quoted\", name");
        assert_eq!(sum(&samples, "courier_worker_up", &[]), Some(1.0));
        assert_eq!(sum(&samples, "missing", &[]), None);
    }
}
