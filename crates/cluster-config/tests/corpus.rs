//! The bad-input corpus (`tests/corpus/`), run through the library: every
//! topology and configuration file there must be refused with the rule code
//! its `# expect:` line names, as an error located in that file at a line
//! or a node. The same cases run through the `xtask` binary in
//! `xtask/tests/corpus.rs`, with the command-line cases.

use cluster_config::{validate, Loaded, Report, Severity};
use std::path::{Path, PathBuf};

/// The Docker host's memory the cases are checked against (the binary's
/// corpus run uses the machine's own).
const MEMORY: u64 = 16 << 30;

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind)
}

/// The case's header lines, whatever its encoding.
fn header(bytes: &[u8]) -> String {
    cluster_config::text::lossy(bytes)
}

fn field<'a>(head: &'a str, key: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim())
}

fn cases(kind: &str) -> Vec<(PathBuf, Vec<u8>, String)> {
    let mut out: Vec<_> = std::fs::read_dir(dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            let expect = field(&header(&bytes), "# expect:")
                .unwrap_or_else(|| panic!("{} has no `# expect:` line", p.display()))
                .to_string();
            (p, bytes, expect)
        })
        .collect();
    out.sort();
    out
}

#[track_caller]
fn check(path: &Path, report: &Report, expect: &str) {
    let shown = path.display().to_string();
    let d = report
        .diagnostics
        .iter()
        .find(|d| d.code == expect)
        .unwrap_or_else(|| panic!("{shown}: expected [{expect}], got:\n{report}"));
    assert_eq!(d.severity, Severity::Error, "{shown}: {d}");
    assert_eq!(d.location.file, shown, "{d}");
    assert!(
        d.location.line.is_some() || d.location.node.is_some(),
        "{shown}: [{expect}] names neither a line nor a node: {d}"
    );
    // A message shows values without control characters: it cannot forge
    // lines of the report.
    assert!(!d.message.contains('\n'), "{d}");
}

#[test]
fn every_topology_case_is_refused_with_its_rule() {
    let all = cases("topology");
    assert!(all.len() >= 60, "{} topology cases", all.len());
    for (path, bytes, expect) in &all {
        let shown = path.display().to_string();
        let report = match Loaded::from_bytes(&shown, bytes) {
            Err(r) => r,
            Ok(l) => validate::validate_topology_with(
                &l,
                &validate::Options {
                    memory: Some(MEMORY),
                    ..validate::Options::for_topology(&l)
                },
            ),
        };
        check(path, &report, expect);
    }
}

#[test]
fn every_conf_case_is_refused_with_its_rule() {
    let all = cases("conf");
    assert!(all.len() >= 25, "{} conf cases", all.len());
    for (path, bytes, expect) in &all {
        let shown = path.display().to_string();
        let head = header(bytes);
        let args: Vec<String> = field(&head, "# args:")
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let opt = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| args[i + 1].clone())
        };
        let subnet = opt("--subnet").map(|s| s.parse::<cluster_config::net::Cidr>().unwrap());
        let major = opt("--postgres")
            .map(|m| m.parse().unwrap())
            .unwrap_or(cluster_config::version::DEFAULT);
        let report = validate::validate_files_with(
            &[(shown.clone(), bytes.clone())],
            opt("--replication-user").as_deref(),
            subnet,
            false,
            &validate::Options {
                memory: Some(MEMORY),
                ..validate::Options::for_major(major)
            },
        );
        check(path, &report, expect);
    }
}

#[test]
fn rule_codes_are_unique_per_problem() {
    // Each rule code of the corpus comes with one kind of message: a code
    // never stands for two different problems.
    let mut seen: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for kind in ["topology", "conf"] {
        for (path, bytes, _) in cases(kind) {
            let shown = path.display().to_string();
            let report = if kind == "topology" {
                match Loaded::from_bytes(&shown, &bytes) {
                    Err(r) => r,
                    Ok(l) => validate::validate_topology(&l),
                }
            } else {
                validate::validate_files(&[(shown.clone(), bytes)], None, None, false)
            };
            for d in report.diagnostics {
                seen.entry(d.code).or_default().push(d.message);
            }
        }
    }
    assert!(seen.contains_key("port-zero") && seen.contains_key("duplicate-port"));
    assert!(seen.contains_key("bind-path") && seen.contains_key("storage-shared"));
    for m in &seen["duplicate-port"] {
        assert!(m.contains("already published"), "duplicate-port says: {m}");
    }
    for m in &seen["storage-shared"] {
        assert!(m.contains("is used both as"), "storage-shared says: {m}");
    }
}
