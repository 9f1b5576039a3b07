//! `failover-drill`: crashes the primary under a synchronous write load,
//! promotes the standby that has every acknowledged commit, re-points the
//! others, makes the cluster synchronous again, proves no acknowledged commit
//! was lost, and rejoins the old primary as a standby with `pg_rewind`.
//!
//! The runbook's drill stopped the primary cleanly (nothing could be lost),
//! promoted a standby without checking it was the furthest ahead, and named a
//! dead node in `synchronous_standby_names`, so every later commit hung.

use crate::basebackup;
use crate::cluster::{literal, poll, Cluster, Secrets, INTERRUPTED};
use crate::project;
use crate::runner::{Runner, Secret};
use crate::setup::one_off;
use crate::status::{self, NodeStatus};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use cluster_config::render::{self, PGDATA};
use cluster_config::syncrep;
use cluster_config::Topology;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Crash the primary under synchronous write load, promote, re-point, rejoin; prove zero loss.
#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// How the primary fails: `crash` (docker kill, no shutdown) or `stop` (clean shutdown)
    #[arg(long, value_enum, default_value_t = Kill::Crash)]
    pub kill: Kill,
    /// Rounds to run (at least 1); each crashes whichever node is primary then
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Leave the failed primary down instead of rejoining it as a standby
    #[arg(long)]
    pub no_rejoin: bool,
    /// Write the JSON report here
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Crash the synchronous standby first, so the potential one must take over
    #[arg(long)]
    pub sync_standby_first: bool,
    /// Seconds of writes before the fault
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
    /// How long to wait for each step, in seconds
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kill {
    Crash,
    Stop,
}

/// One round, as the JSON report holds it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RoundReport {
    pub round: u32,
    pub failed_primary: String,
    pub also_failed: Option<String>,
    pub promoted: String,
    pub promoted_because: String,
    pub new_timeline: u32,
    pub acknowledged: usize,
    pub lost: usize,
    pub lost_ids: Vec<i64>,
    pub duplicated_ids: Vec<i64>,
    pub uncertain: usize,
    pub uncertain_landed: usize,
    pub uncertain_not_landed: usize,
    pub crash_to_promoted_ms: u64,
    /// Crash to the first acknowledged write on the new primary.
    pub rto_ms: u64,
    pub repoint_ms: u64,
    /// How long a synchronous commit took once the new primary was
    /// synchronous again; `None` when no standby was connected yet.
    pub sync_commit_ms: Option<u64>,
    pub rejoin_ms: Option<u64>,
    pub rejoined_by: Option<String>,
    pub synchronous_standby_names: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub cluster: String,
    pub kill: Kill,
    pub rounds: Vec<RoundReport>,
    pub rto_median_ms: u64,
    pub rto_worst_ms: u64,
    pub lost_total: usize,
    pub writable_nodes: Vec<String>,
    pub healthy: bool,
    pub final_status: Vec<NodeStatus>,
}

/// What one write attempt ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// COMMIT returned success with no warning.
    Acknowledged,
    /// COMMIT errored, the connection broke, or the server warned that the
    /// wait for synchronous replication was cancelled.
    Uncertain,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    id: i64,
    outcome: Outcome,
    at: Instant,
    port: u16,
}

/// The writer: one real client connection at a time to the port it is told.
/// Table the drill writes to: `run` tells one invocation's rows from another's.
const DRILL_TABLE: &str = "pgrepl_drill_writes";

struct Writer {
    target: Arc<Mutex<Option<u16>>>,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
    handle: Option<JoinHandle<()>>,
}

fn connect(
    t: &Topology,
    port: u16,
    password: &Secret,
    warned: Arc<AtomicBool>,
) -> Result<postgres::Client> {
    let mut cfg = postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(t.database.owner.get_ref().as_str())
        .dbname(t.database.name.get_ref().as_str())
        .password(password.expose())
        .application_name("pgrepl-drill")
        .connect_timeout(Duration::from_secs(3))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .notice_callback(move |n| {
            if n.message().contains("synchronous replication") {
                warned.store(true, Ordering::SeqCst);
            }
        });
    let mut client = cfg
        .connect(postgres::NoTls)
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    client.batch_execute("SET synchronous_commit = on")?;
    Ok(client)
}

impl Writer {
    fn start(t: Topology, password: Secret, run: String, round: i32, port: u16) -> Writer {
        let target = Arc::new(Mutex::new(Some(port)));
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tg, st, ev) = (target.clone(), stop.clone(), events.clone());
        let handle = std::thread::spawn(move || {
            let mut next_id = i64::from(round) * 10_000_000;
            let mut conn: Option<(u16, postgres::Client)> = None;
            let warned = Arc::new(AtomicBool::new(false));
            while !st.load(Ordering::SeqCst) {
                let Some(port) = *tg.lock().unwrap() else {
                    conn = None;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if conn.as_ref().map(|c| c.0) != Some(port) {
                    match connect(&t, port, &password, warned.clone()) {
                        Ok(c) => conn = Some((port, c)),
                        Err(_) => {
                            conn = None;
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    }
                }
                let Some((_, client)) = conn.as_mut() else {
                    continue;
                };
                next_id += 1;
                warned.store(false, Ordering::SeqCst);
                let result = client.execute(
                    "INSERT INTO pgrepl_drill_writes (run, round, id, at) VALUES ($1, $2, $3, clock_timestamp())",
                    &[&run, &round, &next_id],
                );
                let outcome = match result {
                    Ok(1) if !warned.load(Ordering::SeqCst) => Outcome::Acknowledged,
                    _ => Outcome::Uncertain,
                };
                if result.is_err() {
                    conn = None;
                }
                ev.lock().unwrap().push(Event {
                    id: next_id,
                    outcome,
                    at: Instant::now(),
                    port,
                });
            }
        });
        Writer {
            target,
            stop,
            events,
            handle: Some(handle),
        }
    }

    fn point_at(&self, port: Option<u16>) {
        *self.target.lock().unwrap() = port;
    }

    fn acknowledged_on(&self, port: u16, after: Instant) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.outcome == Outcome::Acknowledged && e.port == port && e.at > after)
            .count()
    }

    fn finish(mut self) -> Vec<Event> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn port_of(c: &Cluster, node: &str) -> Result<u16> {
    Ok(*c.node(node)?.port.get_ref())
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn check_interrupt(c: &Cluster) -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        print_state(c);
        bail!("interrupted: the writer is stopped and the cluster is as shown above");
    }
    Ok(())
}

fn print_state(c: &Cluster) {
    match status::collect(c) {
        Ok(rows) => eprintln!("\n{}", status::table(&rows)),
        Err(e) => eprintln!("(could not read the cluster's state: {e:#})"),
    }
}

pub fn run(args: &DrillArgs, runner: &dyn Runner) -> Result<()> {
    if args.no_rejoin && args.rounds > 1 {
        bail!("--no-rejoin leaves a node down, so a second round would start from an unhealthy cluster: use one round");
    }
    let c = Cluster::open(&args.topology.resolve(), runner)?;
    let _ = ctrlc::set_handler(|| {
        eprintln!("\ninterrupt: stopping the writer after the current step");
        INTERRUPTED.store(true, Ordering::SeqCst);
    });
    let secrets = c.secrets()?;
    let run_id = crate::cluster::generate_password()?[..12].to_string();
    say!("drill run {run_id} on {}", c.name());
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        say!("\n== round {round} of {}", args.rounds);
        let r = match drill_round(&c, &secrets, args, &run_id, round) {
            Ok(r) => r,
            Err(e) => {
                // The writer stopped when its round ended; show what is left.
                if INTERRUPTED.load(Ordering::SeqCst) {
                    print_state(&c);
                }
                return Err(e.context(format!("round {round}")));
            }
        };
        print_round(&r);
        let failed = !r.lost_ids.is_empty() || !r.duplicated_ids.is_empty();
        rounds.push(r);
        if failed {
            break;
        }
    }
    let final_status = status::collect(&c)?;
    let mut rtos: Vec<u64> = rounds.iter().map(|r| r.rto_ms).collect();
    rtos.sort_unstable();
    let report = DrillReport {
        cluster: c.name().to_string(),
        kill: args.kill,
        rto_median_ms: median(&rtos),
        rto_worst_ms: rtos.last().copied().unwrap_or(0),
        lost_total: rounds.iter().map(|r| r.lost).sum(),
        writable_nodes: final_status
            .iter()
            .filter(|s| s.role == "primary")
            .map(|s| s.node.clone())
            .collect(),
        healthy: status::healthy(&final_status),
        rounds,
        final_status,
    };
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        say!("report written to {}", path.display());
    }
    say!("\n{}", status::table(&report.final_status));
    say!(
        "{} round(s): lost acknowledged commits {}, RTO median {} ms, worst {} ms (crash to first acknowledged write on the new primary)",
        report.rounds.len(),
        report.lost_total,
        report.rto_median_ms,
        report.rto_worst_ms
    );
    if let Some(bad) = report
        .rounds
        .iter()
        .find(|r| !r.lost_ids.is_empty() || !r.duplicated_ids.is_empty())
    {
        bail!(
            "round {}: LOST {} acknowledged commit(s): {}; duplicated: {} (every id is in the JSON report)",
            bad.round,
            bad.lost,
            first_ids(&bad.lost_ids),
            first_ids(&bad.duplicated_ids)
        );
    }
    if !args.no_rejoin && !report.healthy {
        bail!("the cluster is not healthy after the drill (see the table above)");
    }
    Ok(())
}

fn first_ids(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(|i| i.to_string()).collect();
    match ids.len() {
        0 => "none".into(),
        n if n > 20 => format!("{} and {} more", shown.join(", "), n - 20),
        _ => shown.join(", "),
    }
}

fn median(sorted: &[u64]) -> u64 {
    match sorted.len() {
        0 => 0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

fn print_round(r: &RoundReport) {
    say!(
        "round {}: {} failed{}, {} promoted (timeline {}): {}.\n  acknowledged {}, lost {}, uncertain {} ({} landed, {} not); \
         crash->promoted {} ms, RTO {} ms, re-point {} ms, {}{}",
        r.round,
        r.failed_primary,
        r.also_failed.as_ref().map(|s| format!(" (after {s})")).unwrap_or_default(),
        r.promoted,
        r.new_timeline,
        r.promoted_because,
        r.acknowledged,
        r.lost,
        r.uncertain,
        r.uncertain_landed,
        r.uncertain_not_landed,
        r.crash_to_promoted_ms,
        r.rto_ms,
        r.repoint_ms,
        match r.sync_commit_ms {
            Some(ms) => format!("synchronous commit {ms} ms"),
            None => "not synchronous until a standby rejoined".to_string(),
        },
        r.rejoin_ms.map(|m| format!(", rejoin {m} ms ({})", r.rejoined_by.clone().unwrap_or_default())).unwrap_or_default()
    );
}

/// Stops a node: `docker kill` (SIGKILL, no shutdown) or a clean stop.
fn fail_node(c: &Cluster, node: &str, kill: Kill) -> Result<()> {
    match kill {
        Kill::Crash => {
            let id = c
                .container(node)?
                .with_context(|| format!("{node} has no container"))?;
            c.runner
                .run(&c.docker.cmd().args(["kill", "--signal", "KILL", &id]))?;
        }
        Kill::Stop => {
            c.runner.run(&c.compose().args(["stop", node]))?;
        }
    }
    Ok(())
}

fn drill_round(
    c: &Cluster,
    secrets: &Secrets,
    args: &DrillArgs,
    run_id: &str,
    round: u32,
) -> Result<RoundReport> {
    let t = c.topology();
    let timeout = Duration::from_secs(args.timeout);
    let mut report = RoundReport {
        round,
        ..Default::default()
    };

    // 1. Preflight.
    let rows = status::collect(c)?;
    if !status::healthy(&rows) {
        bail!(
            "the cluster is not healthy; the drill needs a healthy cluster to prove anything:\n{}",
            status::table(&rows)
        );
    }
    let old = status::find_primary(c)?.context("no writable primary")?;
    let sync_before: Vec<String> = rows
        .iter()
        .filter(|r| r.sync_state.as_deref() == Some("sync"))
        .map(|r| r.node.clone())
        .collect();
    report.failed_primary = old.clone();
    c.sql_mut(
        &old,
        &format!(
            "SET synchronous_commit = on; CREATE TABLE IF NOT EXISTS {DRILL_TABLE} (run text NOT NULL, round int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL);"
        ),
    )?;

    // 2. Writer, warm-up.
    let old_port = port_of(c, &old)?;
    let writer = Writer::start(
        t.clone(),
        secrets.owner.clone(),
        run_id.to_string(),
        round as i32,
        old_port,
    );
    let start = Instant::now();
    poll("the writer's first acknowledged commits", timeout, || {
        Ok((writer.acknowledged_on(old_port, start) >= 20
            && start.elapsed().as_secs_f64() >= args.warmup)
            .then_some(()))
    })?;
    check_interrupt(c)?;

    // 3. Fault.
    let mut down: BTreeSet<String> = BTreeSet::new();
    if args.sync_standby_first {
        let victim = sync_before
            .first()
            .cloned()
            .context("no synchronous standby to fail first")?;
        if !rows
            .iter()
            .any(|r| matches!(r.sync_state.as_deref(), Some("potential" | "quorum")))
        {
            let _ = writer.finish();
            bail!(
                "--sync-standby-first needs a potential standby to take over from {victim}, and {old}'s \
                 synchronous_standby_names leaves none (see `cargo xtask status`)"
            );
        }
        say!(
            "failing the synchronous standby {victim} first ({:?})",
            args.kill
        );
        fail_node(c, &victim, Kill::Crash)?;
        down.insert(victim.clone());
        report.also_failed = Some(victim.clone());
        // Commits go on once the potential standby has become synchronous.
        let mark = Instant::now();
        let took_over = poll(
            "a potential standby to take over as synchronous",
            timeout,
            || {
                let states = c.sql(
                    &old,
                    "SELECT application_name FROM pg_stat_replication WHERE sync_state = 'sync'",
                )?;
                Ok(
                    (!states.is_empty() && writer.acknowledged_on(old_port, mark) >= 20)
                        .then_some(()),
                )
            },
        );
        if let Err(e) = took_over {
            let _ = writer.finish();
            say!("restarting {victim}");
            c.runner
                .run(&c.compose().args(["up", "-d", "--no-deps", &victim]))?;
            return Err(e);
        }
    }
    say!(
        "failing the primary {old} ({:?}) under write load",
        args.kill
    );
    let crashed_at = Instant::now();
    fail_node(c, &old, args.kill)?;
    writer.point_at(None);
    down.insert(old.clone());

    // 4. Choose the new primary.
    let (new, why) = match choose_new_primary(c, &down, &sync_before) {
        Ok(choice) => choice,
        Err(e) => {
            say!("no standby can take over ({e:#}); restarting the old primary {old}");
            let _ = writer.finish();
            c.runner
                .run(&c.compose().args(["up", "-d", "--no-deps", &old]))?;
            c.wait_ready(&old, timeout)?;
            bail!("no standby was reachable to promote; the old primary {old} was restarted as it was");
        }
    };
    say!("promoting {new}: {why}");
    report.promoted = new.clone();
    report.promoted_because = why;
    check_interrupt(c)?;

    // 5. Promote.
    let promoted = c.sql_mut(&new, "SELECT pg_promote(true, 60)");
    if promoted.as_deref().ok() != Some("t") {
        let _ = writer.finish();
        print_state(c);
        bail!(
            "promoting {new} failed or timed out ({}). The old primary {old} stays down. Check `docker logs` of {new}, then \
             promote it by hand (SELECT pg_promote()) or restart {old}.",
            promoted.map_err(|e| format!("{e:#}")).err().unwrap_or_else(|| "pg_promote returned false".into())
        );
    }
    poll(&format!("{new} to accept writes"), timeout, || {
        Ok((c.sql(&new, "SELECT pg_is_in_recovery()")? == "f").then_some(()))
    })?;
    report.crash_to_promoted_ms = ms(crashed_at.elapsed());
    report.new_timeline = timeline(c, &new)?;

    // 6. Re-point every other reachable standby.
    let repoint_start = Instant::now();
    let others: Vec<String> = t
        .nodes
        .iter()
        .map(|n| n.name().to_string())
        .filter(|n| *n != new && !down.contains(n))
        .collect();
    for s in &others {
        repoint(c, s, &new, secrets, timeout)
            .with_context(|| format!("re-pointing {s} to {new}"))?;
    }
    report.repoint_ms = ms(repoint_start.elapsed());
    check_interrupt(c)?;

    // 7. Synchronous again, naming only connected standbys.
    let ssn = connected_sync_names(c, &new)?;
    report.synchronous_standby_names = ssn.clone();
    set_sync_names(c, &new, Some(&ssn))?;
    if !ssn.is_empty() {
        report.sync_commit_ms = Some(prove_sync_commit(
            c,
            &new,
            secrets,
            Duration::from_secs(15),
        )?);
    }

    // 8. The writer resumes on the new primary.
    let new_port = port_of(c, &new)?;
    writer.point_at(Some(new_port));
    let resumed = Instant::now();
    poll("acknowledged writes on the new primary", timeout, || {
        Ok((writer.acknowledged_on(new_port, resumed) >= 20).then_some(()))
    })?;
    let events = writer.finish();
    let first_new = events
        .iter()
        .filter(|e| e.outcome == Outcome::Acknowledged && e.port == new_port && e.at > crashed_at)
        .map(|e| e.at)
        .min()
        .context("no acknowledged write on the new primary")?;
    report.rto_ms = ms(first_new - crashed_at);

    // 9. Verify.
    verify(c, &new, run_id, round, &events, &mut report)?;

    // 10. Rejoin.
    if !args.no_rejoin {
        let rejoin_start = Instant::now();
        let mut how = Vec::new();
        for node in &down {
            how.push(format!(
                "{node}: {}",
                rejoin(c, node, &new, secrets, timeout)
                    .with_context(|| format!("rejoining {node}"))?
            ));
        }
        report.rejoin_ms = Some(ms(rejoin_start.elapsed()));
        report.rejoined_by = Some(how.join(", "));
        // Back to the configured list now that every node streams.
        set_sync_names(c, &new, None)?;
        let expected = status::expected_sync_states(t, &new);
        poll(
            "every standby to stream with its configured sync_state",
            timeout,
            || {
                let rows = status::collect(c)?;
                Ok(rows
                    .iter()
                    .all(|r| {
                        r.problems.is_empty()
                            && (r.role == "primary"
                                || r.sync_state == expected.get(&r.node).cloned())
                    })
                    .then_some(()))
            },
        )?;
    }
    Ok(report)
}

/// The standby to promote: the furthest ahead by received WAL, and among
/// equals the one that was synchronous.
fn choose_new_primary(
    c: &Cluster,
    down: &BTreeSet<String>,
    sync_before: &[String],
) -> Result<(String, String)> {
    let mut lsns: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for n in &c.topology().nodes {
        let name = n.name();
        if down.contains(name) || !c.is_running(name)? {
            continue;
        }
        let Ok(row) = c.sql(
            name,
            "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()",
        ) else {
            continue;
        };
        let f: Vec<&str> = row.split('|').collect();
        if f.first() != Some(&"t") {
            continue;
        }
        let lsn = f
            .get(1)
            .and_then(|s| parse_lsn(s))
            .max(f.get(2).and_then(|s| parse_lsn(s)))
            .unwrap_or(0);
        lsns.insert(name.to_string(), (lsn, f.get(1).unwrap_or(&"").to_string()));
    }
    let best = lsns
        .values()
        .map(|v| v.0)
        .max()
        .context("no reachable standby")?;
    let ahead: Vec<&String> = lsns
        .iter()
        .filter(|(_, v)| v.0 == best)
        .map(|(k, _)| k)
        .collect();
    let pick = ahead
        .iter()
        .find(|n| sync_before.contains(n))
        .or_else(|| ahead.first())
        .map(|s| s.to_string())
        .context("no candidate")?;
    let all: Vec<String> = lsns
        .iter()
        .map(|(k, v)| format!("{k} received {}", v.1))
        .collect();
    let why = format!(
        "{} ({}){}",
        if sync_before.contains(&pick) {
            "it was the synchronous standby"
        } else {
            "it is the furthest ahead"
        },
        all.join(", "),
        if ahead.len() > 1 {
            "; tied on received WAL"
        } else {
            ""
        }
    );
    Ok((pick, why))
}

pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

fn timeline(c: &Cluster, node: &str) -> Result<u32> {
    let name = c.sql(node, "SELECT pg_walfile_name(pg_current_wal_lsn())")?;
    u32::from_str_radix(name.get(..8).unwrap_or(""), 16)
        .with_context(|| format!("reading the timeline from `{name}`"))
}

/// Points a running standby at a new upstream (primary_conninfo is reloadable).
fn repoint(
    c: &Cluster,
    node: &str,
    upstream: &str,
    secrets: &Secrets,
    timeout: Duration,
) -> Result<()> {
    let t = c.topology();
    let n = c.node(node)?;
    let conninfo = render::primary_conninfo(t, n, upstream, Some(secrets.replication.expose()));
    let mut sql = format!(
        "ALTER SYSTEM SET primary_conninfo = {};\n",
        literal(&conninfo)
    );
    if t.replication.slots {
        c.sql_mut(upstream, &create_slot_sql(&n.slot_name()))?;
        sql.push_str(&format!(
            "ALTER SYSTEM SET primary_slot_name = {};\n",
            literal(&n.slot_name())
        ));
    }
    sql.push_str("SELECT pg_reload_conf();\n");
    c.sql_mut(node, &sql)?;
    let tli = timeline(c, upstream)?.to_string();
    let streaming = poll(
        &format!("{node} to stream from {upstream} on timeline {tli}"),
        Duration::from_secs(30).min(timeout),
        || {
            let received = c.sql(
                node,
                "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'",
            )?;
            Ok((is_streaming(c, upstream, node)? && received == tli).then_some(()))
        },
    );
    if let Err(e) = streaming {
        say!("{node} does not follow {upstream} ({e:#}); re-cloning it");
        basebackup::reclone_from(c, node, upstream, timeout)?;
    }
    Ok(())
}

fn create_slot_sql(slot: &str) -> String {
    format!(
        "SELECT pg_create_physical_replication_slot({s}) WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = {s})",
        s = literal(slot)
    )
}

fn is_streaming(c: &Cluster, upstream: &str, node: &str) -> Result<bool> {
    let q = format!(
        "SELECT state FROM pg_stat_replication WHERE application_name = {}",
        literal(node)
    );
    Ok(c.sql(upstream, &q)?.lines().any(|l| l == "streaming"))
}

/// The configured `synchronous_standby_names`, narrowed to standbys streaming
/// from `primary` now (empty: none is connected).
fn connected_sync_names(c: &Cluster, primary: &str) -> Result<String> {
    let t = c.topology();
    let connected = c.sql(
        primary,
        "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
    )?;
    let connected: Vec<&str> = connected.lines().collect();
    let configured = t
        .replication
        .synchronous_standby_names
        .as_ref()
        .and_then(|s| syncrep::parse(s.get_ref()).ok().flatten());
    let Some(cfg) = configured else {
        return Ok(String::new());
    };
    let mut names: Vec<String> = Vec::new();
    for n in cfg.names.iter().filter(|n| *n != "*") {
        if connected.iter().any(|c| c.eq_ignore_ascii_case(n)) && !names.contains(n) {
            names.push(n.clone());
        }
    }
    if cfg.names.iter().any(|n| n == "*") {
        for c in &connected {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(c)) {
                names.push(c.to_string());
            }
        }
    }
    // Then any other connected node of the cluster (a former primary now
    // following): being synchronous with it beats not being synchronous.
    for n in &connected {
        if t.node(n).is_some() && !names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            names.push(n.to_string());
        }
    }
    if names.is_empty() {
        return Ok(String::new());
    }
    let num = (cfg.num_sync as usize).min(names.len()) as u32;
    Ok(syncrep::SyncStandbyNames::new(cfg.method, num, names).to_string())
}

/// `Some(v)`: ALTER SYSTEM SET to v; `None`: back to the configured value.
fn set_sync_names(c: &Cluster, primary: &str, value: Option<&str>) -> Result<()> {
    let sql = match value {
        Some(v) => format!(
            "ALTER SYSTEM SET synchronous_standby_names = {};\nSELECT pg_reload_conf();",
            literal(v)
        ),
        None => {
            "ALTER SYSTEM RESET synchronous_standby_names;\nSELECT pg_reload_conf();".to_string()
        }
    };
    c.sql_mut(primary, &sql)?;
    match value {
        Some("") => say!(
            "{primary}: no standby is connected yet; commits are not synchronous until one rejoins"
        ),
        Some(v) => say!("{primary}: synchronous_standby_names = '{v}'"),
        None => say!("{primary}: synchronous_standby_names back to the configured value"),
    }
    Ok(())
}

/// Commits one row with synchronous_commit = on and fails if it does not
/// return within `bound`.
fn prove_sync_commit(
    c: &Cluster,
    primary: &str,
    secrets: &Secrets,
    bound: Duration,
) -> Result<u64> {
    let t = c.topology().clone();
    let port = port_of(c, primary)?;
    let pw = secrets.owner.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let r = (|| -> Result<()> {
            let mut client = connect(&t, port, &pw, Arc::new(AtomicBool::new(false)))?;
            client.batch_execute(
                "CREATE TABLE IF NOT EXISTS pgrepl_check (token text PRIMARY KEY, at timestamptz DEFAULT now());\n\
                 INSERT INTO pgrepl_check (token) VALUES (md5(random()::text || clock_timestamp()::text));",
            )?;
            Ok(())
        })();
        let _ = tx.send(r.map(|_| started.elapsed()));
    });
    match rx.recv_timeout(bound) {
        Ok(Ok(d)) => {
            say!("{primary}: a synchronous commit returned in {} ms", d.as_millis());
            Ok(ms(d))
        }
        Ok(Err(e)) => Err(e.context(format!("synchronous commit on {primary}"))),
        Err(_) => bail!("a synchronous commit on {primary} did not return within {bound:?}: synchronous_standby_names names no connected standby"),
    }
}

fn verify(
    c: &Cluster,
    primary: &str,
    run_id: &str,
    round: u32,
    events: &[Event],
    report: &mut RoundReport,
) -> Result<()> {
    let rows = c.sql(
        primary,
        &format!(
            "SELECT id FROM {DRILL_TABLE} WHERE run = {} AND round = {round}",
            literal(run_id)
        ),
    )?;
    let mut present: BTreeMap<i64, usize> = BTreeMap::new();
    for l in rows.lines() {
        *present
            .entry(l.trim().parse().context("reading ids")?)
            .or_default() += 1;
    }
    let acked: Vec<i64> = events
        .iter()
        .filter(|e| e.outcome == Outcome::Acknowledged)
        .map(|e| e.id)
        .collect();
    let uncertain: Vec<i64> = events
        .iter()
        .filter(|e| e.outcome == Outcome::Uncertain)
        .map(|e| e.id)
        .collect();
    report.acknowledged = acked.len();
    report.lost_ids = acked
        .iter()
        .copied()
        .filter(|id| !present.contains_key(id))
        .collect();
    report.lost = report.lost_ids.len();
    report.duplicated_ids = present
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    report.uncertain = uncertain.len();
    report.uncertain_landed = uncertain
        .iter()
        .filter(|id| present.contains_key(id))
        .count();
    report.uncertain_not_landed = report.uncertain - report.uncertain_landed;
    Ok(())
}

/// Brings a failed node back as a standby of `primary`: the old primary is
/// rewound with pg_rewind (it may hold WAL the new timeline does not), a
/// failed standby is re-pointed; either is re-cloned if that fails. It is
/// started only once standby.signal is in place, so it can never come back
/// as a second writable primary.
fn rejoin(
    c: &Cluster,
    node: &str,
    primary: &str,
    secrets: &Secrets,
    timeout: Duration,
) -> Result<String> {
    let r = c.runner;
    let t = c.topology();
    let n = c.node(node)?;
    r.run(&c.compose().args(["stop", node]))?;
    let was_standby = r
        .run_unchecked(
            &one_off(c, node, "test")
                .args(["-e", &format!("{PGDATA}/standby.signal")])
                .read_only(),
        )?
        .success;
    let mut how = "re-pointed".to_string();
    if !was_standby {
        // A killed server leaves postmaster.pid naming PID 1, which in the
        // one-off container is pg_rewind itself: PostgreSQL would take the
        // lock as live. The node's container is stopped, so it is stale.
        if c.is_running(node)? {
            bail!("{node} is still running; it must be down to be rewound");
        }
        r.run(&one_off(c, node, "rm").args(["-f", &format!("{PGDATA}/postmaster.pid")]))?;
        // pg_rewind reads the source's timeline from its control file, which
        // a freshly promoted server updates only at its next checkpoint.
        c.sql_mut(primary, "CHECKPOINT")?;
        let source = format!(
            "host={primary} port=5432 user={} dbname={}",
            render::conninfo_value(t.database.owner.get_ref().as_str()),
            render::conninfo_value(t.database.name.get_ref().as_str())
        );
        let rewind = r.run(
            &c.compose()
                .args(["run", "--rm", "--no-deps", "-T", "-e", "PGPASSWORD", "-u"])
                .arg(crate::docker::run_as_user().unwrap_or_else(|| "postgres".into()))
                .args(["--entrypoint", "pg_rewind", node, "-D", PGDATA])
                // Its crash-recovery step must run with the node's real settings
                // (wal_log_hints), not the data folder's default postgresql.conf.
                .arg(format!(
                    "--config-file={}/postgresql.conf",
                    render::CONF_DIR
                ))
                .arg(format!("--source-server={source}"))
                .secret_env("PGPASSWORD", &secrets.owner),
        );
        match rewind {
            Ok(out) => {
                how = if out.stdout.contains("no rewind required") {
                    "pg_rewind (no rewind required)"
                } else {
                    "pg_rewind"
                }
                .to_string();
            }
            Err(e) => {
                say!("{node}: pg_rewind failed ({e:#}); re-cloning");
                basebackup::reclone_from(c, node, primary, timeout)?;
                return Ok("re-cloned (pg_rewind failed)".into());
            }
        }
    }
    if t.replication.slots {
        c.sql_mut(primary, &create_slot_sql(&n.slot_name()))?;
    }
    // pg_rewind copied the new primary's postgresql.auto.conf: replace it.
    let settings = render::standby_settings(t, n, primary, Some(secrets.replication.expose()));
    r.run(
        &one_off(c, node, "tee")
            .arg(format!("{PGDATA}/postgresql.auto.conf"))
            .stdin(settings),
    )?;
    r.run(&one_off(c, node, "touch").arg(format!("{PGDATA}/standby.signal")))?;
    r.run(&c.compose().args(["up", "-d", "--no-deps", node]))?;
    let followed = c.wait_ready(node, timeout).and_then(|_| {
        poll(
            &format!("{node} to stream from {primary}"),
            Duration::from_secs(60).min(timeout),
            || Ok(is_streaming(c, primary, node)?.then_some(())),
        )
    });
    if let Err(e) = followed {
        say!("{node}: last log lines:\n{}", c.last_logs(node, 12)?);
        say!("{node}: does not follow {primary} ({e:#}); re-cloning");
        basebackup::reclone_from(c, node, primary, timeout)?;
        return Ok(format!("re-cloned ({how} was not enough)"));
    }
    if c.sql(node, "SELECT pg_is_in_recovery()")? != "t" {
        bail!("{node} came back writable; stop it at once");
    }
    let write = c.sql_mut(
        node,
        &format!(
            "INSERT INTO {DRILL_TABLE} (run, round, id, at) VALUES ('rejoin-check', -1, -1, now())"
        ),
    );
    if write.is_ok() {
        bail!("{node} accepted a write after rejoining");
    }
    Ok(how)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_parsing_and_median() {
        assert_eq!(parse_lsn("0/5000060"), Some(0x5000060));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn(""), None);
        assert!(parse_lsn("0/A0") > parse_lsn("0/9F"));
        assert_eq!(median(&[1, 2, 9]), 2);
        assert_eq!(median(&[1, 3]), 2);
        assert_eq!(median(&[]), 0);
    }

    #[test]
    fn a_standby_name_list_is_quoted_for_postgres() {
        let s = syncrep::SyncStandbyNames::new(syncrep::Method::First, 1, vec!["slave2-db".into()])
            .to_string();
        assert_eq!(s, "FIRST 1 (\"slave2-db\")");
    }
}
