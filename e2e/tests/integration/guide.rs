//! The user guide (docs/guide, an mdBook) builds with `mdbook`, and every link of the built
//! HTML points at a page that exists and, with a `#fragment`, at an element of that page. Needs
//! mdbook (`cargo install mdbook`, which make test does): without it the test fails, it never
//! passes unchecked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use courier_e2e::cluster::repo_root;

fn mdbook() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let installed = home.join(".cargo/bin/mdbook");
    if installed.is_file() { installed } else { PathBuf::from("mdbook") }
}

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            html_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
}

/// The values of `attr="…"` in `html`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

fn is_external(link: &str) -> bool {
    link.contains("://") || link.starts_with("mailto:") || link.starts_with("javascript:") || link.starts_with("data:")
}

#[test]
fn the_guide_builds_and_every_link_resolves() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    let root = repo_root();
    let out = tempfile::tempdir().expect("tempdir");
    let built = Command::new(mdbook())
        .args(["build", "docs/guide", "-d"])
        .arg(out.path())
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("mdbook: {e} (install it: cargo install mdbook --locked)"));
    let log = format!("{}{}", String::from_utf8_lossy(&built.stdout), String::from_utf8_lossy(&built.stderr));
    assert!(built.status.success(), "mdbook build failed:\n{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "mdbook warned:\n{log}");

    let mut pages = Vec::new();
    html_files(out.path(), &mut pages);
    assert!(pages.len() >= 20, "{} pages built", pages.len());
    let texts: BTreeMap<PathBuf, String> =
        pages.iter().map(|p| (p.clone(), std::fs::read_to_string(p).expect("read page"))).collect();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (page, html) in &texts {
        // The 404 page is served at whatever path was not found: its links are absolute, from
        // the site's root, and are not files of the book.
        if page.file_name().is_some_and(|n| n == "404.html") {
            continue;
        }
        assert!(!html.contains("{{#include"), "{} has an include mdbook did not resolve", page.display());
        let dir = page.parent().expect("parent");
        for link in attribute_values(html, "href").into_iter().chain(attribute_values(html, "src")) {
            if link.is_empty() || is_external(link) {
                continue;
            }
            let (path, fragment) = link.split_once('#').unwrap_or((link, ""));
            let path = path.split('?').next().unwrap_or_default();
            let target = if path.is_empty() { page.clone() } else { dir.join(path) };
            let target = if target.is_dir() { target.join("index.html") } else { target };
            checked += 1;
            let Ok(target) = target.canonicalize() else {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            };
            if target.extension().is_some_and(|e| e == "md") {
                broken.push(format!("{}: {link} (a .md file outside the book)", page.display()));
            }
            if !fragment.is_empty()
                && let Some(text) = texts.get(&target)
                && !text.contains(&format!("id=\"{fragment}\""))
            {
                broken.push(format!("{}: {link} (no element with id {fragment})", page.display()));
            }
        }
    }
    assert!(checked > 100, "only {checked} links checked");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_summary_lists_every_page_of_the_guide() {
    let _turn = courier_e2e::testkit::turn(module_path!());
    // A page left out of SUMMARY.md is not built (create-missing is off): every page of
    // docs/guide/src must be in it, so none is silently dropped.
    let src = repo_root().join("docs/guide/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).expect("SUMMARY.md");
    let mut missing = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).expect("under src").to_string_lossy().replace('\\', "/");
            if rel.ends_with(".md") && rel != "SUMMARY.md" && !summary.contains(&format!("]({rel})")) {
                missing.push(rel);
            }
        }
    }
    assert!(missing.is_empty(), "pages not in SUMMARY.md: {missing:?}");
}
