//! End-to-end tests of the PostgreSQL majors the project builds (15, 17,
//! 18) and of what is refused before anything changes: an absent image of
//! a major that cannot be built here, data folders of another major than
//! the image's, and a configuration the real server refuses although the
//! tool's own rules let it through. The main flow runs once under Compose
//! v1 and once under v2 (`PGREPL_COMPOSE`).
//!
//! Under `CI=true` a missing Docker engine fails these tests; elsewhere they
//! print that they were skipped and why.
// Tests print to the test harness, whose streams stay open.
#![allow(clippy::disallowed_macros)]

mod common;
use common::*;

/// A copy of the semi-sync preset on `major`.
fn on_major(short: &str, layout: u16, two_nodes: bool, major: &str) -> PathBuf {
    let path = topology("semi-sync.toml", &cl(short), layout, two_nodes);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("postgres = 17\n"),
        "the preset names its major"
    );
    std::fs::write(
        &path,
        text.replace("postgres = 17\n", &format!("postgres = {major}\n")),
    )
    .unwrap();
    path
}

/// No container and no state of the cluster exist.
fn nothing_created(name: &str) {
    let ids = duct::cmd!(
        "docker",
        "ps",
        "-a",
        "-q",
        "--filter",
        format!("label=io.pgrepl.cluster={name}")
    )
    .read()
    .unwrap();
    assert!(ids.trim().is_empty(), "containers of {name} were created");
    assert!(
        !root().join("state").join(name).exists(),
        "state of {name} was written"
    );
}

#[test]
fn every_buildable_major_runs_the_main_flow() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("every_buildable_major_runs_the_main_flow") {
        return;
    }
    // 17 runs every other end-to-end test; 15 and 18 run the main flow
    // here, one under Compose v1 and one under v2.
    for (major, compose, layout) in [("15", "v1", 55600), ("18", "v2", 55610)] {
        ensure_major(major);
        let short = format!("pg{major}");
        let topo = on_major(&short, layout, false, major);
        let t = topo.to_string_lossy().into_owned();
        let _down = Teardown {
            topology: topo.clone(),
            name: cl(&short),
            user: None,
        };
        let env = [("PGREPL_COMPOSE", compose)];
        let run = |args: &[&str]| {
            let r = xtask_env(None, &env, args);
            assert_eq!(r.code, 0, "xtask {} failed:\n{}", args.join(" "), r.out);
            r.out
        };
        let started = Instant::now();
        let out = run(&["setup-sync", "-t", &t]);
        println!(
            "PostgreSQL {major}: setup-sync took {:.1}s",
            started.elapsed().as_secs_f64()
        );
        assert!(
            out.contains(&format!(
                "image pgrepl/postgres:{major} (PostgreSQL {major}."
            )),
            "{out}"
        );
        let compose_said = if compose == "v1" {
            "docker-compose 1."
        } else {
            "docker compose "
        };
        assert!(out.contains(compose_said), "{compose} was not used:\n{out}");
        assert!(out.contains("is up and verified"), "{out}");
        let (code, rows) = status(&t);
        assert_eq!(code, 0, "{rows:?}");
        for r in &rows {
            let v = r["version"].as_str().unwrap_or_default();
            assert!(v.starts_with(&format!("{major}.")), "{r}");
        }
        // The old primary restarted read-only by a "supervisor" rejoins
        // without a re-clone (on 15, pg_rewind alone would fail when it had
        // already followed the new timeline).
        let report = drill(
            &t,
            &[
                "--fault",
                "crash,restart-old-primary,restart-old-primary",
                "--rounds",
                "3",
            ],
        );
        assert_drill_ok(&report, 3);
        for r in report["rounds"].as_array().unwrap() {
            println!(
                "PostgreSQL {major}: round {} ({}): rejoined by {}",
                r["round"], r["fault"], r["rejoined_by"]
            );
        }
        println!(
            "PostgreSQL {major}: crash drill RTO {} ms, {} acknowledged, {} lost",
            report["rto_median_ms"], report["acknowledged_total"], report["lost_total"]
        );
        let primary = primary_of(&t);
        let standby = ["master-db", "slave1-db", "slave2-db"]
            .into_iter()
            .find(|n| *n != primary)
            .unwrap();
        let out = run(&["basebackup", "--node", standby, "-t", &t]);
        assert!(out.contains("data folder replaced"), "{out}");
        let out = run(&["switchover", "--to", standby, "-t", &t]);
        assert!(out.contains(standby), "{out}");
        assert_eq!(primary_of(&t), standby);
        let (code, rows) = status(&t);
        assert_eq!(code, 0, "{rows:?}");
    }
}

#[test]
fn absent_images_and_mixed_majors_are_refused_before_anything_changes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("absent_images_and_mixed_majors_are_refused_before_anything_changes") {
        return;
    }
    // A major this machine cannot build, with no image of it in the engine.
    let sixteen = on_major("pg16", 55620, true, "16");
    let r = xtask(&["setup-sync", "-t", &sixteen.to_string_lossy()]);
    println!("{}", r.out);
    assert_ne!(r.code, 0);
    assert!(
        r.out.contains("docker pull postgres:16")
            && r.out.contains("15 (bookworm), 17 (trixie), 18 (forky)")
            && r.out.contains("Nothing was changed"),
        "{}",
        r.out
    );
    nothing_created(&cl("pg16"));
    // An image named without its major: it is read from the image, so an
    // absent one is refused, never replaced by another major's.
    let alpine = topology("semi-sync.toml", &cl("alpine"), 55620, true);
    let text = std::fs::read_to_string(&alpine).unwrap();
    std::fs::write(
        &alpine,
        text.replace("postgres = 17\n", "image = \"postgres:16-alpine\"\n"),
    )
    .unwrap();
    let r = xtask(&["setup-sync", "-t", &alpine.to_string_lossy()]);
    assert_ne!(r.code, 0);
    assert!(
        r.out.contains("docker pull postgres:16-alpine"),
        "{}",
        r.out
    );
    nothing_created(&cl("alpine"));

    // Data of 15, an image of 17: refused, the data untouched.
    ensure_major("15");
    ensure_major("17");
    let topo = on_major("mixed", 55630, false, "15");
    let t = topo.to_string_lossy().into_owned();
    let _down = Teardown {
        topology: topo.clone(),
        name: cl("mixed"),
        user: None,
    };
    ok(&["setup-sync", "-t", &t]);
    let as_17 = || {
        let text = std::fs::read_to_string(&topo).unwrap();
        std::fs::write(&topo, text.replace("postgres = 15\n", "postgres = 17\n")).unwrap();
    };
    let as_15 = || {
        let text = std::fs::read_to_string(&topo).unwrap();
        std::fs::write(&topo, text.replace("postgres = 17\n", "postgres = 15\n")).unwrap();
    };
    // While it runs: basebackup, switchover and rejoin refuse.
    as_17();
    for args in [
        vec!["basebackup", "--node", "slave1-db"],
        vec!["switchover", "--to", "slave1-db"],
        vec!["rejoin", "--node", "slave2-db"],
        vec!["setup-sync"],
    ] {
        let mut full = args.clone();
        full.extend(["-t", &t]);
        let r = xtask(&full);
        assert_ne!(r.code, 0, "{}", r.out);
        assert!(
            r.out.contains("holds a PostgreSQL 15 data folder")
                && r.out.contains("Nothing was changed")
                && r.out.contains("down --purge"),
            "{}:\n{}",
            args.join(" "),
            r.out
        );
    }
    as_15();
    let (code, rows) = status(&t);
    assert_eq!(code, 0, "the refusals changed something: {rows:?}");
    assert_eq!(primary_of(&t), "master-db");
    for r in &rows {
        assert!(
            r["version"].as_str().unwrap_or_default().starts_with("15."),
            "{r}"
        );
    }
    // Stopped, then set up again as 17: refused, nothing started.
    ok(&["down", "-t", &t]);
    as_17();
    let r = xtask(&["setup-sync", "-t", &t]);
    assert_ne!(r.code, 0);
    assert!(
        r.out.contains("holds a PostgreSQL 15 data folder"),
        "{}",
        r.out
    );
    let running = duct::cmd!(
        "docker",
        "ps",
        "-q",
        "--filter",
        format!("label=io.pgrepl.cluster={}", cl("mixed"))
    )
    .read()
    .unwrap();
    assert!(running.trim().is_empty(), "a container was started");
    let pg_version = root()
        .join("state")
        .join(cl("mixed"))
        .join("postgres_data_master/PG_VERSION");
    assert_eq!(std::fs::read_to_string(pg_version).unwrap().trim(), "15");
    as_15();
}

#[test]
fn the_real_server_refuses_what_the_rules_let_through() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("the_real_server_refuses_what_the_rules_let_through") {
        return;
    }
    ensure_image();
    ensure_major("15");
    // No rule of the tool knows which libraries an image holds.
    let topo = topology("semi-sync.toml", &cl("refused"), 55640, true);
    let text = std::fs::read_to_string(&topo).unwrap();
    std::fs::write(
        &topo,
        text.replace(
            "wal_keep_size = \"256MB\"",
            "wal_keep_size = \"256MB\"\nshared_preload_libraries = \"no_such_extension\"",
        ),
    )
    .unwrap();
    let t = topo.to_string_lossy().into_owned();
    let r = xtask(&["validate", "-t", &t]);
    assert_eq!(r.code, 0, "the tool's own rules accept it:\n{}", r.out);
    let r = xtask(&["setup-sync", "-t", &t]);
    assert_ne!(r.code, 0);
    assert!(
        r.out
            .contains("FATAL:  could not access file \"no_such_extension\"")
            && r.out.contains("master-db, slave1-db")
            && r.out.contains("nothing was changed"),
        "{}",
        r.out
    );
    nothing_created(&cl("refused"));
    let r = xtask(&["validate", "--server", "-t", &t]);
    assert_ne!(r.code, 0);
    assert!(
        r.out
            .contains("could not access file \"no_such_extension\""),
        "{}",
        r.out
    );

    // Hand-written pg_hba.conf lines PostgreSQL itself refuses.
    let dir = scratch().join("server-check");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("postgresql.conf");
    std::fs::write(&conf, "wal_level = replica\n").unwrap();
    for (major, line, said) in [
        (
            "15",
            "include extra.conf",
            "invalid connection type \"include\"",
        ),
        (
            "17",
            "host replication replicator 10.0.0.0/8 cert",
            "cert authentication is only supported on hostssl connections",
        ),
        (
            "17",
            "host all all 10.0.0.0/8 scram-sha-256 clientcert=verify-full",
            "clientcert can only be configured for \"hostssl\" rows",
        ),
    ] {
        let hba = dir.join("pg_hba.conf");
        std::fs::write(&hba, format!("local all all trust\n{line}\n")).unwrap();
        let r = xtask(&[
            "validate",
            "--server",
            "--postgres",
            major,
            "--conf",
            &conf.to_string_lossy(),
            "--conf",
            &hba.to_string_lossy(),
        ]);
        assert_ne!(r.code, 0, "{}", r.out);
        let server_part = r
            .out
            .split("error[server]")
            .nth(1)
            .unwrap_or_else(|| panic!("the server was not asked:\n{}", r.out));
        assert!(
            server_part.contains(said) && server_part.contains(&*hba.to_string_lossy()),
            "PostgreSQL {major}, `{line}`:\n{}",
            r.out
        );
    }
}
