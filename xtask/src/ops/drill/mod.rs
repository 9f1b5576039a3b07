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
//! pure), [`fault`] (the injection), [`round`] (one round with this tool's
//! engine), [`patroni`] (one round under Patroni), [`history`] (every
//! operation as JSON Lines), [`plot`], [`summary`] (reports as README's
//! table), [`user`] (the user's own commands,
//! timed), and the run and its report here.

pub mod fault;
pub mod history;
pub mod ledger;
pub mod patroni;
pub mod plot;
pub mod round;
pub mod summary;
pub mod user;
pub mod writer;

pub use user::{user_round, UserRound};

use crate::cluster::Cluster;
use crate::ops::live::{self, NodeStatus};
use crate::runner::Runner;
use anyhow::{bail, Result};
use cluster_config::live::LiveRole;
use fault::Fault;
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// Draw the run into this SVG file.
    pub plot: Option<PathBuf>,
    /// Rounds drawn panel by panel (besides the worst).
    pub plot_rounds: Vec<u32>,
    /// Write every operation as JSON Lines here.
    pub history: Option<PathBuf>,
    /// How long to wait for each step, in seconds.
    pub timeout: u64,
}

/// One round, as the JSON report holds it (and `drill-report` reads it
/// back).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
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
    /// Fault to the first acknowledged write on the new primary (for
    /// `sync-standby-partition`, which promotes nothing: to the 20th commit
    /// after the primary dropped the cut-off standby).
    pub rto_ms: u64,
    /// The longest time without an acknowledged commit from the last one
    /// before the fault.
    pub write_stall_ms: u64,
    /// CloudNativePG's measure: the last row written on the old timeline to
    /// the first on the new, by the rows' own clock and timeline.
    pub cnpg_failover_ms: Option<u64>,
    /// `sync-standby-partition`: whether `status` said why commits waited
    /// (None: no stall long enough to ask).
    pub status_said_why: Option<bool>,
    pub repoint_ms: u64,
    /// How long a synchronous commit took once the new primary was
    /// synchronous again; `None` when no standby was connected yet.
    pub sync_commit_ms: Option<u64>,
    pub rejoin_ms: Option<u64>,
    pub rejoined_by: Option<String>,
    /// Failed nodes that needed a full re-clone to rejoin.
    pub recloned: usize,
    /// Standbys re-cloned during the failover because they could not
    /// follow the new primary (absent from reports of earlier builds).
    #[serde(default)]
    pub standbys_recloned: Vec<String>,
    pub synchronous_standby_names: String,
    /// Nodes accepting writes at the end of the round.
    pub writable_nodes: Vec<String>,
    /// Every write attempt and the failover's steps, in ms from the fault
    /// (for `--plot`, kept for the rounds it draws; not in the JSON report).
    #[serde(skip)]
    pub timeline: plot::Timeline,
    /// Every operation (for `--history`, written after the round).
    #[serde(skip)]
    pub ops: history::RoundOps,
}

impl RoundReport {
    /// Whether a standby was promoted in this round.
    pub fn failed_over(&self) -> bool {
        !self.promoted.is_empty()
    }
}

/// The figures of one fault over a run.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FaultSummary {
    pub fault: String,
    pub rounds: usize,
    pub acknowledged: usize,
    pub lost: usize,
    pub rto_median_ms: u64,
    pub rto_worst_ms: u64,
    pub write_stall_median_ms: u64,
    pub write_stall_worst_ms: u64,
    pub recloned: usize,
    /// Standbys re-cloned because they could not follow the new primary.
    pub standbys_recloned: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub cluster: String,
    pub faults: Vec<String>,
    pub rounds: Vec<RoundReport>,
    /// Over the rounds that promoted a standby.
    pub rto_median_ms: u64,
    pub rto_worst_ms: u64,
    pub write_stall_median_ms: u64,
    pub write_stall_worst_ms: u64,
    pub per_fault: Vec<FaultSummary>,
    pub acknowledged_total: usize,
    pub lost_total: usize,
    pub writable_nodes: Vec<String>,
    pub healthy: bool,
    pub final_status: Vec<NodeStatus>,
}

/// The drill on the cluster of `topology`, with its report (the failover
/// bench reads it).
pub fn execute(topology: &Path, args: &Plan, runner: &dyn Runner) -> Result<DrillReport> {
    check_plan(args)?;
    let patroni = args.engine == crate::cli::Engine::Patroni;
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
    let (rounds, outcome) = run_rounds(&c, args)?;
    if rounds.is_empty() {
        outcome?;
        bail!("no round ran");
    }
    // The rounds that ran are reported even when a later one failed: a
    // long run never loses what it measured to its last round's error.
    let report = match summarize(&c, args, rounds) {
        Ok(report) => report,
        Err(e) => return Err(outcome.err().unwrap_or(e)),
    };
    let concluded = conclude(&report, args, outcome.is_err());
    outcome?;
    concluded?;
    Ok(report)
}

/// What can be refused before the first fault.
fn check_plan(args: &Plan) -> Result<()> {
    args.engine.runs_here()?;
    if args.no_rejoin && args.rounds > 1 {
        bail!("--no-rejoin leaves a node down, so a second round would start from an unhealthy cluster: use one round");
    }
    if args.fault.is_empty() {
        bail!("--fault needs at least one fault");
    }
    // Where the results go is checked before the first fault: a long run
    // never ends on a path that cannot be written.
    for (p, what) in [
        (&args.report, "--report"),
        (&args.plot, "--plot"),
        (&args.history, "--history"),
    ] {
        if let Some(p) = p {
            crate::fsx::check_writable(p, what)?;
        }
    }
    if let Some(r) = args
        .plot_rounds
        .iter()
        .find(|r| **r == 0 || **r > args.rounds)
    {
        bail!(
            "--plot-rounds names round {r}, but the run has rounds 1 to {}",
            args.rounds
        );
    }
    if args.engine == crate::cli::Engine::Patroni && args.fault.iter().any(|f| *f != Fault::Crash) {
        bail!("--engine patroni runs the crash fault only (the others need the tool to fail over)");
    }
    Ok(())
}

/// Every round, stopping at the first that lost or duplicated a commit or
/// left two writable nodes. The history is written round by round; each
/// round's writes are kept for the plot only when it may draw them. The
/// rounds that finished, and how the run ended (a round's error).
fn run_rounds(c: &Cluster, args: &Plan) -> Result<(Vec<RoundReport>, Result<()>)> {
    let secrets = c.secrets()?;
    let run_id = crate::secrets::generate_password()?[..12].to_string();
    say!("drill run {run_id} on {}", c.name());
    let origin = Instant::now();
    let mut history = match &args.history {
        Some(path) => Some((
            crate::fsx::Staged::create(path, crate::fsx::Access::Public)?,
            history::History::new(origin),
        )),
        None => None,
    };
    let ports: Vec<(u16, String)> = c
        .topology()
        .nodes
        .iter()
        .map(|n| (*n.port.get_ref(), n.name().to_string()))
        .collect();
    let node_of = |port: u16| {
        ports
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| format!("port {port}"))
    };
    let mut rounds: Vec<RoundReport> = Vec::new();
    let mut outcome = Ok(());
    for round in 1..=args.rounds {
        let fault = args.fault[(round as usize - 1) % args.fault.len()];
        say!("\n== round {round} of {}: {fault}", args.rounds);
        let result = if args.engine == crate::cli::Engine::Patroni {
            patroni::round(c, &secrets, args, &run_id, round)
        } else {
            round::run(c, &secrets, args, &run_id, round, fault)
        };
        let mut r = match result {
            Ok(r) => r,
            Err(e) => {
                if c.interrupt().is_set() {
                    round::print_state(c);
                }
                outcome = Err(e.context(format!("round {round} ({fault})")));
                break;
            }
        };
        print_round(&r);
        if let Some((file, h)) = history.as_mut() {
            for line in h.round(round, &std::mem::take(&mut r.ops), &node_of) {
                writeln!(file.file(), "{line}")?;
            }
        }
        let failed =
            !r.lost_ids.is_empty() || !r.duplicated_ids.is_empty() || r.writable_nodes.len() > 1;
        rounds.push(r);
        keep_timelines(&mut rounds, &args.plot_rounds, args.plot.is_some());
        if failed {
            break;
        }
    }
    // The history is kept whatever happened: it is what explains a failure.
    if let Some((file, _)) = history {
        let path = file.commit()?;
        say!("history written to {}", path.display());
    }
    Ok((rounds, outcome))
}

/// Keeps the writes of the rounds the plot may draw in panels: those asked
/// for, the worst RTO and the worst write stall so far.
fn keep_timelines(rounds: &mut [RoundReport], asked: &[u32], plotting: bool) {
    if plotting && rounds.len() <= plot::FEW {
        return;
    }
    let worst =
        |key: fn(&RoundReport) -> u64| rounds.iter().max_by_key(|r| key(r)).map(|r| r.round);
    let keep: Vec<u32> = if plotting {
        [worst(|r| r.rto_ms), worst(|r| r.write_stall_ms)]
            .into_iter()
            .flatten()
            .chain(asked.iter().copied())
            .collect()
    } else {
        vec![]
    };
    for r in rounds.iter_mut() {
        if !keep.contains(&r.round) {
            r.timeline = plot::Timeline::default();
        }
    }
}

fn sorted(rounds: &[&RoundReport], key: fn(&RoundReport) -> u64) -> Vec<u64> {
    let mut v: Vec<u64> = rounds.iter().map(|r| key(r)).collect();
    v.sort_unstable();
    v
}

/// The report of the run: totals, figures over the rounds and per fault,
/// and the cluster's state at the end.
fn summarize(c: &Cluster, args: &Plan, rounds: Vec<RoundReport>) -> Result<DrillReport> {
    let final_status = live::collect(c)?;
    let all: Vec<&RoundReport> = rounds.iter().collect();
    let failovers: Vec<&RoundReport> = rounds.iter().filter(|r| r.failed_over()).collect();
    let rtos = sorted(&failovers, |r| r.rto_ms);
    let stalls = sorted(&all, |r| r.write_stall_ms);
    let mut per_fault = Vec::new();
    for f in &args.fault {
        let of: Vec<&RoundReport> = rounds.iter().filter(|r| r.fault == f.name()).collect();
        if of.is_empty() || per_fault.iter().any(|s: &FaultSummary| s.fault == f.name()) {
            continue;
        }
        let (rto, stall) = (sorted(&of, |r| r.rto_ms), sorted(&of, |r| r.write_stall_ms));
        per_fault.push(FaultSummary {
            fault: f.name().to_string(),
            rounds: of.len(),
            acknowledged: of.iter().map(|r| r.acknowledged).sum(),
            lost: of.iter().map(|r| r.lost).sum(),
            rto_median_ms: median(&rto),
            rto_worst_ms: rto.last().copied().unwrap_or(0),
            write_stall_median_ms: median(&stall),
            write_stall_worst_ms: stall.last().copied().unwrap_or(0),
            recloned: of.iter().map(|r| r.recloned).sum(),
            standbys_recloned: of.iter().map(|r| r.standbys_recloned.len()).sum(),
        });
    }
    let report = DrillReport {
        cluster: c.name().to_string(),
        faults: args.fault.iter().map(|f| f.to_string()).collect(),
        rto_median_ms: median(&rtos),
        rto_worst_ms: rtos.last().copied().unwrap_or(0),
        write_stall_median_ms: median(&stalls),
        write_stall_worst_ms: stalls.last().copied().unwrap_or(0),
        per_fault,
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
        "{} round(s): acknowledged {}, lost {}, RTO median {} ms, worst {} ms (fault to first acknowledged write on the new primary); \
         write stall median {} ms, worst {} ms",
        report.rounds.len(),
        report.acknowledged_total,
        report.lost_total,
        report.rto_median_ms,
        report.rto_worst_ms,
        report.write_stall_median_ms,
        report.write_stall_worst_ms
    );
    if report.per_fault.len() > 1 {
        for f in &report.per_fault {
            let rto = if f.fault == Fault::SyncStandbyPartition.name() {
                format!(
                    "no failover, commits back after {} ms median",
                    f.rto_median_ms
                )
            } else {
                format!(
                    "RTO median {} ms (worst {})",
                    f.rto_median_ms, f.rto_worst_ms
                )
            };
            say!(
                "  {:<22} {:>4} round(s), acknowledged {}, lost {}, {rto}, stall median {} ms (worst {}), re-cloned {} (failed nodes) and {} (standbys that could not follow)",
                f.fault, f.rounds, f.acknowledged, f.lost,
                f.write_stall_median_ms, f.write_stall_worst_ms, f.recloned, f.standbys_recloned
            );
        }
    }
    Ok(report)
}

/// The verdict first, then the files: a report that cannot be written never
/// hides a loss. `aborted`: a round failed, so the cluster's health at the
/// end is that round's business, not a verdict of the run.
fn conclude(report: &DrillReport, args: &Plan, aborted: bool) -> Result<()> {
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
        match plot::draw(path, report, &args.plot_rounds) {
            Ok(()) => say!("plot written to {}", path.display()),
            Err(e) => write_errors.push(format!("{e:#}")),
        }
    }
    if let Some(path) = &args.report {
        let written = serde_json::to_string_pretty(report)
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
    if !aborted && !args.no_rejoin && !report.healthy {
        bail!("the cluster is not healthy after the drill (see the table above)");
    }
    Ok(())
}

fn print_round(r: &RoundReport) {
    if !r.failed_over() {
        say!(
            "round {} ({}): {} cut off, nothing promoted.\n  acknowledged {}, lost {}, uncertain {} ({} landed, {} not); \
             write stall {} ms, commits flowing again after {} ms; status said why commits waited: {}",
            r.round,
            r.fault,
            r.also_failed.clone().unwrap_or_default(),
            r.acknowledged,
            r.lost,
            r.uncertain,
            r.uncertain_landed,
            r.uncertain_not_landed,
            r.write_stall_ms,
            r.rto_ms,
            match r.status_said_why {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "no stall long enough to ask",
            }
        );
        return;
    }
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
         fault->promoted {} ms (choose {}, fence {}, promote {}), RTO {} ms, write stall {} ms, re-point {} ms{}, {}{}",
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
        r.write_stall_ms,
        r.repoint_ms,
        if r.standbys_recloned.is_empty() {
            String::new()
        } else {
            format!(
                " (re-cloned, could not follow: {})",
                r.standbys_recloned.join(", ")
            )
        },
        match r.sync_commit_ms {
            Some(ms) => format!("synchronous commit {ms} ms"),
            None => "not synchronous until a standby rejoined".to_string(),
        },
        r.rejoin_ms
            .map(|m| format!(", rejoin {m} ms ({})", r.rejoined_by.clone().unwrap_or_default()))
            .unwrap_or_default()
    );
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
