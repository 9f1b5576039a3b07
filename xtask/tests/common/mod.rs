//! The end-to-end tests' harness: this run's id (cluster names, ports and
//! scratch folders derive from it, so two checkouts testing on one Docker
//! engine never touch each other's clusters), the tool run as a user would
//! run it, topologies copied from the presets, teardown that checks nothing
//! is left, and direct reads of the servers. Each test file uses part of it.
// Tests print to the test harness, whose streams stay open.
#![allow(clippy::disallowed_macros, dead_code)]

pub mod chaos;

pub use serde_json::Value;
pub use std::path::{Path, PathBuf};
use std::sync::Mutex;
pub use std::time::{Duration, Instant};

/// The presets' major (17) and its image; the other buildable majors run
/// in `every_buildable_major_runs_the_main_flow`.
pub const IMAGE: &str = "pgrepl/postgres:17";
pub static SERIAL: Mutex<()> = Mutex::new(());

/// This run's id: cluster names, ports and scratch folders derive from it,
/// so two checkouts testing on one Docker engine never touch each other's
/// clusters.
pub fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let mixed = (u64::from(std::process::id())).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ nanos;
        format!("{:06x}", mixed & 0xff_ffff)
    })
}

/// This run's name for a test cluster.
pub fn cl(short: &str) -> String {
    format!("e2e{}-{short}", run_id())
}

/// This run's port for a port of the tests' layout (55432 and up).
pub fn port(layout: u16) -> u16 {
    let id = u32::from_str_radix(run_id(), 16).unwrap();
    let base = 20000 + (id % 400) as u16 * 100;
    base + (layout - 55432)
}

/// This run's scratch folder.
pub fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("pgrepl-e2e-{}", run_id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_xtask")
}

/// Whether the tests can run; panics under CI=true when they cannot.
pub fn docker_or_skip(test: &str) -> bool {
    let ok = duct::cmd!("docker", "version", "--format", "{{.Server.Version}}")
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: CI=true but the Docker engine is not available: end-to-end tests cannot run");
        }
        eprintln!("SKIPPED {test}: no Docker engine (set CI=true to make this a failure)");
    }
    ok
}

pub struct Run {
    pub code: i32,
    pub out: String,
}

pub fn xtask(args: &[&str]) -> Run {
    xtask_as(None, args)
}

pub fn xtask_as(user: Option<&str>, args: &[&str]) -> Run {
    xtask_env(user, &[], args)
}

/// The tool with these environment variables set (PGREPL_IMAGE and
/// PGREPL_COMPOSE are unset unless given).
pub fn xtask_env(user: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> Run {
    let expr = match user {
        None => duct::cmd(bin(), args),
        Some(u) => {
            let mut full = vec![
                format!("--reuid={u}"),
                format!("--regid={u}"),
                "--init-groups".to_string(),
                bin().to_string(),
            ];
            full.extend(args.iter().map(|s| s.to_string()));
            duct::cmd("setpriv", full).env("HOME", std::env::temp_dir())
        }
    };
    // duct applies the innermost setting last: a variable is removed only
    // when the caller does not set it.
    let mut expr = expr;
    for var in ["PGREPL_IMAGE", "PGREPL_COMPOSE", "PGREPL_TOPOLOGY"] {
        if !env.iter().any(|(k, _)| *k == var) {
            expr = expr.env_remove(var);
        }
    }
    for (k, v) in env {
        expr = expr.env(k, v);
    }
    let out = expr
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .expect("running xtask");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("$ xtask {}\n{text}", args.join(" "));
    Run {
        code: out.status.code().unwrap_or(-1),
        out: text,
    }
}

#[track_caller]
pub fn ok(args: &[&str]) -> String {
    let r = xtask(args);
    assert_eq!(r.code, 0, "xtask {} failed:\n{}", args.join(" "), r.out);
    r.out
}

/// The presets' image (17), built when absent; the topologies say
/// `postgres = 17`, so the tool finds it by itself.
pub fn ensure_image() {
    ok(&["image", "--postgres", "17"]);
}

/// A major's image, built when absent.
pub fn ensure_major(major: &str) {
    ok(&["image", "--postgres", major]);
}

/// A copy of a preset under another cluster name and other ports.
pub fn topology(preset: &str, name: &str, port_base: u16, two_nodes: bool) -> PathBuf {
    let mut text = std::fs::read_to_string(root().join("conf").join(preset)).unwrap();
    let old_name = text
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    text = text.replacen(
        &format!("name = \"{old_name}\""),
        &format!("name = \"{name}\""),
        1,
    );
    let port_base = port(port_base);
    for (i, p) in [5432, 5433, 5434, 5442, 5443].iter().enumerate() {
        text = text.replace(
            &format!("port = {p}\n"),
            &format!("port = {}\n", port_base + i as u16),
        );
    }
    text = text.replace("subnet = \"172.21.0.0/16\"", "");
    if two_nodes {
        let cut = text.rfind("[[node]]").unwrap();
        text.truncate(cut);
        text = text.replace(
            "'FIRST 1 (\"slave1-db\", \"slave2-db\", \"master-db\")'",
            "'FIRST 1 (\"slave1-db\")'",
        );
    }
    let dir = scratch();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Tears a cluster down when dropped, and checks nothing of it is left.
pub struct Teardown {
    pub topology: PathBuf,
    pub name: String,
    pub user: Option<String>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        let t = self.topology.to_string_lossy().into_owned();
        let r = xtask_as(self.user.as_deref(), &["down", "--purge", "-t", &t]);
        let state = root().join("state").join(&self.name);
        if self.user.is_some() && !std::thread::panicking() {
            assert_eq!(
                r.code, 0,
                "down --purge as {:?} failed:\n{}",
                self.user, r.out
            );
            // The test made the folder's parent as root: the user may empty
            // the folder but not remove it.
            if state.exists() {
                assert_eq!(
                    std::fs::read_dir(&state).unwrap().count(),
                    0,
                    "down --purge left files behind"
                );
                std::fs::remove_dir(&state).unwrap();
            }
        }
        if r.code != 0 {
            // Clean up whatever is left, whatever failed.
            xtask(&["down", "--purge", "-t", &t]);
        }
        if !std::thread::panicking() {
            assert_eq!(r.code, 0, "down --purge failed:\n{}", r.out);
            for kind in ["ps -a", "network ls", "volume ls"] {
                let mut args: Vec<&str> = kind.split(' ').collect();
                let filter = format!("label=io.pgrepl.cluster={}", self.name);
                args.extend(["-q", "--filter", &filter]);
                let left = duct::cmd("docker", &args).read().unwrap();
                assert!(
                    left.trim().is_empty(),
                    "docker {kind} still lists {}: {left}",
                    self.name
                );
            }
            assert!(
                !root().join("state").join(&self.name).exists(),
                "state folder left behind"
            );
        }
    }
}

pub fn status(t: &str) -> (i32, Vec<Value>) {
    let r = xtask(&["status", "--json", "-t", t]);
    let json = r
        .out
        .find('[')
        .map(|i| &r.out[i..r.out.rfind(']').unwrap() + 1])
        .unwrap_or("[]");
    (
        r.code,
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {}", r.out)),
    )
}

pub fn node<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["node"] == name)
        .unwrap_or_else(|| panic!("no row for {name}"))
}

/// A node's container, found by the project's labels.
pub fn container_id(cluster: &str, node: &str) -> String {
    duct::cmd!(
        "docker",
        "ps",
        "-q",
        "--filter",
        format!("label=io.pgrepl.cluster={cluster}"),
        "--filter",
        format!("label=io.pgrepl.node={node}"),
        "--filter",
        "label=com.docker.compose.oneoff=False"
    )
    .read()
    .unwrap()
}

/// `psql` in a node's container, found by the project's labels.
pub fn sql(cluster: &str, node: &str, db: &str, user: &str, query: &str) -> String {
    let id = container_id(cluster, node);
    duct::cmd!(
        "docker",
        "exec",
        "-i",
        id.trim(),
        "psql",
        "-X",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        user,
        "-d",
        db
    )
    .stdin_bytes(query.as_bytes().to_vec())
    .read()
    .unwrap_or_else(|e| panic!("{query}: {e}"))
    .trim()
    .to_string()
}

pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes an image this test built, whatever happens.
pub struct RemoveImage(pub String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = duct::cmd!("docker", "image", "rm", "-f", &self.0)
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run();
    }
}

/// Removes a container this test started, whatever happens.
pub struct RemoveContainer(pub String);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        let _ = duct::cmd!("docker", "rm", "-f", "-v", &self.0)
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run();
    }
}

/// Runs a drill and returns its JSON report.
pub fn drill(t: &str, extra: &[&str]) -> Value {
    let report = scratch().join("drill.json");
    let _ = std::fs::remove_file(&report);
    let rp = report.to_string_lossy().into_owned();
    let mut args = vec!["failover-drill", "-t", t, "--report", &rp];
    args.extend_from_slice(extra);
    let r = xtask(&args);
    assert_eq!(
        r.code,
        0,
        "failover-drill {} failed:\n{}",
        extra.join(" "),
        r.out
    );
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

/// What every drill must leave: zero lost acknowledged commits in each round,
/// exactly one writable node, every other node streaming with its configured
/// sync state.
#[track_caller]
pub fn assert_drill_ok(report: &Value, rounds: usize) {
    let rs = report["rounds"].as_array().unwrap();
    assert_eq!(rs.len(), rounds, "{report}");
    for r in rs {
        assert_eq!(r["lost"], 0, "round lost acknowledged commits: {r}");
        assert!(r["lost_ids"].as_array().unwrap().is_empty());
        assert!(r["duplicated_ids"].as_array().unwrap().is_empty());
        assert!(
            r["acknowledged"].as_u64().unwrap() > 20,
            "the writer barely wrote: {r}"
        );
        assert!(r["rto_ms"].as_u64().unwrap() > 0);
        assert!(r["write_stall_ms"].as_u64().unwrap() > 0, "{r}");
        if r["fault"] == "sync-standby-partition" {
            // Nothing promoted; the stall bounded by the preset's
            // wal_sender_timeout (5s), and explained by status meanwhile.
            assert_eq!(r["promoted"], "", "{r}");
            assert!(r["write_stall_ms"].as_u64().unwrap() <= 10_000, "{r}");
            assert_eq!(r["status_said_why"], true, "{r}");
        } else {
            assert_ne!(r["promoted"], r["failed_primary"]);
            assert!(r["new_timeline"].as_u64().unwrap() >= 2);
            // Every failed node came back without a full copy.
            assert_eq!(r["recloned"], 0, "{r}");
        }
    }
    assert_eq!(
        report["writable_nodes"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert_eq!(report["healthy"], true);
    for s in report["final_status"].as_array().unwrap() {
        assert!(s["problems"].as_array().unwrap().is_empty(), "{s}");
        if s["role"] == "standby" {
            assert_eq!(s["wal_receiver"], "streaming", "{s}");
            assert_eq!(s["sync_state"], s["expected_sync_state"], "{s}");
        }
    }
}

/// What a drill's `--history` file says, read with nothing of the tool's
/// own code, by the format README documents: every `ok` write's value is in
/// its round's `read`, once; no `fail` write's value is. Returns the
/// number of acknowledged writes and of rounds read.
pub fn recheck_history(path: &std::path::Path) -> (usize, usize) {
    use std::collections::{BTreeMap, BTreeSet};
    let text = std::fs::read_to_string(path).unwrap();
    let mut ok: BTreeMap<u64, BTreeSet<i64>> = BTreeMap::new();
    let mut failed: BTreeMap<u64, BTreeSet<i64>> = BTreeMap::new();
    let mut reads: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    let mut last_index = None;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let index = v["index"].as_u64().unwrap();
        assert_eq!(index, last_index.map_or(0, |i| i + 1), "{line}");
        last_index = Some(index);
        let round = v["round"].as_u64().unwrap();
        match (v["type"].as_str().unwrap(), v["f"].as_str().unwrap()) {
            ("ok", "write") => {
                assert!(ok
                    .entry(round)
                    .or_default()
                    .insert(v["value"].as_i64().unwrap()));
            }
            ("fail", "write") => {
                failed
                    .entry(round)
                    .or_default()
                    .insert(v["value"].as_i64().unwrap());
            }
            ("ok", "read") => {
                let ids = v["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_i64().unwrap())
                    .collect();
                assert!(
                    reads.insert(round, ids).is_none(),
                    "two reads in round {round}"
                );
            }
            (t, f) => assert!(
                matches!((t, f), ("invoke", _) | ("info", _)),
                "unexpected operation {t} {f}: {line}"
            ),
        }
    }
    let mut acknowledged = 0;
    for (round, ids) in &ok {
        let read: Vec<i64> = reads.get(round).cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        for id in &read {
            assert!(seen.insert(*id), "round {round}: id {id} read twice");
            assert!(
                !failed.get(round).is_some_and(|f| f.contains(id)),
                "round {round}: refused id {id} present"
            );
        }
        for id in ids {
            assert!(
                seen.contains(id),
                "round {round}: acknowledged id {id} is not in the read"
            );
        }
        acknowledged += ids.len();
    }
    (acknowledged, reads.len())
}

/// The node whose container a test kills, found by label.
pub fn docker_kill(cluster: &str, node: &str) {
    let id = container_id(cluster, node);
    duct::cmd!("docker", "kill", id.trim())
        .stdout_null()
        .run()
        .unwrap();
}

pub fn primary_of(t: &str) -> String {
    let (_, rows) = status(t);
    rows.iter()
        .find(|r| r["role"] == "primary")
        .map(|r| r["node"].as_str().unwrap().to_string())
        .expect("a primary")
}

#[track_caller]
pub fn refused(args: &[&str], why: &str) {
    let r = xtask(args);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.out.contains(why), "expected `{why}`:\n{}", r.out);
}

/// What git sees as untracked in the folders the tool writes to.
pub fn untracked() -> String {
    duct::cmd!(
        "git",
        "status",
        "--porcelain",
        "--untracked-files=all",
        "--",
        "compose",
        "conf"
    )
    .dir(root())
    .read()
    .unwrap()
}
