//! Every command that moves roles or data, interrupted after each of its
#![allow(clippy::disallowed_macros)]
//! changes, then finished the way README says (the same command again),
//! under a writer committing throughout and a watcher reading every node:
//! never two writable nodes, no acknowledged commit lost, a healthy cluster
//! at the end.
//!
//! The tool counts its changes (a mutating command, a file effect, SQL run
//! as a change) and, with `PGREPL_TEST_INTERRUPT_AFTER=K:kill|int`, kills
//! itself after the K-th: SIGKILL to the process alone (an out-of-memory
//! kill) or SIGINT to its process group (Ctrl-C). A first run of each case
//! with `PGREPL_TEST_STEPS` counts its changes. CI runs a representative
//! set of interruption points per command (the first change, the middle,
//! the last, and Ctrl-C at the middle); `PGREPL_INTERRUPT_ALL=1` runs every
//! point with both signals (by hand: README gives the figures).

mod common;
use common::chaos::{self, Load, Node};
use common::*;
use std::os::unix::process::CommandExt;

struct Ctx {
    t: String,
    name: String,
    /// The setup command of the cluster's mode.
    setup: &'static str,
    nodes: Vec<Node>,
    password: String,
    next_id: std::cell::Cell<i64>,
}

impl Ctx {
    fn primary(&self) -> String {
        primary_of(&self.t)
    }

    fn standby(&self) -> String {
        let p = self.primary();
        self.nodes
            .iter()
            .find(|n| n.name != p)
            .unwrap()
            .name
            .clone()
    }

    fn healthy(&self) {
        let mut last = Vec::new();
        let ok = (0..60).any(|_| {
            let (code, rows) = status(&self.t);
            last = rows;
            if code == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(500));
            false
        });
        assert!(ok, "the cluster is not healthy: {last:#?}");
    }
}

/// What a case does before the command, the command, and what follows a
/// finished one (a rejoin after a failover).
struct Case {
    name: &'static str,
    prepare: fn(&Ctx) -> Vec<String>,
    after: fn(&Ctx, &[String]),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "failover",
            prepare: |cx| {
                let p = cx.primary();
                docker_kill(&cx.name, &p);
                vec!["failover".into(), p]
            },
            after: |cx, args| {
                let r = xtask(&["rejoin", "--node", &args[1], "-t", &cx.t]);
                assert_eq!(r.code, 0, "rejoin after the failover failed:\n{}", r.out);
            },
        },
        Case {
            name: "switchover",
            prepare: |cx| vec!["switchover".into(), "--to".into(), cx.standby()],
            after: |_, _| {},
        },
        Case {
            name: "rejoin",
            prepare: |cx| {
                let p = cx.primary();
                docker_kill(&cx.name, &p);
                let r = xtask(&["failover", "-t", &cx.t]);
                assert_eq!(r.code, 0, "{}", r.out);
                vec!["rejoin".into(), "--node".into(), p]
            },
            after: |_, _| {},
        },
        Case {
            name: "basebackup",
            prepare: |cx| vec!["basebackup".into(), "--node".into(), cx.standby()],
            after: |_, _| {},
        },
        Case {
            name: "setup-sync",
            prepare: |_| vec!["setup-sync".into()],
            after: |_, _| {},
        },
    ]
}

/// The command's arguments as run (the case's own first element is the
/// command; the failover case carries the failed node after it).
fn command_args(case: &Case, prepared: &[String], t: &str) -> Vec<String> {
    let mut a: Vec<String> = if case.name == "failover" {
        vec!["failover".into()]
    } else {
        prepared.to_vec()
    };
    a.extend(["-t".into(), t.into()]);
    a
}

/// Runs the tool in its own process group (so a Ctrl-C it sends itself
/// reaches it and its children, not the test) with `env`, SIGINT and
/// SIGQUIT at their default action as in a terminal's foreground job (a
/// test run in a background job of a shell without job control would
/// otherwise pass their "ignored" on, and the Ctrl-C would do nothing).
/// Returns the exit code, the output and the changes the run made (one
/// line each).
fn run_interruptible(args: &[String], env: &[(&str, String)]) -> (Option<i32>, String, String) {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let steps = scratch().join(format!("steps-run-{n}.txt"));
    let _ = std::fs::remove_file(&steps);
    let mut e = duct::cmd(bin(), args)
        .before_spawn(|c| {
            c.process_group(0);
            // SAFETY: signal(2) is async-signal-safe and touches no memory
            // of the parent; it runs in the child between fork and exec.
            #[allow(unsafe_code)]
            unsafe {
                c.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_DFL);
                    libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                    Ok(())
                });
            }
            Ok(())
        })
        .env_remove("PGREPL_IMAGE")
        .env_remove("PGREPL_COMPOSE")
        .env("PGREPL_TEST_STEPS", &steps);
    for (k, v) in env {
        e = e.env(k, v);
    }
    let out = e
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .expect("running xtask");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let made = std::fs::read_to_string(&steps).unwrap_or_default();
    (out.status.code(), text, made)
}

/// What a run asked to stop after change `k` did: ended by the signal, or
/// finished because it made fewer than `k` changes this time (a re-run
/// skips what is already done). A run that made `k` changes and still
/// finished, or exited with a status, fails the test.
fn interrupted_or_finished(
    label: &str,
    k: u32,
    signal: &str,
    (code, out, steps): &(Option<i32>, String, String),
) -> &'static str {
    let made = steps.lines().count() as u32;
    match code {
        None => "interrupted",
        Some(0) if made < k => "finished before the interruption point",
        Some(0) => panic!(
            "{label} {k}:{signal}: made {made} changes and finished: the interruption did not happen\n{out}"
        ),
        Some(c) => panic!("{label} {k}:{signal}: exited {c} instead of being interrupted:\n{out}"),
    }
}

/// One interruption: the case prepared under load, the command killed
/// after change `k` with `signal`, the same command run again, what
/// follows, and the checks.
fn interrupt_once(cx: &Ctx, case: &Case, k: u32, signal: &str) -> String {
    cx.healthy();
    let first = cx.next_id.get();
    cx.next_id.set(first + 10_000_000);
    let load = Load::start(&cx.nodes, &cx.password, first);
    wait_for(
        "the writer's first commits",
        Duration::from_secs(30),
        || load.acked() > 20,
    );
    let prepared = (case.prepare)(cx);
    let args = command_args(case, &prepared, &cx.t);
    let first_run = run_interruptible(
        &args,
        &[("PGREPL_TEST_INTERRUPT_AFTER", format!("{k}:{signal}"))],
    );
    let how = interrupted_or_finished(case.name, k, signal, &first_run);
    let (code, out, _) = first_run;
    if code != Some(0) {
        // What README says to do next: the same command again.
        let (again, out2, _) = run_interruptible(&args, &[]);
        assert_eq!(
            again,
            Some(0),
            "{} interrupted after change {k} ({signal}); running it again failed:\n{out}\n--- again:\n{out2}",
            case.name
        );
    }
    (case.after)(cx, &prepared);
    cx.healthy();
    wait_for(
        "commits after the operation",
        Duration::from_secs(30),
        || load.acked() > 40,
    );
    let seen = load.finish();
    assert!(
        seen.two_writable.is_empty(),
        "{} {k}:{signal}: {:?} ({} samples)",
        case.name,
        seen.two_writable,
        seen.samples
    );
    let primary = cx.primary();
    let node = cx.nodes.iter().find(|n| n.name == primary).unwrap();
    let present = chaos::ids_on(node, &cx.password);
    let set: std::collections::BTreeSet<i64> = present.iter().copied().collect();
    assert_eq!(
        set.len(),
        present.len(),
        "{} {k}:{signal}: duplicated ids",
        case.name
    );
    let lost: Vec<&i64> = seen.acked.iter().filter(|id| !set.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "{} {k}:{signal}: {} acknowledged commit(s) lost: {:?}",
        case.name,
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    format!(
        "{how}, {} acknowledged, 0 lost, {} watcher samples",
        seen.acked.len(),
        seen.samples
    )
}

/// The number of changes an uninterrupted run of the case makes.
fn count_changes(cx: &Ctx, case: &Case) -> u32 {
    cx.healthy();
    let prepared = (case.prepare)(cx);
    let args = command_args(case, &prepared, &cx.t);
    let (code, out, steps) = run_interruptible(&args, &[]);
    assert_eq!(code, Some(0), "{}:\n{out}", case.name);
    (case.after)(cx, &prepared);
    println!("{}: {} changes:\n{steps}", case.name, steps.lines().count());
    steps.lines().count() as u32
}

#[test]
fn every_command_interrupted_at_its_changes_is_finished_by_a_rerun() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("every_command_interrupted_at_its_changes_is_finished_by_a_rerun") {
        return;
    }
    ensure_image();
    let (cx, _down) = context("semi-sync.toml", "intr", 55700, "setup-sync");
    let all = std::env::var("PGREPL_INTERRUPT_ALL").is_ok_and(|v| v == "1");
    let only: Option<String> = std::env::var("PGREPL_INTERRUPT_ONLY").ok();
    let mut summary = Vec::new();
    for case in cases() {
        if only.as_deref().is_some_and(|o| o != case.name) {
            continue;
        }
        summary.extend(interrupt_at_points(&cx, &case, all, |n| {
            let mid = n.div_ceil(2);
            let mut p = vec![(1, "kill"), (mid, "kill"), (n, "kill"), (mid, "int")];
            p.dedup();
            p
        }));
    }
    if only.as_deref().is_none_or(|o| o == "setup-sync-from-empty") {
        summary.extend(setup_from_empty(&cx, all));
    }
    println!("\n{}", summary.join("\n"));
}

/// `setup-async` the same way, on the asynchronous preset (with the
/// writer's database): on a running cluster at its changes, and from empty.
#[test]
fn setup_async_interrupted_at_its_changes_is_finished_by_a_rerun() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("setup_async_interrupted_at_its_changes_is_finished_by_a_rerun") {
        return;
    }
    ensure_image();
    let (cx, _down) = context("async-slots.toml", "intra", 55740, "setup-async");
    let all = std::env::var("PGREPL_INTERRUPT_ALL").is_ok_and(|v| v == "1");
    let only: Option<String> = std::env::var("PGREPL_INTERRUPT_ONLY").ok();
    let mut summary = Vec::new();
    let case = Case {
        name: "setup-async",
        prepare: |_| vec!["setup-async".into()],
        after: |_, _| {},
    };
    if only.as_deref().is_none_or(|o| o == case.name) {
        summary.extend(interrupt_at_points(&cx, &case, all, |n| {
            vec![(n.div_ceil(2), "kill"), (n, "int")]
        }));
    }
    if only
        .as_deref()
        .is_none_or(|o| o == "setup-async-from-empty")
    {
        summary.extend(setup_from_empty(&cx, all));
    }
    println!("\n{}", summary.join("\n"));
}

/// The case's changes counted, then the case interrupted at each point:
/// every change with both signals when `all`, else the points `ci` picks
/// from the count. One summary line per point.
fn interrupt_at_points(
    cx: &Ctx,
    case: &Case,
    all: bool,
    ci: fn(u32) -> Vec<(u32, &'static str)>,
) -> Vec<String> {
    let n = count_changes(cx, case);
    assert!(n > 0, "{} made no change", case.name);
    let points: Vec<(u32, &str)> = if all {
        (1..=n).flat_map(|k| [(k, "kill"), (k, "int")]).collect()
    } else {
        ci(n)
    };
    let mut lines = Vec::new();
    for (k, signal) in points {
        let started = Instant::now();
        let what = interrupt_once(cx, case, k, signal);
        let line = format!(
            "{}: after change {k} of {n} ({signal}): {what} ({:.1} s)",
            case.name,
            started.elapsed().as_secs_f64()
        );
        println!("{line}");
        lines.push(line);
    }
    lines
}

/// A running cluster of `preset` (its database and owner replaced by the
/// writer's), set up with `setup`, the writer's table created, and what
/// removes it all at the end.
fn context(preset: &str, short: &str, layout: u16, setup: &'static str) -> (Ctx, Teardown) {
    let name = cl(short);
    let topo = topology(preset, &name, layout, false);
    let text = std::fs::read_to_string(&topo).unwrap();
    let text = text.replace(
        "name = \"counter\"\nowner = \"counter\"",
        "name = \"legendarydb\"\nowner = \"dbuser\"",
    );
    std::fs::write(&topo, &text).unwrap();
    let t = topo.to_string_lossy().into_owned();
    let down = Teardown {
        topology: topo.clone(),
        name: name.clone(),
        user: None,
    };
    ok(&[setup, "-t", &t]);
    let secrets =
        std::fs::read_to_string(root().join("state").join(&name).join("secrets.env")).unwrap();
    let password = secrets
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
        .unwrap()
        .trim_matches('\'')
        .to_string();
    // Nodes in the file's order; the test topology numbers their ports
    // from the layout's base in the preset's order.
    let loaded: toml::Value = toml::from_str(&text).unwrap();
    let nodes: Vec<Node> = loaded["node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| Node {
            name: n["name"].as_str().unwrap().to_string(),
            port: u16::try_from(n["port"].as_integer().unwrap()).unwrap(),
        })
        .collect();
    let cx = Ctx {
        t,
        name: name.clone(),
        setup,
        nodes,
        password,
        next_id: std::cell::Cell::new(1),
    };
    let primary = cx.primary();
    sql(
        &name,
        &primary,
        "legendarydb",
        "dbuser",
        &format!("CREATE TABLE {} (id bigint PRIMARY KEY)", chaos::TABLE),
    );
    (cx, down)
}

/// `setup-sync` of a cluster with no data yet, interrupted and run again:
/// a healthy cluster, never two writable nodes (the watcher runs; there is
/// nothing to write to yet).
fn setup_from_empty(cx: &Ctx, all: bool) -> Vec<String> {
    let setup = [cx.setup.to_string(), "-t".into(), cx.t.clone()];
    let label = format!("{}-from-empty", cx.setup);
    // The passwords are kept across the purges, so the watcher can log in
    // from the first moment a server runs (setup keeps a complete file).
    let secrets = root().join("state").join(&cx.name).join("secrets.env");
    let kept = std::fs::read_to_string(&secrets).unwrap();
    let purge = || {
        ok(&["down", "--purge", "-t", &cx.t]);
        std::fs::create_dir_all(secrets.parent().unwrap()).unwrap();
        std::fs::write(&secrets, &kept).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    purge();
    let (code, out, steps) = run_interruptible(&setup, &[]);
    assert_eq!(code, Some(0), "{out}");
    let n = steps.lines().count() as u32;
    println!("{label}: {n} changes:\n{steps}");
    let points: Vec<(u32, &str)> = if all {
        (1..=n).flat_map(|k| [(k, "kill"), (k, "int")]).collect()
    } else {
        vec![(n.div_ceil(3), "kill"), (n.div_ceil(3) * 2, "int")]
    };
    let mut lines = Vec::new();
    for (k, signal) in points {
        let started = Instant::now();
        purge();
        let load = Load::start(&cx.nodes, &cx.password, 0);
        let first_run = run_interruptible(
            &setup,
            &[("PGREPL_TEST_INTERRUPT_AFTER", format!("{k}:{signal}"))],
        );
        let how = interrupted_or_finished(&label, k, signal, &first_run);
        let (code, out, _) = first_run;
        if code != Some(0) {
            let (again, out2, _) = run_interruptible(&setup, &[]);
            assert_eq!(
                again,
                Some(0),
                "{label}: interrupted after change {k} ({signal}); again:\n{out}\n---\n{out2}"
            );
        }
        cx.healthy();
        let seen = load.finish();
        assert!(
            seen.two_writable.is_empty(),
            "{label} {k}:{signal}: {:?}",
            seen.two_writable
        );
        let line = format!(
            "{label}: after change {k} of {n} ({signal}): {how}, {} watcher samples ({:.1} s)",
            seen.samples,
            started.elapsed().as_secs_f64()
        );
        println!("{line}");
        lines.push(line);
    }
    lines
}
