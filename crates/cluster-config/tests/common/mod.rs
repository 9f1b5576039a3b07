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

/// A YAML document the crate rendered, read with a real YAML parser
/// (yaml-rust2), as JSON values: what Compose and Patroni read, not what
/// the crate thinks it wrote.
pub fn yaml(text: &str) -> serde_json::Value {
    use yaml_rust2::{Yaml, YamlLoader};
    fn to_json(y: &Yaml) -> serde_json::Value {
        match y {
            Yaml::String(s) | Yaml::Real(s) => serde_json::Value::String(s.clone()),
            Yaml::Integer(i) => serde_json::Value::from(*i),
            Yaml::Boolean(b) => serde_json::Value::Bool(*b),
            Yaml::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
            Yaml::Hash(h) => serde_json::Value::Object(
                h.iter()
                    .map(|(k, v)| {
                        let key = match k {
                            Yaml::String(s) => s.clone(),
                            Yaml::Integer(i) => i.to_string(),
                            Yaml::Boolean(b) => b.to_string(),
                            other => panic!("unexpected YAML key {other:?}"),
                        };
                        (key, to_json(v))
                    })
                    .collect(),
            ),
            Yaml::Null => serde_json::Value::Null,
            other => panic!("unexpected YAML value {other:?}"),
        }
    }
    let docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"));
    assert_eq!(docs.len(), 1, "one YAML document");
    to_json(&docs[0])
}
