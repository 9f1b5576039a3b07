//! End-to-end tests on the real Docker engine: the project's image, real
//! clusters, real crashes. Each test has its own cluster name and ports, and
//! tears its cluster down (`down --purge`) even when it fails.
//!
//! Under `CI=true` a missing Docker engine fails these tests; elsewhere they
//! print that they were skipped and why.
// Tests and benches print to the test harness, whose streams stay open.
#![allow(clippy::disallowed_macros)]

mod common;
use common::*;

#[test]
fn sync_and_async_clusters_basebackup_and_idempotence() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("sync_and_async_clusters_basebackup_and_idempotence") {
        return;
    }
    ensure_image();
    let sync = topology("semi-sync.toml", &cl("sync"), 55432, false);
    let st = sync.to_string_lossy().into_owned();
    let _down_sync = Teardown {
        topology: sync.clone(),
        name: cl("sync"),
        user: None,
    };

    let out = ok(&["setup-sync", "-t", &st]);
    assert!(out.contains("is up and verified"), "{out}");
    let (code, rows) = status(&st);
    assert_eq!(code, 0);
    assert_eq!(node(&rows, "master-db")["role"], "primary");
    assert_eq!(node(&rows, "slave1-db")["sync_state"], "sync");
    assert_eq!(node(&rows, "slave2-db")["sync_state"], "potential");
    for r in &rows {
        assert_eq!(r["problems"].as_array().unwrap().len(), 0, "{r}");
        // The presets' major, read from the server itself.
        assert!(
            r["version"].as_str().unwrap_or_default().starts_with("17."),
            "{r}"
        );
    }
    // The replication views agree, read directly.
    let repl = sql(
        &cl("sync"),
        "master-db",
        "legendarydb",
        "dbuser",
        "SELECT application_name, state, sync_state FROM pg_stat_replication ORDER BY 1",
    );
    assert_eq!(
        repl,
        "slave1-db|streaming|sync\nslave2-db|streaming|potential"
    );

    sql(&cl("sync"), "master-db", "legendarydb", "dbuser", "CREATE TABLE test_table (id int, name text); INSERT INTO test_table SELECT generate_series(1, 1000), 'test';");
    let out = ok(&["basebackup", "--node", "slave2-db", "-t", &st]);
    assert!(out.contains("slave2-db: data folder replaced"), "{out}");
    assert!(out.contains("caught up"), "{out}");
    assert_eq!(
        sql(
            &cl("sync"),
            "slave2-db",
            "legendarydb",
            "dbuser",
            "SELECT count(*) FROM test_table"
        ),
        "1000"
    );
    let (code, rows) = status(&st);
    assert_eq!(code, 0);
    assert_eq!(node(&rows, "slave2-db")["sync_state"], "potential");

    // Refuses to re-clone the primary.
    let r = xtask(&["basebackup", "--node", "master-db", "-t", &st]);
    assert_ne!(r.code, 0);
    assert!(r.out.contains("is the primary"), "{}", r.out);

    // The async preset on its own project.
    let asy = topology("async-slots.toml", &cl("async"), 55452, false);
    let at = asy.to_string_lossy().into_owned();
    let _down_async = Teardown {
        topology: asy.clone(),
        name: cl("async"),
        user: None,
    };
    ok(&["setup-async", "-t", &at]);
    let (code, rows) = status(&at);
    assert_eq!(code, 0);
    let standby = node(&rows, "db-counter-slave");
    assert_eq!(standby["sync_state"], "async");
    assert_eq!(standby["slot"], "db_counter_slave");
    assert_eq!(standby["slot_active"], true);

    // Re-running on a healthy cluster clones nothing and verifies again.
    let out = ok(&["setup-sync", "-t", &st]);
    assert!(!out.contains("pg_basebackup from"), "{out}");
    assert!(
        out.contains("slave1-db: already a running standby")
            && out.contains("slave2-db: already a running standby"),
        "{out}"
    );
    assert!(out.contains("verified:"), "{out}");
}

#[test]
fn a_killed_basebackup_is_finished_by_a_rerun() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("a_killed_basebackup_is_finished_by_a_rerun") {
        return;
    }
    ensure_image();
    let topo = topology("semi-sync.toml", &cl("kill"), 55462, true);
    let t = topo.to_string_lossy().into_owned();
    let _down = Teardown {
        topology: topo.clone(),
        name: cl("kill"),
        user: None,
    };
    ok(&["setup-sync", "-t", &t]);
    // Enough data that the copy takes a while.
    sql(&cl("kill"), "master-db", "legendarydb", "dbuser",
        "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 200000) g;");
    let want = sql(
        &cl("kill"),
        "master-db",
        "legendarydb",
        "dbuser",
        "SELECT count(*) FROM big",
    );

    let state = root().join("state").join(cl("kill"));
    let data = state.join("postgres_data_slave1");
    let staged = state.join("postgres_data_slave1.pgrepl-new");
    let set_aside = state.join("postgres_data_slave1.pgrepl-old");
    // The verified backup's label is the moment the data move may begin
    // (a rename into the staging place when it is on the same disk): the
    // run is killed right then.
    let label = state.join("postgres_backup_slave1").join("base.label");
    let child = duct::cmd(bin(), ["basebackup", "--node", "slave1-db", "-t", &t])
        .env_remove("PGREPL_IMAGE")
        .stdout_null()
        .stderr_null()
        .unchecked()
        .start()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !label.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "basebackup ended before the data move began"
        );
        assert!(Instant::now() < deadline, "the data move never began");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    println!(
        "killed basebackup as the data move began (pid {:?}; staged copy present: {})",
        child.pids(),
        staged.exists()
    );
    // Killed there: a complete copy is still on disk, in place, set aside
    // or staged.
    assert!(
        [&data, &set_aside, &staged]
            .iter()
            .any(|d| d.join("PG_VERSION").exists()),
        "no complete data folder survived the kill"
    );

    let out = ok(&["basebackup", "--node", "slave1-db", "-t", &t]);
    assert!(
        out.contains("resuming"),
        "the re-run should reuse the verified backup:\n{out}"
    );
    assert!(!staged.exists() && !set_aside.exists());
    let (code, rows) = status(&t);
    assert_eq!(code, 0, "{rows:?}");
    assert_eq!(node(&rows, "slave1-db")["sync_state"], "sync");
    wait_for(
        "slave1-db to hold every row",
        Duration::from_secs(60),
        || {
            sql(
                &cl("kill"),
                "slave1-db",
                "legendarydb",
                "dbuser",
                "SELECT count(*) FROM big",
            ) == want
        },
    );
}

#[test]
fn runs_as_a_non_root_user_in_the_docker_group() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("runs_as_a_non_root_user_in_the_docker_group") {
        return;
    }
    let user = "pgrepl-e2e";
    let exists = duct::cmd!("id", "-u", user)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap()
        .status
        .success();
    if !exists {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but the test user {user} does not exist (.ci/deps creates it)");
        }
        eprintln!(
            "SKIPPED runs_as_a_non_root_user_in_the_docker_group: no user {user} (see .ci/deps)"
        );
        return;
    }
    ensure_image();
    let topo = topology("semi-sync.toml", &cl("nonroot"), 55472, true);
    let t = topo.to_string_lossy().into_owned();
    let uid = duct::cmd!("id", "-u", user).read().unwrap();
    // The user owns the cluster's state folder and may read the topology;
    // the Compose file is rendered by the repository's owner.
    ok(&["render", "-t", &t]);
    let state = root().join("state").join(cl("nonroot"));
    std::fs::create_dir_all(&state).unwrap();
    duct::cmd!("chown", format!("{user}:{user}"), &state)
        .run()
        .unwrap();
    duct::cmd!("chmod", "a+rx", topo.parent().unwrap())
        .run()
        .unwrap();
    duct::cmd!("chmod", "a+r", &topo).run().unwrap();
    let _down = Teardown {
        topology: topo.clone(),
        name: cl("nonroot"),
        user: Some(user.into()),
    };

    let r = xtask_as(Some(user), &["setup-sync", "-t", &t]);
    assert_eq!(r.code, 0, "{}", r.out);
    let owner = duct::cmd!(
        "stat",
        "-c",
        "%u",
        state.join("postgres_data_slave1/PG_VERSION")
    )
    .read()
    .unwrap();
    assert_eq!(
        owner.trim(),
        uid.trim(),
        "data files should belong to the invoking user"
    );
    // The data move as that user, on files the containers wrote.
    let r = xtask_as(Some(user), &["basebackup", "--node", "slave1-db", "-t", &t]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("data folder replaced"), "{}", r.out);
    let r = xtask_as(Some(user), &["status", "-t", &t]);
    assert_eq!(r.code, 0, "{}", r.out);

    // The image, built by this user without root (mmdebstrap in unshare
    // mode), under a tag of this run's own, then run.
    let tag = format!("pgrepl/e2e-rootless-{}:17", run_id());
    let _image = RemoveImage(tag.clone());
    let r = xtask_as(Some(user), &["image", "--tag", &tag]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("mmdebstrap"), "{}", r.out);
    let id = duct::cmd!(
        "docker",
        "run",
        "-d",
        "--label",
        format!("io.pgrepl.cluster={}", cl("nonroot")),
        "-e",
        "POSTGRES_PASSWORD=e2e",
        &tag
    )
    .read()
    .unwrap();
    let _container = RemoveContainer(id.trim().to_string());
    wait_for(
        "the rootless image's server to accept connections",
        Duration::from_secs(60),
        || {
            duct::cmd!(
                "docker",
                "exec",
                id.trim(),
                "pg_isready",
                "-q",
                "-h",
                "127.0.0.1"
            )
            .stderr_null()
            .unchecked()
            .run()
            .is_ok_and(|o| o.status.success())
        },
    );
    let version = duct::cmd!(
        "docker",
        "exec",
        id.trim(),
        "psql",
        "-U",
        "postgres",
        "-Atc",
        "SHOW server_version"
    )
    .read()
    .unwrap();
    assert!(version.starts_with("17."), "{version}");
}

#[test]
fn every_fault_of_the_drill_loses_no_acknowledged_commit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("every_fault_of_the_drill_loses_no_acknowledged_commit") {
        return;
    }
    ensure_image();
    let topo = topology("semi-sync.toml", &cl("drill"), 55482, false);
    let t = topo.to_string_lossy().into_owned();
    let _down = Teardown {
        topology: topo.clone(),
        name: cl("drill"),
        user: None,
    };
    ok(&["setup-sync", "-t", &t]);

    // One round of each fault, each failing whichever node is primary then.
    let faults = [
        "crash",
        "stop",
        "sync-standby-first",
        "partition",
        "restart-old-primary",
        "cancel-wait",
        "freeze",
        "sync-standby-partition",
    ];
    let history = scratch().join("drill-history.jsonl");
    let h = history.to_string_lossy().into_owned();
    let r = drill(
        &t,
        &[
            "--fault",
            &faults.join(","),
            "--rounds",
            &faults.len().to_string(),
            "--history",
            &h,
        ],
    );
    assert_drill_ok(&r, faults.len());
    // The history, re-checked without the tool's ledger, agrees with it.
    let (acknowledged, reads) = recheck_history(&history);
    assert_eq!(reads, faults.len());
    assert_eq!(
        acknowledged as u64,
        r["acknowledged_total"].as_u64().unwrap()
    );
    println!(
        "history: {acknowledged} acknowledged writes in {reads} rounds, every one in its round's read"
    );
    let rounds = r["rounds"].as_array().unwrap();
    for (round, fault) in rounds.iter().zip(faults) {
        assert_eq!(round["fault"], fault, "{round}");
        assert_eq!(
            round["writable_nodes"].as_array().unwrap().len(),
            1,
            "{fault}: {round}"
        );
    }
    let failed: Vec<&Value> = rounds.iter().map(|x| &x["failed_primary"]).collect();
    assert_ne!(
        failed[0], failed[1],
        "round 2 fails the node promoted in round 1"
    );
    // The synchronous standby went first: the potential one took over.
    let ssf = &rounds[2];
    assert!(ssf["also_failed"].is_string(), "{ssf}");
    assert_ne!(ssf["promoted"], ssf["also_failed"]);
    // Restarted by a "supervisor" right after the promotion: read-only.
    assert_eq!(rounds[4]["restarted_read_only"], true, "{}", rounds[4]);
    // Frozen, the primary was fenced (killed) and another node promoted,
    // and the fenced node came back as a standby. That the failover did not
    // hang on it is the drill's own round deadline; no time is asserted
    // here (the soak in README gives the figures: under load, killing a
    // paused container sometimes takes about 5 s).
    let fr = &rounds[6];
    assert_ne!(fr["promoted"], fr["failed_primary"], "{fr}");
    let failed = fr["failed_primary"].as_str().unwrap();
    assert!(
        fr["rejoined_by"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("{failed}: "))),
        "{fr}"
    );
    // Cancelled waits were committed locally but never counted as acknowledged.
    let cw = &rounds[5];
    assert!(cw["cancelled_wait"].as_u64().unwrap() >= 5, "{cw}");
    assert!(
        cw["cancelled_wait_survived"].as_u64().unwrap() <= cw["cancelled_wait"].as_u64().unwrap()
    );

    // Exactly one node accepts writes; the others refuse them.
    let (code, rows) = status(&t);
    assert_eq!(code, 0);
    for row in &rows {
        let n = row["node"].as_str().unwrap();
        let ro = sql(
            &cl("drill"),
            n,
            "legendarydb",
            "dbuser",
            "SELECT pg_is_in_recovery()",
        );
        assert_eq!(ro == "f", row["role"] == "primary", "{n}: {row}");
    }
}

/// failover, switchover and rejoin as a user runs them in an incident, on a
/// topology of the preset and on one with `ANY 2` over three standbys.
#[test]
fn incident_commands_on_first_and_any_quorums() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("incident_commands_on_first_and_any_quorums") {
        return;
    }
    ensure_image();
    for (short, quorum) in [("inc", false), ("any", true)] {
        let name = cl(short);
        let topo = topology(
            "semi-sync.toml",
            &name,
            if quorum { 55522 } else { 55512 },
            false,
        );
        if quorum {
            let text = std::fs::read_to_string(&topo).unwrap().replace(
                "'FIRST 1 (\"slave1-db\", \"slave2-db\", \"master-db\")'",
                "'ANY 2 (\"slave1-db\", \"slave2-db\", \"slave3-db\", \"master-db\")'",
            ) + &format!(
                "\n[[node]]\nname = \"slave3-db\"\nrole = \"standby\"\nport = {}\ndata = {{ bind = \"postgres_data_slave3\" }}\nbackup = {{ bind = \"postgres_backup_slave3\" }}\n",
                port(55525)
            );
            std::fs::write(&topo, text).unwrap();
        }
        let t = topo.to_string_lossy().into_owned();
        let _down = Teardown {
            topology: topo.clone(),
            name: name.clone(),
            user: None,
        };
        ok(&["setup-sync", "-t", &t]);
        sql(&name, "master-db", "legendarydb", "dbuser",
            "CREATE TABLE ledger (id int PRIMARY KEY); INSERT INTO ledger SELECT generate_series(1, 1000);");

        // Refusals change nothing.
        refused(
            &["switchover", "-t", &t, "--to", "master-db"],
            "already the primary",
        );
        refused(
            &["switchover", "-t", &t, "--to", "ghost-db"],
            "no node `ghost-db`",
        );
        refused(
            &["rejoin", "-t", &t, "--node", "master-db"],
            "is the primary",
        );

        // A planned switchover loses nothing and says how long writes stopped.
        let out = ok(&["switchover", "-t", &t, "--to", "slave1-db"]);
        assert!(
            out.contains("Write downtime:") && out.contains("nothing can be lost"),
            "{out}"
        );
        assert_eq!(primary_of(&t), "slave1-db");
        assert_eq!(
            sql(
                &name,
                "slave1-db",
                "legendarydb",
                "dbuser",
                "SELECT count(*) FROM ledger"
            ),
            "1000"
        );
        let (code, _) = status(&t);
        assert_eq!(code, 0, "healthy after the switchover");

        // The primary dies: failover promotes a standby that holds everything.
        docker_kill(&name, "slave1-db");
        refused(
            &["failover", "-t", &t, "--to", "slave1-db"],
            "it is the primary being failed over from",
        );
        let out = ok(&["failover", "-t", &t]);
        assert!(out.contains("holds every acknowledged commit"), "{out}");
        let new = primary_of(&t);
        assert_ne!(new, "slave1-db");
        assert_eq!(
            sql(
                &name,
                &new,
                "legendarydb",
                "dbuser",
                "SELECT count(*) FROM ledger"
            ),
            "1000"
        );
        sql(
            &name,
            &new,
            "legendarydb",
            "dbuser",
            "INSERT INTO ledger VALUES (1001)",
        );
        // The fenced old primary comes back as a standby.
        let out = ok(&["rejoin", "-t", &t, "--node", "slave1-db"]);
        assert!(out.contains("follows"), "{out}");
        let (code, rows) = status(&t);
        assert_eq!(code, 0, "{rows:?}");
        assert_eq!(rows.iter().filter(|r| r["role"] == "primary").count(), 1);

        // Too many standbys gone with the primary: refused, nothing changed,
        // unless the user accepts the loss.
        let standbys: Vec<String> = rows
            .iter()
            .filter(|r| r["role"] == "standby")
            .map(|r| r["node"].as_str().unwrap().to_string())
            .collect();
        // FIRST 1: the first listed standby is the synchronous one; ANY 2 of
        // three: two of them gone leaves one, which may lack a commit.
        let gone: Vec<&String> = if quorum {
            standbys.iter().take(2).collect()
        } else {
            let order = ["slave1-db", "slave2-db", "master-db"];
            vec![standbys
                .iter()
                .min_by_key(|s| order.iter().position(|o| o == s))
                .unwrap()]
        };
        docker_kill(&name, &new);
        for g in &gone {
            docker_kill(&name, g);
        }
        refused(&["failover", "-t", &t], "refusing to promote");
        assert_eq!(
            status(&t)
                .1
                .iter()
                .filter(|r| r["role"] == "primary")
                .count(),
            0,
            "the refusal promoted nothing"
        );
        let last = standbys.iter().find(|s| !gone.contains(s)).unwrap();
        let out = ok(&["failover", "-t", &t, "--to", last, "--allow-data-loss"]);
        assert!(out.contains("promoted with --allow-data-loss"), "{out}");
        for n in gone.iter().map(|s| s.as_str()).chain([new.as_str()]) {
            ok(&["rejoin", "-t", &t, "--node", n]);
        }
        let (code, rows) = status(&t);
        assert_eq!(code, 0, "{rows:?}");
        assert_eq!(primary_of(&t), *last);
    }
}

#[test]
fn preflight_refuses_before_changing_anything() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("preflight_refuses_before_changing_anything") {
        return;
    }
    ensure_image();
    let topo = topology("semi-sync.toml", &cl("preflight"), 55492, true);
    let t = topo.to_string_lossy().into_owned();
    let nothing_created = || {
        let ids = duct::cmd!(
            "docker",
            "ps",
            "-a",
            "-q",
            "--filter",
            format!("label=io.pgrepl.cluster={}", cl("preflight"))
        )
        .read()
        .unwrap();
        assert!(ids.trim().is_empty(), "containers were created");
        assert!(
            !root().join("state").join(cl("preflight")).exists(),
            "state was written"
        );
    };

    // A published port already taken.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port(55493))).unwrap();
    let r = xtask(&["setup-sync", "-t", &t]);
    assert_ne!(r.code, 0);
    assert!(
        r.out.contains(&format!("port {}", port(55493))) && r.out.contains("already in use"),
        "{}",
        r.out
    );
    nothing_created();
    drop(listener);

    // An image that is neither present nor pullable.
    let out = duct::cmd(bin(), ["setup-sync", "-t", &t])
        .env("PGREPL_IMAGE", "pgrepl/absent:0")
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains("docker pull pgrepl/absent:0") && text.contains("Nothing was changed"),
        "{text}"
    );
    nothing_created();
}

#[test]
fn lifecycle_of_a_fresh_topology_cannot_wedge() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("lifecycle_of_a_fresh_topology_cannot_wedge") {
        return;
    }
    ensure_image();
    let name = cl("life");
    let topo = topology("semi-sync.toml", &name, 55502, true);
    let t = topo.to_string_lossy().into_owned();
    let _down = Teardown {
        topology: topo.clone(),
        name: name.clone(),
        user: None,
    };
    let before = untracked();
    let state = root().join("state").join(&name);
    // Never set up: down works from the labels alone and creates nothing.
    ok(&["down", "--purge", "-t", &t]);
    assert!(!state.exists(), "down created {}", state.display());
    // An empty secrets file left by an older tool, no data yet: completed.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("secrets.env"), "").unwrap();
    let out = ok(&["setup-sync", "-t", &t]);
    assert!(out.contains("verified"), "{out}");
    // A topology that is not a preset keeps its Compose file in its state folder.
    assert!(state.join("compose.yml").exists());
    assert!(!root().join("compose").join(format!("{name}.yml")).exists());
    let secrets = std::fs::read_to_string(state.join("secrets.env")).unwrap();
    assert!(
        secrets.contains("POSTGRES_PASSWORD=") && secrets.contains("PGREPL_REPLICATION_PASSWORD=")
    );
    ok(&["down", "--purge", "-t", &t]);
    ok(&["down", "--purge", "-t", &t]);
    assert!(!state.exists());
    let out = ok(&["setup-sync", "-t", &t]);
    assert!(out.contains("verified"), "{out}");
    // Data exists now: a partial secrets file is refused with what to do.
    let full = std::fs::read_to_string(state.join("secrets.env")).unwrap();
    let partial: String = full
        .lines()
        .filter(|l| !l.starts_with("PGREPL_REPLICATION_PASSWORD="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(state.join("secrets.env"), partial).unwrap();
    let r = xtask(&["setup-sync", "-t", &t]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains("PGREPL_REPLICATION_PASSWORD") && r.out.contains("down --purge"),
        "{}",
        r.out
    );
    std::fs::write(state.join("secrets.env"), full).unwrap();
    ok(&["down", "--purge", "-t", &t]);
    assert!(!state.exists());
    for kind in ["ps -a", "network ls", "volume ls"] {
        let mut args: Vec<&str> = kind.split(' ').collect();
        let filter = format!("label=io.pgrepl.cluster={name}");
        args.extend(["-q", "--filter", &filter]);
        let left = duct::cmd("docker", &args).read().unwrap();
        assert!(
            left.trim().is_empty(),
            "docker {kind} still lists {name}: {left}"
        );
    }
    assert_eq!(untracked(), before, "the lifecycle left untracked files");
}

#[test]
fn settings_catalogues_match_their_images() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("settings_catalogues_match_their_images") {
        return;
    }
    for major in ["15", "17", "18"] {
        ensure_major(major);
        let out = ok(&["catalogue", "--postgres", major, "--check"]);
        assert!(
            out.contains(&format!("of PostgreSQL {major}.")) && out.contains("up to date"),
            "{out}"
        );
    }
}

/// The same topology on Patroni: `setup-sync --engine patroni` brings up
/// three etcd members and a leader with two streaming replicas (one
/// synchronous); `status --engine patroni` shows them; one drill round
/// crashes the leader and Patroni, not the tool, promotes; `down --purge`
/// removes it all by label.
#[test]
fn patroni_engine_setup_status_drill_and_down() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("patroni_engine_setup_status_drill_and_down") {
        return;
    }
    ok(&["image", "--patroni"]);
    let name = cl("patroni");
    let topo = topology("semi-sync.toml", &name, 55532, false);
    let t = topo.to_string_lossy().into_owned();
    let _down = Teardown {
        topology: topo.clone(),
        name: name.clone(),
        user: None,
    };
    // The Patroni image holds PostgreSQL 18: a topology of 17 is refused,
    // never run on 18.
    let r = xtask(&["setup-sync", "--engine", "patroni", "-t", &t]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("set `postgres = 18`"), "{}", r.out);
    let text = std::fs::read_to_string(&topo).unwrap();
    std::fs::write(&topo, text.replace("postgres = 17\n", "postgres = 18\n")).unwrap();
    let out = ok(&["setup-sync", "--engine", "patroni", "-t", &t]);
    assert!(out.contains("Patroni cluster up"), "{out}");

    let r = xtask(&["status", "--engine", "patroni", "--json", "-t", &t]);
    assert_eq!(r.code, 0, "{}", r.out);
    let members: Value = serde_json::from_str(&r.out).unwrap();
    let roles: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "leader").count(),
        1,
        "{roles:?}"
    );
    assert_eq!(
        roles.iter().filter(|r| **r == "sync_standby").count(),
        1,
        "{roles:?}"
    );
    assert_eq!(roles.len(), 3, "{roles:?}");
    // Every container, the etcd members included, carries the labels.
    let ids = duct::cmd!(
        "docker",
        "ps",
        "-q",
        "--filter",
        format!("label=io.pgrepl.cluster={name}"),
        "--filter",
        "label=io.pgrepl.engine=patroni"
    )
    .read()
    .unwrap();
    assert_eq!(ids.lines().count(), 6, "{ids}");

    let report = drill(
        &t,
        &["--engine", "patroni", "--patroni-timings", "tightest"],
    );
    let round = &report["rounds"][0];
    assert_eq!(round["engine"], "patroni", "{report}");
    assert_eq!(round["lost"], 0, "{report}");
    assert!(round["acknowledged"].as_u64().unwrap() >= 20, "{report}");
    assert_ne!(round["promoted"], round["failed_primary"], "{report}");
    assert_eq!(
        round["writable_nodes"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    // Patroni detects the crash itself: its RTO holds the leader key's
    // expiry, seconds, where the tool's own failover takes well under one.
    assert!(round["rto_ms"].as_u64().unwrap() >= 1000, "{report}");
    let r = xtask(&["status", "--engine", "patroni", "-t", &t]);
    assert_eq!(r.code, 0, "{}", r.out);

    // ANY 1 of the two standbys: Patroni's quorum mode, both standbys
    // quorum members; a crash loses nothing.
    ok(&["down", "--purge", "-t", &t]);
    let text = std::fs::read_to_string(&topo).unwrap();
    std::fs::write(
        &topo,
        text.replace(
            r#"'FIRST 1 ("slave1-db", "slave2-db", "master-db")'"#,
            r#"'ANY 1 ("slave1-db", "slave2-db", "master-db")'"#,
        ),
    )
    .unwrap();
    let out = ok(&["setup-sync", "--engine", "patroni", "-t", &t]);
    assert!(out.contains("Patroni cluster up"), "{out}");
    wait_for("two quorum standbys", Duration::from_secs(60), || {
        let r = xtask(&["status", "--engine", "patroni", "--json", "-t", &t]);
        serde_json::from_str::<Value>(&r.out).is_ok_and(|m| {
            m.as_array()
                .is_some_and(|a| a.iter().filter(|x| x["role"] == "quorum_standby").count() == 2)
        })
    });
    let report = drill(
        &t,
        &["--engine", "patroni", "--patroni-timings", "tightest"],
    );
    assert_eq!(report["rounds"][0]["lost"], 0, "{report}");
    assert_eq!(
        report["rounds"][0]["writable_nodes"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{report}"
    );

    ok(&["down", "--purge", "-t", &t]);
    let left = duct::cmd!(
        "docker",
        "ps",
        "-aq",
        "--filter",
        format!("label=io.pgrepl.cluster={name}")
    )
    .read()
    .unwrap();
    assert!(left.trim().is_empty(), "containers left: {left}");
    assert!(!root().join("state").join(&name).exists());
}
