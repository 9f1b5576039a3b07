//! `failover-drill`: proves a failover loses no acknowledged commit. A
//! writer commits single-row transactions with `synchronous_commit = on`
//! over a real connection; a fault hits the primary under that load (see
//! [`fault::Fault`]); the failover runs the very operations the `failover`
//! command runs (fence, choose, promote, re-point, narrow, prove); the
//! writer resumes on the new primary; every acknowledged id must be there,
//! once; and the failed nodes rejoin as standbys.
//!
//! The runbook's drill stopped the primary cleanly (nothing could be lost),
//! promoted a standby without checking it was the furthest ahead, and named a
//! dead node in `synchronous_standby_names`, so every later commit hung.
//!
//! Split by concern: [`writer`] (the load), [`ledger`] (the accounting,
//! pure), [`fault`] (the injection), and the round script here.

pub mod fault;
pub mod ledger;
pub mod patroni;
pub mod plot;
pub mod writer;

use crate::cluster::Cluster;
use crate::ops::container::port_of;
use crate::ops::failover::{self, Request};
use crate::ops::live::{self, NodeStatus};
use crate::ops::standby::rejoin;
use crate::ops::sync::restore_sync_names;
use crate::runner::Runner;
use crate::secrets::Secrets;
use crate::wait::ms;
use anyhow::{bail, Context, Result};
use cluster_config::live::LiveRole;
use fault::Fault;
use ledger::Ledger;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use writer::{Outcome, Writer, DRILL_TABLE};

/// What a drill is asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Faults to inject; rounds cycle through the list.
    pub fault: Vec<Fault>,
    pub rounds: u32,
    /// Leave the failed nodes down instead of rejoining them.
    pub no_rejoin: bool,
    /// Write the JSON report here.
    pub report: Option<PathBuf>,
    /// Seconds of writes before the fault.
    pub warmup: f64,
    /// Who fails over.
    pub engine: crate::cli::Engine,
    pub patroni_timings: crate::cli::TimingsArg,
    /// Draw each round into this SVG file.
    pub plot: Option<PathBuf>,
    /// How long to wait for each step, in seconds.
    pub timeout: u64,
}

/// One round, as the JSON report holds it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RoundReport {
    pub round: u32,
    /// Who failed over: `pgrepl` (this tool) or `patroni`.
    pub engine: String,
    pub fault: String,
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
    /// Commits whose synchronous wait was cancelled (not acknowledged).
    pub cancelled_wait: usize,
    pub cancelled_wait_survived: usize,
    /// The old primary, started again by the fault, was read-only.
    pub restarted_read_only: Option<bool>,
    pub crash_to_promoted_ms: u64,
    /// Of those: reading the nodes and choosing, fencing, promoting.
    pub choose_ms: u64,
    pub fence_ms: u64,
    pub promote_ms: u64,
    /// Fault to the first acknowledged write on the new primary.
    pub rto_ms: u64,
    pub repoint_ms: u64,
    /// How long a synchronous commit took once the new primary was
    /// synchronous again; `None` when no standby was connected yet.
    pub sync_commit_ms: Option<u64>,
    pub rejoin_ms: Option<u64>,
    pub rejoined_by: Option<String>,
    /// Failed nodes that needed a full re-clone to rejoin.
    pub recloned: usize,
    pub synchronous_standby_names: String,
    /// Nodes accepting writes at the end of the round.
    pub writable_nodes: Vec<String>,
    /// Every write attempt and the failover's steps, in ms from the fault
    /// (for `--plot`; not in the JSON report).
    #[serde(skip)]
    pub timeline: plot::Timeline,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub cluster: String,
    pub faults: Vec<String>,
    pub rounds: Vec<RoundReport>,
    pub rto_median_ms: u64,
    pub rto_worst_ms: u64,
    pub acknowledged_total: usize,
    pub lost_total: usize,
    pub writable_nodes: Vec<String>,
    pub healthy: bool,
    pub final_status: Vec<NodeStatus>,
}

/// The drill on the cluster of `topology`, with its report (the failover
/// bench reads it).
pub fn execute(topology: &Path, args: &Plan, runner: &dyn Runner) -> Result<DrillReport> {
    if args.no_rejoin && args.rounds > 1 {
        bail!("--no-rejoin leaves a node down, so a second round would start from an unhealthy cluster: use one round");
    }
    if args.fault.is_empty() {
        bail!("--fault needs at least one fault");
    }
    // Where the results go is checked before the first fault: a long run
    // never ends on a path that cannot be written.
    if let Some(p) = &args.report {
        crate::fsx::check_writable(p, "--report")?;
    }
    if let Some(p) = &args.plot {
        crate::fsx::check_writable(p, "--plot")?;
    }
    let patroni = args.engine == crate::cli::Engine::Patroni;
    if patroni && args.fault.iter().any(|f| *f != Fault::Crash) {
        bail!("--engine patroni runs the crash fault only (the others need the tool to fail over)");
    }
    let c = Cluster::open(topology, runner)?;
    let c = if patroni {
        crate::ops::patroni::engine(c)?
    } else {
        c
    };
    if patroni {
        patroni::apply_timings(&c, args.patroni_timings.timings())?;
    }
    let interrupt = c.interrupt().clone();
    let _ = ctrlc::set_handler(move || {
        warn!("\ninterrupt: stopping the writer after the current step");
        interrupt.set();
    });
    let secrets = c.secrets()?;
    let run_id = crate::secrets::generate_password()?[..12].to_string();
    say!("drill run {run_id} on {}", c.name());
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let fault = args.fault[(round as usize - 1) % args.fault.len()];
        say!("\n== round {round} of {}: {fault}", args.rounds);
        let result = if patroni {
            patroni::round(&c, &secrets, args, &run_id, round)
        } else {
            drill_round(&c, &secrets, args, &run_id, round, fault)
        };
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                if c.interrupt().is_set() {
                    print_state(&c);
                }
                return Err(e.context(format!("round {round} ({fault})")));
            }
        };
        print_round(&r);
        let failed =
            !r.lost_ids.is_empty() || !r.duplicated_ids.is_empty() || r.writable_nodes.len() > 1;
        rounds.push(r);
        if failed {
            break;
        }
    }
    let final_status = live::collect(&c)?;
    let mut rtos: Vec<u64> = rounds.iter().map(|r| r.rto_ms).collect();
    rtos.sort_unstable();
    let report = DrillReport {
        cluster: c.name().to_string(),
        faults: args.fault.iter().map(|f| f.to_string()).collect(),
        rto_median_ms: median(&rtos),
        rto_worst_ms: rtos.last().copied().unwrap_or(0),
        acknowledged_total: rounds.iter().map(|r| r.acknowledged).sum(),
        lost_total: rounds.iter().map(|r| r.lost).sum(),
        writable_nodes: final_status
            .iter()
            .filter(|s| s.role == LiveRole::Primary)
            .map(|s| s.node.clone())
            .collect(),
        healthy: live::healthy(&final_status),
        rounds,
        final_status,
    };
    say!("\n{}", live::table(&report.final_status));
    say!(
        "{} round(s): acknowledged {}, lost {}, RTO median {} ms, worst {} ms (fault to first acknowledged write on the new primary)",
        report.rounds.len(),
        report.acknowledged_total,
        report.lost_total,
        report.rto_median_ms,
        report.rto_worst_ms
    );
    // The verdict is printed before any file is written: a report that
    // cannot be written never hides a loss.
    let mut verdict = None;
    if let Some(bad) = report
        .rounds
        .iter()
        .find(|r| !r.lost_ids.is_empty() || !r.duplicated_ids.is_empty())
    {
        verdict = Some(format!(
            "round {}: LOST {} acknowledged commit(s): {}; duplicated: {} (every id is in the JSON report)",
            bad.round,
            bad.lost,
            first_ids(&bad.lost_ids),
            first_ids(&bad.duplicated_ids)
        ));
    } else if let Some(bad) = report.rounds.iter().find(|r| r.writable_nodes.len() > 1) {
        verdict = Some(format!(
            "round {}: {} nodes accept writes: {}",
            bad.round,
            bad.writable_nodes.len(),
            bad.writable_nodes.join(", ")
        ));
    }
    if let Some(v) = &verdict {
        warn!("error: {v}");
    }
    let mut write_errors = Vec::new();
    if let Some(path) = &args.plot {
        match plot::draw(path, &report) {
            Ok(()) => say!("plot written to {}", path.display()),
            Err(e) => write_errors.push(format!("{e:#}")),
        }
    }
    if let Some(path) = &args.report {
        let written = serde_json::to_string_pretty(&report)
            .map_err(anyhow::Error::from)
            .and_then(|json| crate::project::write_if_changed(path, &json));
        match written {
            Ok(_) => say!("report written to {}", path.display()),
            Err(e) => write_errors.push(format!("writing {}: {e:#}", path.display())),
        }
    }
    if let Some(v) = verdict {
        bail!("{v}");
    }
    if !write_errors.is_empty() {
        bail!("{}", write_errors.join("; "));
    }
    if !args.no_rejoin && !report.healthy {
        bail!("the cluster is not healthy after the drill (see the table above)");
    }
    Ok(report)
}

fn print_round(r: &RoundReport) {
    if r.engine == "patroni" {
        say!(
            "round {} ({}, Patroni): {} failed, {} promoted (timeline {}).\n  acknowledged {}, lost {}, uncertain {} ({} landed, {} not); \
             fault->new leader seen {} ms, RTO {} ms (detection included){}",
            r.round,
            r.fault,
            r.failed_primary,
            r.promoted,
            r.new_timeline,
            r.acknowledged,
            r.lost,
            r.uncertain,
            r.uncertain_landed,
            r.uncertain_not_landed,
            r.crash_to_promoted_ms,
            r.rto_ms,
            r.rejoin_ms
                .map(|m| format!(", rejoin {m} ms ({})", r.rejoined_by.clone().unwrap_or_default()))
                .unwrap_or_default()
        );
        return;
    }
    say!(
        "round {} ({}): {} failed{}, {} promoted (timeline {}): {}.\n  acknowledged {}, lost {}, uncertain {} ({} landed, {} not){}; \
         fault->promoted {} ms (choose {}, fence {}, promote {}), RTO {} ms, re-point {} ms, {}{}",
        r.round,
        r.fault,
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
        if r.cancelled_wait > 0 {
            format!(
                ", cancelled waits {} ({} survived)",
                r.cancelled_wait, r.cancelled_wait_survived
            )
        } else {
            String::new()
        },
        r.crash_to_promoted_ms,
        r.choose_ms,
        r.fence_ms,
        r.promote_ms,
        r.rto_ms,
        r.repoint_ms,
        match r.sync_commit_ms {
            Some(ms) => format!("synchronous commit {ms} ms"),
            None => "not synchronous until a standby rejoined".to_string(),
        },
        r.rejoin_ms
            .map(|m| format!(", rejoin {m} ms ({})", r.rejoined_by.clone().unwrap_or_default()))
            .unwrap_or_default()
    );
}

fn drill_round(
    c: &Cluster,
    secrets: &Secrets,
    args: &Plan,
    run_id: &str,
    round: u32,
    fault: Fault,
) -> Result<RoundReport> {
    let timeout = Duration::from_secs(args.timeout);
    let mut report = RoundReport {
        round,
        engine: "pgrepl".into(),
        fault: fault.to_string(),
        ..Default::default()
    };

    // 1. Preflight.
    let rows = live::collect(c)?;
    if !live::healthy(&rows) {
        bail!(
            "the cluster is not healthy; the drill needs a healthy cluster to prove anything:\n{}",
            live::table(&rows)
        );
    }
    let old = live::find_primary(c)?.context("no writable primary")?;
    report.failed_primary = old.clone();
    let enforced = live::enforced_sync_names(c, &old)?;

    // 2. Writer, warm-up. The writer is joined when it goes out of scope,
    // on every path out of this function.
    let (writer, old_port) = warm_writer(c, secrets, args, run_id, round, &old)?;
    check_interrupt(c)?;

    // 3. Fault.
    let fr = fault::Round {
        c,
        old: &old,
        writer: &writer,
        old_port,
        timeout,
    };
    let mut down: BTreeSet<String> = BTreeSet::new();
    let mut states = live::sync_states(&rows);
    fault.before(&fr, &mut states, &mut down, &mut report)?;
    say!("failing the primary {old} ({fault}) under write load");
    let crashed_at = Instant::now();
    fault.fail_primary(&fr)?;
    down.insert(old.clone());

    // 4. Fail over with the operations the `failover` command runs.
    let done = failover::run(
        c,
        secrets,
        &Request {
            fence: vec![old.clone()],
            down: down.clone(),
            states: Some(states),
            enforced,
            to: None,
            allow_data_loss: false,
            timeout,
            // The writer moves to the new primary as soon as it is
            // writable; its commits wait for a re-pointed standby.
            on_promoted: Some(&|new: &str| {
                if let Ok(port) = port_of(c, new) {
                    writer.point_at(Some(port));
                }
            }),
        },
    );
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            fault.heal(&fr);
            print_state(c);
            return Err(e);
        }
    };
    let new = done.choice.node.clone();
    report.promoted = new.clone();
    report.promoted_because = done.choice.why.clone();
    report.new_timeline = done.timeline;
    report.crash_to_promoted_ms = ms(done.promoted_at - crashed_at);
    [report.choose_ms, report.fence_ms, report.promote_ms] = done.steps_ms;
    report.repoint_ms = ms(done.repoint);
    report.sync_commit_ms = done.sync_commit_ms;
    report.synchronous_standby_names = done.sync_names.clone();
    check_interrupt(c)?;

    // 5. What a supervisor or the network does next.
    fault.after_promotion(&fr, &new, &mut report)?;

    // 6. The writer resumed on the new primary once it was promoted.
    observe_new_primary(
        c,
        &mut report,
        writer,
        &new,
        run_id,
        round,
        Marks {
            fault: crashed_at,
            promoted: done.promoted_at,
            repointed: done.promoted_at + done.repoint,
        },
        timeout,
    )?;

    // 8. Rejoin.
    if !args.no_rejoin {
        rejoin_failed(c, secrets, &down, &new, &mut report, timeout)?;
    }
    report.writable_nodes = live::collect(c)?
        .iter()
        .filter(|r| r.role == LiveRole::Primary)
        .map(|r| r.node.clone())
        .collect();
    Ok(report)
}

/// The failed nodes come back as standbys of `new`, and every standby
/// streams with its configured sync state again.
fn rejoin_failed(
    c: &Cluster,
    secrets: &Secrets,
    down: &BTreeSet<String>,
    new: &str,
    report: &mut RoundReport,
    timeout: Duration,
) -> Result<()> {
    let rejoin_start = Instant::now();
    let mut how = Vec::new();
    for node in down {
        let done =
            rejoin(c, node, new, secrets, timeout).with_context(|| format!("rejoining {node}"))?;
        if done.recloned() {
            report.recloned += 1;
        }
        how.push(format!("{node}: {done}"));
    }
    report.rejoin_ms = Some(ms(rejoin_start.elapsed()));
    report.rejoined_by = Some(how.join(", "));
    restore_sync_names(c, new)?;
    let t = c.topology();
    let expected = live::expected_sync_states(t, new);
    c.poll(
        "every standby to stream with its configured sync_state",
        timeout,
        || {
            let rows = live::collect(c)?;
            Ok(rows
                .iter()
                .all(|r| {
                    r.problems.is_empty()
                        && (r.role == LiveRole::Primary
                            || r.sync_state == expected.get(&r.node).copied())
                })
                .then_some(()))
        },
    )?;
    Ok(())
}

/// Creates the drill's table on `primary`, starts the writer there and
/// waits for its warm-up: at least 20 acknowledged commits and
/// `--warmup` seconds.
pub(crate) fn warm_writer(
    c: &Cluster,
    secrets: &Secrets,
    args: &Plan,
    run_id: &str,
    round: u32,
    primary: &str,
) -> Result<(Writer, u16)> {
    c.sql_mut(
        primary,
        &format!(
            "SET synchronous_commit = on; CREATE TABLE IF NOT EXISTS {DRILL_TABLE} (run text NOT NULL, round int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL);"
        ),
    )?;
    let port = port_of(c, primary)?;
    let writer = Writer::start(
        c.topology().clone(),
        secrets.owner.clone(),
        run_id.to_string(),
        round as i32,
        port,
    );
    let start = Instant::now();
    c.poll(
        "the writer's first acknowledged commits",
        Duration::from_secs(args.timeout),
        || {
            Ok((writer.acknowledged_on(port, start) >= 20
                && start.elapsed().as_secs_f64() >= args.warmup)
                .then_some(()))
        },
    )?;
    Ok((writer, port))
}

/// When a round's fault hit and the failover's steps ended.
struct Marks {
    fault: Instant,
    promoted: Instant,
    repointed: Instant,
}

/// Moves the writer to the new primary, waits for 20 acknowledged commits
/// there, stops it, and fills in the round's RTO, timeline and accounts
/// from every attempt and the ids the new primary holds.
#[allow(clippy::too_many_arguments)]
fn observe_new_primary(
    c: &Cluster,
    report: &mut RoundReport,
    writer: Writer,
    new: &str,
    run_id: &str,
    round: u32,
    marks: Marks,
    timeout: Duration,
) -> Result<()> {
    let new_port = port_of(c, new)?;
    writer.point_at(Some(new_port));
    c.poll("acknowledged writes on the new primary", timeout, || {
        Ok((writer.acknowledged_on(new_port, marks.promoted) >= 20).then_some(()))
    })?;
    let events = writer.finish();
    let fault = marks.fault;
    let first_new = events
        .iter()
        .filter(|e| e.outcome == Outcome::Acknowledged && e.port == new_port && e.at > fault)
        .map(|e| e.at)
        .min()
        .context("no acknowledged write on the new primary")?;
    report.rto_ms = ms(first_new - fault);
    let rel = |t: Instant| {
        t.saturating_duration_since(fault).as_secs_f64() * 1000.0
            - fault.saturating_duration_since(t).as_secs_f64() * 1000.0
    };
    report.timeline = plot::Timeline {
        writes: events
            .iter()
            .map(|e| plot::Write {
                at_ms: rel(e.at),
                latency_ms: e.latency.as_secs_f64() * 1000.0,
                acknowledged: e.outcome == Outcome::Acknowledged,
            })
            .collect(),
        promoted_ms: rel(marks.promoted),
        repointed_ms: rel(marks.repointed),
        first_write_ms: rel(first_new),
    };
    let present = ledger::present_ids(c, new, run_id, round)?;
    let l = Ledger::account(&events, &present);
    report.acknowledged = l.acknowledged;
    report.lost = l.lost_ids.len();
    report.lost_ids = l.lost_ids;
    report.duplicated_ids = l.duplicated_ids;
    report.uncertain = l.uncertain;
    report.uncertain_landed = l.uncertain_landed;
    report.uncertain_not_landed = l.uncertain - l.uncertain_landed;
    report.cancelled_wait = l.cancelled_wait;
    report.cancelled_wait_survived = l.cancelled_wait_survived;
    Ok(())
}

/// One round of the incident as a user runs it: the drill's writer on the
/// primary, `docker kill` of the primary, then the `failover` command
/// (`exe`, the tool's own binary, as a separate process), the writer moved
/// to the new primary once it returns, then the `rejoin` command. Each
/// command's wall time is what the user waits for, process start included.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserRound {
    pub failover_ms: u64,
    pub rejoin_ms: u64,
    /// Fault to the first acknowledged write on the new primary.
    pub rto_ms: u64,
    pub acknowledged: usize,
    pub lost: usize,
}

/// Runs one [`UserRound`] on the cluster of `topology`.
pub fn user_round(
    c: &Cluster,
    topology: &Path,
    exe: &Path,
    run_id: &str,
    round: u32,
    timeout: Duration,
) -> Result<UserRound> {
    let secrets = c.secrets()?;
    let rows = live::collect(c)?;
    if !live::healthy(&rows) {
        bail!("the cluster is not healthy:\n{}", live::table(&rows));
    }
    let old = live::find_primary(c)?.context("no writable primary")?;
    let plan = Plan {
        fault: vec![Fault::Crash],
        rounds: 1,
        no_rejoin: false,
        report: None,
        warmup: 2.0,
        engine: crate::cli::Engine::Pgrepl,
        patroni_timings: crate::cli::TimingsArg::Default,
        plot: None,
        timeout: timeout.as_secs(),
    };
    let (writer, _) = warm_writer(c, &secrets, &plan, run_id, round, &old)?;
    let t = topology.to_string_lossy().into_owned();
    let crashed_at = Instant::now();
    crate::ops::container::kill(c, &old)?;
    let started = Instant::now();
    c.runner()
        .run(&crate::runner::Cmd::new(exe).args(["failover", "-t", &t]))?;
    let failover_ms = ms(started.elapsed());
    let promoted = Instant::now();
    let new = live::find_primary(c)?.context("no primary after the failover command")?;
    let mut report = RoundReport::default();
    observe_new_primary(
        c,
        &mut report,
        writer,
        &new,
        run_id,
        round,
        Marks {
            fault: crashed_at,
            promoted,
            repointed: promoted,
        },
        timeout,
    )?;
    let started = Instant::now();
    c.runner()
        .run(&crate::runner::Cmd::new(exe).args(["rejoin", "--node", &old, "-t", &t]))?;
    let rejoin_ms = ms(started.elapsed());
    c.poll("a healthy cluster after the rejoin", timeout, || {
        Ok(live::healthy(&live::collect(c)?).then_some(()))
    })?;
    Ok(UserRound {
        failover_ms,
        rejoin_ms,
        rto_ms: report.rto_ms,
        acknowledged: report.acknowledged,
        lost: report.lost,
    })
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
fn check_interrupt(c: &Cluster) -> Result<()> {
    if c.interrupt().is_set() {
        print_state(c);
        bail!("interrupted: the writer is stopped and the cluster is as shown above");
    }
    Ok(())
}
fn print_state(c: &Cluster) {
    match live::collect(c) {
        Ok(rows) => warn!("\n{}", live::table(&rows)),
        Err(e) => warn!("(could not read the cluster's state: {e:#})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_sorted_figures() {
        assert_eq!(median(&[1, 2, 9]), 2);
        assert_eq!(median(&[1, 3]), 2);
        assert_eq!(median(&[]), 0);
    }

    #[test]
    fn faults_have_their_command_line_names() {
        assert_eq!(Fault::SyncStandbyFirst.to_string(), "sync-standby-first");
        assert_eq!(Fault::CancelWait.to_string(), "cancel-wait");
    }
}
