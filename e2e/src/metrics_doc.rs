//! docs/metrics.md, the one table of Courier's metrics, against an exposition: tests of both
//! binaries call [`assert_documented`] with their `/metrics` text so a metric cannot be added,
//! renamed or retyped without its row. Also where test suites write their figures tables into
//! docs ([`write_table`]).

use std::collections::BTreeMap;

use crate::cluster::repo_root;

/// A metric as a row of the table or an exposition gives it: type and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub kind: String,
    /// Label names Courier sets (the table's italic ones, set by the scrape, left out).
    pub labels: Vec<String>,
}

/// The rows of docs/metrics.md whose metric starts with `prefix`: name as queried (with
/// `_total` on counters) → family.
pub fn documented(prefix: &str) -> BTreeMap<String, Family> {
    let path = repo_root().join("docs/metrics.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    table_rows(&text, prefix)
}

/// The rows of a metrics table in `markdown` whose metric starts with `prefix`.
pub fn table_rows(markdown: &str, prefix: &str) -> BTreeMap<String, Family> {
    let mut rows = BTreeMap::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", name, type, labels, meaning, ""
        let [_, name, kind, labels, _, ..] = cells[..] else { continue };
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else { continue };
        if !name.starts_with(prefix) {
            continue;
        }
        let labels = labels
            .split(',')
            .map(str::trim)
            .filter(|l| l.starts_with('`'))
            .map(|l| l.trim_matches('`').to_owned())
            .collect();
        rows.insert(name.to_owned(), Family { kind: kind.to_owned(), labels });
    }
    rows
}

/// The families of an OpenMetrics/Prometheus text exposition: name as queried → type and the
/// label names of its samples (`le` of histogram buckets left out).
pub fn exposed(exposition: &str) -> BTreeMap<String, Family> {
    let mut kinds: BTreeMap<String, String> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                kinds.insert(name.to_owned(), kind.to_owned());
            }
        }
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (base, kind) in &kinds {
        let name = if kind == "counter" { format!("{base}_total") } else { base.clone() };
        let mut labels: Vec<String> = Vec::new();
        for line in exposition.lines().filter(|l| !l.starts_with('#')) {
            let Some((sample, rest)) = line.split_once('{') else { continue };
            let family_of_sample = ["_total", "_bucket", "_sum", "_count", "_created"]
                .iter()
                .find_map(|s| sample.strip_suffix(s))
                .unwrap_or(sample);
            if family_of_sample != base {
                continue;
            }
            let inside = rest.split('}').next().unwrap_or_default();
            for pair in inside.split(',') {
                if let Some((label, _)) = pair.split_once('=')
                    && label != "le"
                    && !labels.iter().any(|l| l == label)
                {
                    labels.push(label.to_owned());
                }
            }
        }
        families.insert(name, Family { kind: kind.clone(), labels });
    }
    families
}

/// Panics unless the families of `exposition` whose names start with `prefix` are exactly the
/// rows of docs/metrics.md with that prefix, with the same types and labels (in order).
pub fn assert_documented(exposition: &str, prefix: &str) {
    let doc = documented(prefix);
    let code = exposed(exposition);
    let code: BTreeMap<_, _> = code.into_iter().filter(|(n, _)| n.starts_with(prefix)).collect();
    assert!(!code.is_empty(), "no {prefix} metric in\n{exposition}");
    for (name, family) in &code {
        let row = doc.get(name).unwrap_or_else(|| panic!("{name} ({family:?}) has no row in docs/metrics.md"));
        assert_eq!(row.kind, family.kind, "type of {name} in docs/metrics.md");
        assert_eq!(row.labels, family.labels, "labels of {name} in docs/metrics.md");
    }
    for name in doc.keys() {
        assert!(code.contains_key(name), "docs/metrics.md lists {name}, which the code does not expose");
    }
}

/// Writes `table` into `docs/<doc>` between the lines `<!-- <marker>: start -->` and
/// `<!-- <marker>: end -->` (a suite's figures, kept where the prose about them is).
///
/// # Panics
/// When the file cannot be read or written, or lacks the markers.
pub fn write_table(doc: &str, marker: &str, table: &str) {
    let path = repo_root().join("docs").join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (start, end) = (format!("<!-- {marker}: start -->\n"), format!("<!-- {marker}: end -->"));
    let (Some(a), Some(b)) = (text.find(&start), text.find(&end)) else {
        panic!("{}: no {start:?} … {end:?} markers", path.display())
    };
    let updated = format!("{}{start}{table}{}", &text[..a], &text[b..]);
    std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_and_expositions_are_read_alike() {
        let doc = "| metric | type | labels | meaning |\n|---|---|---|---|\n\
                   | `x_requests_total` | counter | `destination`, `class`, *`pod`* | n |\n\
                   | `x_latency_seconds` | histogram | `destination` | n |\n\
                   | `x_up` | gauge | | n |\n| `y_other` | gauge | | n |\n";
        let exposition = "# TYPE x_requests counter\nx_requests_total{destination=\"d\",class=\"2xx\"} 1\n\
                          # TYPE x_latency_seconds histogram\nx_latency_seconds_bucket{destination=\"d\",le=\"0.1\"} 1\n\
                          x_latency_seconds_sum{destination=\"d\"} 0.1\n# TYPE x_up gauge\nx_up 1\n# EOF\n";
        let rows = table_rows(doc, "x_");
        assert_eq!(rows, exposed(exposition));
        assert_eq!(rows["x_requests_total"].labels, ["destination", "class"]);
        assert_eq!(rows.len(), 3);
    }
}
