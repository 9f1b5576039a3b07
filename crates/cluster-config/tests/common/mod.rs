#![allow(dead_code)]
use cluster_config::{validate, Loaded, Report};
use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn preset_text(name: &str) -> String {
    std::fs::read_to_string(root().join("conf").join(name)).unwrap()
}

pub fn load(name: &str, text: &str) -> Loaded {
    Loaded::parse(name, text).unwrap_or_else(|e| panic!("{e}"))
}

/// Validates the semi-sync preset after an edit that must apply.
pub fn sync_with(from: &str, to: &str) -> Report {
    edited("semi-sync.toml", from, to)
}

/// The rule code with which the edited preset is refused while it is read.
#[track_caller]
pub fn refused_with(preset: &str, from: &str, to: &str) -> &'static str {
    let text = preset_text(preset);
    assert!(text.contains(from), "preset {preset} has no `{from}`");
    match Loaded::parse(preset, &text.replacen(from, to, 1)) {
        Ok(_) => panic!("`{to}` was accepted"),
        Err(r) => {
            assert_eq!(r.diagnostics.len(), 1, "{r}");
            let d = &r.diagnostics[0];
            assert!(d.location.line.is_some(), "no line in {r}");
            d.code
        }
    }
}

pub fn async_with(from: &str, to: &str) -> Report {
    edited("async-slots.toml", from, to)
}

pub fn edited(preset: &str, from: &str, to: &str) -> Report {
    let text = preset_text(preset);
    assert!(text.contains(from), "preset {preset} has no `{from}`");
    let text = text.replacen(from, to, 1);
    validate::validate_topology(&load(preset, &text))
}

pub fn fixture(path: &str) -> (String, String) {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    (path.to_string(), std::fs::read_to_string(full).unwrap())
}

pub fn files(items: &[(&str, &str)], user: Option<&str>, subnet: Option<&str>) -> Report {
    let files: Vec<(String, Vec<u8>)> = items
        .iter()
        .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
        .collect();
    validate::validate_files(&files, user, subnet.map(|s| s.parse().unwrap()), false)
}

/// Asserts that `code` is reported (as an error or a warning, as given).
#[track_caller]
pub fn assert_has(report: &Report, code: &str, error: bool) {
    let found = report.diagnostics.iter().find(|d| d.code == code);
    match found {
        Some(d) => assert_eq!(
            d.severity == cluster_config::Severity::Error,
            error,
            "{code} has the wrong severity:\n{report}"
        ),
        None => panic!("expected {code}, got:\n{report}"),
    }
}

#[track_caller]
pub fn assert_lacks(report: &Report, code: &str) {
    assert!(
        !report.codes().contains(&code),
        "unexpected {code}:\n{report}"
    );
}
