//! The bad-input corpus (`crates/cluster-config/tests/corpus/`) through the
//! `xtask` binary: every topology, configuration file and command line there
//! must end with a non-zero exit (never a panic), say the rule code or
//! message its `# expect:` line names, name the file and line or node, and
//! change nothing. Mutating subcommands run with a PATH that holds no
//! `docker`: a case that reached Docker would fail with "docker was not
//! found" instead of its own rule, so each proves validation comes first.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn corpus() -> PathBuf {
    root().join("crates/cluster-config/tests/corpus")
}

fn header(bytes: &[u8]) -> String {
    cluster_config::text::lossy(bytes)
}

fn field(head: &str, key: &str) -> Option<String> {
    head.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
}

fn files(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus().join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// What exists under the folders the tool writes to.
fn snapshot() -> Vec<String> {
    let mut out = Vec::new();
    for d in ["state", "compose"] {
        let p = root().join(d);
        if p.exists() {
            for e in walk(&p) {
                out.push(e);
            }
        }
    }
    out.sort();
    out
}

fn walk(p: &Path) -> Vec<String> {
    let mut out = vec![p.display().to_string()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

struct Outcome {
    code: i32,
    out: String,
}

fn xtask(args: &[String], env: &[(String, String)]) -> Outcome {
    // A PATH with no docker in it.
    let empty = std::env::temp_dir().join(format!("pgrepl-corpus-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    // duct applies the innermost setting last: set the case's own variables
    // after removing the tool's.
    let mut e = duct::cmd(env!("CARGO_BIN_EXE_xtask"), args)
        .env("PATH", &empty)
        .env("RUST_BACKTRACE", "0")
        .dir(root());
    for (k, v) in env {
        e = e.env(k, v);
    }
    for var in ["PGREPL_TOPOLOGY", "PGREPL_IMAGE", "PGREPL_USER"] {
        if !env.iter().any(|(k, _)| k == var) {
            e = e.env_remove(var);
        }
    }
    let out = e
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .expect("running xtask");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

#[track_caller]
fn assert_refused(case: &Path, args: &[String], r: &Outcome, expect: &str, located: bool) {
    let shown = format!("{} ({})", case.display(), args.join(" "));
    assert!(
        r.code != 0 && r.code != 101,
        "{shown}: exit {}\n{}",
        r.code,
        r.out
    );
    assert!(!r.out.contains("panicked"), "{shown} panicked:\n{}", r.out);
    let line = r
        .out
        .lines()
        .find(|l| l.contains(expect))
        .unwrap_or_else(|| panic!("{shown}: `{expect}` not reported:\n{}", r.out));
    if located {
        let name = case.file_name().unwrap().to_string_lossy();
        assert!(
            line.contains(&*name),
            "{shown}: the file is not named: {line}"
        );
        let has_line = line.split(&*name).nth(1).is_some_and(|rest| {
            rest.starts_with(':') && rest[1..].starts_with(|c: char| c.is_ascii_digit())
        });
        assert!(
            has_line || line.contains("(node "),
            "{shown}: neither a line nor a node: {line}"
        );
    }
}

#[test]
fn topology_cases_through_every_entry_point() {
    let before = snapshot();
    let cases = files("topology");
    for case in &cases {
        let expect = field(&header(&std::fs::read(case).unwrap()), "# expect:").unwrap();
        let t = case.display().to_string();
        for sub in [
            vec!["validate", "-t", &t],
            vec!["setup-sync", "--dry-run", "-t", &t],
            vec!["setup-sync", "-t", &t],
            vec!["down", "--purge", "-t", &t],
            vec!["render", "--check", "-t", &t],
        ] {
            let args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
            let r = xtask(&args, &[]);
            assert_refused(case, &args, &r, &format!("[{expect}]"), true);
        }
    }
    assert_eq!(snapshot(), before, "a refused case wrote something");
}

#[test]
fn conf_cases() {
    let before = snapshot();
    for case in files("conf") {
        let head = header(&std::fs::read(&case).unwrap());
        let expect = field(&head, "# expect:").unwrap();
        let mut args = vec![
            "validate".to_string(),
            "--conf".into(),
            case.display().to_string(),
        ];
        if let Some(extra) = field(&head, "# args:") {
            args.extend(extra.split_whitespace().map(str::to_string));
        }
        let r = xtask(&args, &[]);
        assert_refused(&case, &args, &r, &format!("[{expect}]"), true);
    }
    assert_eq!(snapshot(), before);
}

#[test]
fn command_line_cases() {
    let before = snapshot();
    let dir = corpus().display().to_string();
    for case in files("cli") {
        let text = std::fs::read_to_string(&case).unwrap();
        let expect = field(&text, "# expect:").unwrap();
        let args: Vec<String> = field(&text, "args:")
            .unwrap()
            .replace("{corpus}", &dir)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let env: Vec<(String, String)> = field(&text, "env:")
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap();
                vec![(k.to_string(), v.to_string())]
            })
            .unwrap_or_default();
        let r = xtask(&args, &env);
        assert_refused(&case, &args, &r, &expect, false);
    }
    assert_eq!(snapshot(), before);
}

#[test]
fn the_corpus_holds_at_least_two_hundred_and_fifty_cases() {
    let n: usize = ["topology", "conf", "cli"]
        .iter()
        .map(|k| files(k).len())
        .sum();
    assert!(n >= 250, "{n} cases");
}

#[test]
#[cfg(unix)]
fn a_closed_pipe_ends_quietly() {
    // Standard output is a pipe whose reader is already gone: every write
    // fails with EPIPE (SIGPIPE is ignored by Rust programs).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = duct::cmd(env!("CARGO_BIN_EXE_xtask"), ["validate"])
        .dir(root())
        .stdout_file(std::os::fd::OwnedFd::from(writer))
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "nothing on stderr either: {err}");
    assert!(
        out.status.success(),
        "the task's own status is kept: {:?}",
        out.status
    );
}

#[test]
#[cfg(unix)]
fn a_closed_standard_error_ends_quietly_with_the_tasks_own_status() {
    // `cargo xtask ... 2>&1 | head`: both streams go to a pipe whose reader
    // is gone; the refusal's message cannot be written, the status stays 1.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let err_end = writer.try_clone().unwrap();
    let out = duct::cmd(
        env!("CARGO_BIN_EXE_xtask"),
        ["validate", "-t", "no-such-topology.toml"],
    )
    .dir(root())
    .stdout_file(std::os::fd::OwnedFd::from(writer))
    .stderr_file(std::os::fd::OwnedFd::from(err_end))
    .unchecked()
    .run()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a closed stderr must not turn the refusal into a panic (101): {:?}",
        out.status
    );
}
