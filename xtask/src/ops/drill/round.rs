//! One round of the drill with this tool's own engine: a fault that fails
//! the primary and the failover that follows (every fault but one), or a
//! fault that stalls commits without failing the primary
//! (`sync-standby-partition`), measured and healed.

use super::fault::{self, Fault};
use super::history::{Nemesis, Read};
use super::ledger::{self, Ledger};
use super::writer::{self, Outcome, Writer};
use super::{plot, Plan, RoundReport};
use crate::cluster::Cluster;
use crate::ops::container::{self, port_of};
use crate::ops::failover::{self, Request};
use crate::ops::live;
use crate::ops::standby::rejoin;
use crate::ops::sync::restore_sync_names;
use crate::secrets::Secrets;
use crate::wait::ms;
use anyhow::{bail, Context, Result};
use cluster_config::live::{LiveRole, SyncState};
use cluster_config::status::SILENT_AFTER_MS;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A round with this tool's engine.
pub fn run(
    c: &Cluster,
    secrets: &Secrets,
    args: &Plan,
    run_id: &str,
    round: u32,
    fault: Fault,
) -> Result<RoundReport> {
    let mut report = RoundReport {
        round,
        engine: "pgrepl".into(),
        fault: fault.to_string(),
        ..Default::default()
    };
    let rows = live::collect(c)?;
    if !live::healthy(&rows) {
        bail!(
            "the cluster is not healthy; the drill needs a healthy cluster to prove anything:\n{}",
            live::table(&rows)
        );
    }
    let old = live::find_primary(c)?.context("no writable primary")?;
    if fault == Fault::SyncStandbyPartition {
        stall_round(c, secrets, args, run_id, &old, &rows, &mut report)?;
    } else {
        failover_round(c, secrets, args, run_id, &old, &rows, fault, &mut report)?;
    }
    report.writable_nodes = live::collect(c)?
        .iter()
        .filter(|r| r.role == LiveRole::Primary)
        .map(|r| r.node.clone())
        .collect();
    Ok(report)
}

/// The primary fails; the failover runs the operations the `failover`
/// command runs; the writer resumes on the new primary; the failed nodes
/// rejoin.
#[allow(clippy::too_many_arguments)]
fn failover_round(
    c: &Cluster,
    secrets: &Secrets,
    args: &Plan,
    run_id: &str,
    old: &str,
    rows: &[live::NodeStatus],
    fault: Fault,
    report: &mut RoundReport,
) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let round = report.round;
    report.failed_primary = old.to_string();
    let enforced = live::enforced_sync_names(c, old)?;
    // The writer is joined when it goes out of scope, on every path out.
    let (writer, old_port) = warm_writer(c, secrets, args, run_id, round, old)?;
    check_interrupt(c)?;
    let fr = fault::Round {
        c,
        old,
        writer: &writer,
        old_port,
        timeout,
    };
    let mut down: BTreeSet<String> = BTreeSet::new();
    let mut states = live::sync_states(rows);
    fault.before(&fr, &mut states, &mut down, report)?;
    say!("failing the primary {old} ({fault}) under write load");
    let crashed_at = Instant::now();
    report.ops.nemesis.push(Nemesis {
        at: crashed_at,
        f: "fault",
        value: json!({"fault": fault.name(), "node": old, "also": report.also_failed}),
    });
    fault.fail_primary(&fr)?;
    down.insert(old.to_string());
    let done = failover::run(
        c,
        secrets,
        &Request {
            fence: vec![old.to_string()],
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
    record_failover(report, &done, crashed_at);
    let new = done.choice.node.clone();
    check_interrupt(c)?;
    fault.after_promotion(&fr, &new, report)?;
    observe_new_primary(
        c,
        report,
        writer,
        &new,
        run_id,
        Marks {
            fault: crashed_at,
            promoted: done.promoted_at,
            repointed: done.promoted_at + done.repoint,
        },
        timeout,
    )?;
    if !args.no_rejoin {
        rejoin_failed(c, secrets, &down, &new, report, timeout)?;
    }
    Ok(())
}

/// What the failover did, into the round's report and history.
fn record_failover(report: &mut RoundReport, done: &failover::Done, crashed_at: Instant) {
    let new = done.choice.node.clone();
    report.promoted = new.clone();
    report.promoted_because = done.choice.why.clone();
    report.new_timeline = done.timeline;
    report.crash_to_promoted_ms = ms(done.promoted_at - crashed_at);
    [report.choose_ms, report.fence_ms, report.promote_ms] = done.steps_ms;
    report.repoint_ms = ms(done.repoint);
    report.standbys_recloned = done.recloned.clone();
    report.sync_commit_ms = done.sync_commit_ms;
    report.synchronous_standby_names = done.sync_names.clone();
    report.ops.nemesis.push(Nemesis {
        at: done.promoted_at,
        f: "promoted",
        value: json!({"node": new, "timeline": done.timeline}),
    });
}

/// The synchronous standby is cut off the network while the primary stays
/// up: commits wait until the primary's WAL sender gives up on it
/// (`wal_sender_timeout`) and another standby takes over. Measures that
/// stall, checks that `status` says why commits wait while they do, puts
/// the standby back and checks that nothing acknowledged was lost.
fn stall_round(
    c: &Cluster,
    secrets: &Secrets,
    args: &Plan,
    run_id: &str,
    primary: &str,
    rows: &[live::NodeStatus],
    report: &mut RoundReport,
) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let states = live::sync_states(rows);
    let victim = [SyncState::Sync, SyncState::Quorum]
        .iter()
        .find_map(|want| states.iter().find(|(_, s)| s == want))
        .map(|(n, _)| n.clone())
        .with_context(|| {
            format!("the sync-standby-partition fault needs a synchronous standby, and {primary} has none (see `cargo xtask status`)")
        })?;
    report.also_failed = Some(victim.clone());
    let (writer, port) = warm_writer(c, secrets, args, run_id, report.round, primary)?;
    check_interrupt(c)?;
    say!("cutting the synchronous standby {victim} off the network under write load ({primary} stays up)");
    let fault_at = Instant::now();
    report.ops.nemesis.push(Nemesis {
        at: fault_at,
        f: "fault",
        value: json!({"fault": Fault::SyncStandbyPartition.name(), "node": victim}),
    });
    container::disconnect(c, &victim)?;
    let waited = wait_out_the_stall(c, &writer, primary, &victim, port, fault_at, timeout);
    // Back on the network whatever happened: a standby left cut off would
    // stall the next round.
    let healed_at = Instant::now();
    container::reconnect(c, &victim)?;
    report.ops.nemesis.push(Nemesis {
        at: healed_at,
        f: "healed",
        value: json!({"node": victim}),
    });
    let (explained, resumed_at) = waited?;
    report.status_said_why = explained;
    say!("{victim}: back on the network; waiting for it to stream again");
    c.poll("every standby to stream again", timeout, || {
        Ok(live::healthy(&live::collect(c)?).then_some(()))
    })?;
    let events = writer.finish();
    let end = Instant::now();
    report.write_stall_ms = ms(ledger::write_stall(&events, fault_at, end));
    report.rto_ms = ms(resumed_at.saturating_duration_since(fault_at));
    report.timeline = timeline_of(&events, fault_at, None, None, resumed_at);
    account(c, report, events, primary, run_id)
}

/// Polls until commits flow again after the partition: the primary no
/// longer counts `victim` as streaming, and the writer has 20 acknowledged
/// commits since. Meanwhile `status` is sampled, from the moment it can
/// know (the standby silent for [`SILENT_AFTER_MS`] while WAL waits for it)
/// until the primary drops the standby: whether it says why commits wait.
/// On a busy machine one sample can take a second, and the window closes at
/// `wal_sender_timeout`, so it is sampled until it says why or the window
/// closes. `None`: no sample fell inside the window.
fn wait_out_the_stall(
    c: &Cluster,
    writer: &Writer,
    primary: &str,
    victim: &str,
    port: u16,
    fault_at: Instant,
    timeout: Duration,
) -> Result<(Option<bool>, Instant)> {
    let mut explained = None;
    let mut last_table = None;
    let mut dropped: Option<Instant> = None;
    let can_know = Duration::from_millis(SILENT_AFTER_MS.unsigned_abs() + 300);
    // wal_sender_timeout may be long (60 s by default): the wait allows it.
    let bound = timeout.max(Duration::from_secs(180));
    let resumed = c.poll(
        "commits to resume without the cut-off standby",
        bound,
        || {
            let since_ack = writer.since_last_acknowledged(port);
            if dropped.is_none() && explained != Some(true) && since_ack >= can_know {
                let rows = live::collect(c)?;
                let why = rows.iter().find(|r| r.node == primary).is_some_and(|r| {
                    r.problems
                        .iter()
                        .any(|p| p.starts_with("synchronous commits wait"))
                });
                // A sample counts only if the primary still held the
                // standby when it was taken.
                let still_held = live::replication(c, primary)?
                    .iter()
                    .any(|r| r.name == victim && r.state == "streaming");
                if why {
                    say!(
                        "commits wait for {:.1} s; status says why",
                        since_ack.as_secs_f64()
                    );
                    explained = Some(true);
                } else if still_held {
                    explained = Some(false);
                    last_table = Some((since_ack, live::table(&rows)));
                }
            }
            let Some(at) = dropped else {
                let streaming = live::replication(c, primary)?
                    .iter()
                    .any(|r| r.name == victim && r.state == "streaming");
                if !streaming {
                    say!(
                        "{primary} dropped {victim} {} ms after the cut",
                        ms(fault_at.elapsed())
                    );
                    dropped = Some(Instant::now());
                }
                return Ok(None);
            };
            Ok((writer.acknowledged_on(port, at) >= 20).then(Instant::now))
        },
    )?;
    if explained == Some(false) {
        if let Some((waited, table)) = last_table {
            say!(
                "commits waited {:.1} s and status did not say why:\n{table}",
                waited.as_secs_f64()
            );
        }
    }
    Ok((explained, resumed))
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
    c.sql_mut(primary, &writer::create_table_sql())?;
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
pub(crate) struct Marks {
    pub fault: Instant,
    pub promoted: Instant,
    pub repointed: Instant,
}

/// Moves the writer to the new primary, waits for 20 acknowledged commits
/// there, stops it, and fills in the round's RTO, write stall, timeline and
/// accounts from every attempt and the ids the new primary holds.
pub(crate) fn observe_new_primary(
    c: &Cluster,
    report: &mut RoundReport,
    writer: Writer,
    new: &str,
    run_id: &str,
    marks: Marks,
    timeout: Duration,
) -> Result<()> {
    let new_port = port_of(c, new)?;
    writer.point_at(Some(new_port));
    c.poll("acknowledged writes on the new primary", timeout, || {
        Ok((writer.acknowledged_on(new_port, marks.promoted) >= 20).then_some(()))
    })?;
    let events = writer.finish();
    let end = Instant::now();
    let first_new = events
        .iter()
        .filter(|e| e.outcome == Outcome::Acknowledged && e.port == new_port && e.at > marks.fault)
        .map(|e| e.at)
        .min()
        .context("no acknowledged write on the new primary")?;
    report.rto_ms = ms(first_new - marks.fault);
    report.write_stall_ms = ms(ledger::write_stall(&events, marks.fault, end));
    report.timeline = timeline_of(
        &events,
        marks.fault,
        Some(marks.promoted),
        Some(marks.repointed),
        first_new,
    );
    report.cnpg_failover_ms = cnpg_measure(c, new, run_id, report.round)?;
    account(c, report, events, new, run_id)
}

/// The round's writes and marks for `--plot`, in ms from the fault.
fn timeline_of(
    events: &[writer::Event],
    fault: Instant,
    promoted: Option<Instant>,
    repointed: Option<Instant>,
    first_write: Instant,
) -> plot::Timeline {
    let rel = |t: Instant| {
        t.saturating_duration_since(fault).as_secs_f64() * 1000.0
            - fault.saturating_duration_since(t).as_secs_f64() * 1000.0
    };
    plot::Timeline {
        writes: events
            .iter()
            .map(|e| plot::Write {
                at_ms: rel(e.at),
                latency_ms: e.latency.as_secs_f64() * 1000.0,
                acknowledged: e.outcome == Outcome::Acknowledged,
            })
            .collect(),
        promoted_ms: promoted.map(rel),
        repointed_ms: repointed.map(rel),
        first_write_ms: rel(first_write),
    }
}

/// The ledger of the round against the ids `primary` holds, and the final
/// read of the history.
fn account(
    c: &Cluster,
    report: &mut RoundReport,
    events: Vec<writer::Event>,
    primary: &str,
    run_id: &str,
) -> Result<()> {
    let invoked = Instant::now();
    let present = ledger::present_ids(c, primary, run_id, report.round)?;
    let answered = Instant::now();
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
    report.ops.read = Some(Read {
        node: primary.to_string(),
        timeline: live::timeline(c, primary)?,
        ids: present
            .iter()
            .flat_map(|(id, n)| std::iter::repeat_n(*id, *n))
            .collect(),
        invoked: Some(invoked),
        answered: Some(answered),
    });
    report.ops.writes = events;
    Ok(())
}

/// CloudNativePG's failover measure: from the last row written on the old
/// timeline to the first on the new one, by the rows' own
/// `clock_timestamp()` and timeline, as the new primary holds them.
fn cnpg_measure(c: &Cluster, primary: &str, run_id: &str, round: u32) -> Result<Option<u64>> {
    let rows = c.sql(
        primary,
        &format!(
            "SELECT tli, (extract(epoch FROM min(at)) * 1000)::bigint, (extract(epoch FROM max(at)) * 1000)::bigint \
             FROM {} WHERE run = {} AND round = {round} AND tli IS NOT NULL GROUP BY tli ORDER BY tli",
            writer::DRILL_TABLE,
            crate::pg::sql::literal(run_id)
        ),
    )?;
    let spans: Vec<(i64, i64)> = rows
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            Some((
                f.get(1)?.trim().parse().ok()?,
                f.get(2)?.trim().parse().ok()?,
            ))
        })
        .collect();
    Ok(match spans.as_slice() {
        [.., (_, old_last), (new_first, _)] => {
            Some(new_first.saturating_sub(*old_last).max(0) as u64)
        }
        _ => None,
    })
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
    let expected = live::expected_sync_states(c.topology(), new);
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

pub(crate) fn check_interrupt(c: &Cluster) -> Result<()> {
    if c.interrupt().is_set() {
        print_state(c);
        bail!("interrupted: the writer is stopped and the cluster is as shown above");
    }
    Ok(())
}

pub(crate) fn print_state(c: &Cluster) {
    match live::collect(c) {
        Ok(rows) => warn!("\n{}", live::table(&rows)),
        Err(e) => warn!("(could not read the cluster's state: {e:#})"),
    }
}
