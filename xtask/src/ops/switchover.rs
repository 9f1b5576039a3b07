//! A planned, lossless move of the primary, written once: checkpoint,
//! stop the primary cleanly (it sends all its WAL to its standbys before it
//! exits), check that the target has replayed the old primary's shutdown
//! checkpoint (or start the old primary again and change nothing), promote
//! it, re-point the rest, restart the old primary as its standby (no
//! pg_rewind: its history ends before the new timeline begins), restore
//! the configured `synchronous_standby_names`, and say how long writes were
//! impossible.

use crate::cluster::Cluster;
use crate::ops::container::{self, one_off};
use crate::ops::journal::{self, Journal, Op, Resume};
use crate::ops::{live, standby, sync};
use anyhow::{bail, Context, Result};
use cluster_config::live::Lsn;
use cluster_config::names::NodeName;
use cluster_config::render::{self, PGDATA};
use std::time::{Duration, Instant};

/// `Latest checkpoint location` from `pg_controldata` output, when the
/// cluster state is a clean shutdown.
pub fn shutdown_checkpoint(controldata: &str) -> Result<Lsn> {
    let field = |name: &str| {
        controldata
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    let state =
        field("Database cluster state:").context("pg_controldata printed no cluster state")?;
    if state != "shut down" {
        bail!("the old primary's data folder is `{state}`, not cleanly shut down");
    }
    field("Latest checkpoint location:")
        .context("pg_controldata printed no checkpoint location")?
        .parse()
        .map_err(anyhow::Error::msg)
}

/// Stops the old primary cleanly and checks that `target` has replayed its
/// shutdown checkpoint: every commit is then on the target. When it has
/// not, the old primary is started again and nothing is promoted.
fn stop_and_check(
    c: &Cluster,
    old: &str,
    target: &str,
    timeout: Duration,
    j: &Journal,
) -> Result<()> {
    // A checkpoint now makes the shutdown checkpoint quick.
    c.sql_mut(old, "CHECKPOINT")?;
    say!("{old}: stopping cleanly (it sends all its WAL to its standbys first)");
    container::stop(c, old)?;
    if c.runner().dry_run() {
        return Ok(());
    }
    let out = c
        .runner()
        .run(&one_off(c, old, "pg_controldata")?.arg(PGDATA).read_only())?;
    let ckpt = shutdown_checkpoint(&out.stdout)?;
    let caught_up = c.poll(
        &format!("{target} to replay {old}'s shutdown checkpoint at {ckpt}"),
        Duration::from_secs(30).min(timeout),
        || {
            Ok((c.sql(
                target,
                &format!("SELECT pg_last_wal_replay_lsn() > '{ckpt}'::pg_lsn"),
            )? == "t")
                .then_some(()))
        },
    );
    if let Err(e) = caught_up {
        say!("{target} did not receive everything; restarting {old} as the primary");
        container::start(c, old)?;
        journal::end(c, j)?;
        return Err(e.context("switchover abandoned: nothing was promoted"));
    }
    say!("{target}: has replayed {old}'s shutdown checkpoint ({ckpt}): nothing can be lost");
    Ok(())
}

/// How far a switchover got, read from the live nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The old primary still accepts writes: nothing to undo.
    Start,
    /// The old primary is stopped and the target not promoted: no node
    /// accepts writes.
    Stopped,
    /// The target accepts writes.
    Promoted,
}

fn writable(c: &Cluster, node: &str) -> Result<bool> {
    Ok(c.probe(node, "SELECT pg_is_in_recovery()")?.as_deref() == Some("f"))
}

/// Where an interrupted switchover from `old` to `target` stopped.
fn phase(c: &Cluster, old: &str, target: &str) -> Result<Phase> {
    if writable(c, target)? {
        return Ok(Phase::Promoted);
    }
    if c.is_running(old)? {
        if writable(c, old)? {
            return Ok(Phase::Start);
        }
        bail!(
            "{old} runs and refuses writes, and {target} is not promoted: see `cargo xtask status`"
        );
    }
    Ok(Phase::Stopped)
}

/// Moves the primary to `target`. A run killed at any point is finished by
/// running it again: the journal names the old primary, and the live nodes
/// say how far it got. Killed with the old primary stopped and the target
/// not yet promoted, the next run promotes the target once it has replayed
/// the old primary's shutdown checkpoint, or starts the old primary again.
pub fn run(c: &Cluster, target: &NodeName, timeout: Duration) -> Result<()> {
    let target = target.as_str();
    let secrets = c.secrets()?;
    let dry = c.runner().dry_run();
    let Some((old, from)) = start_or_resume(c, target, dry)? else {
        return Ok(());
    };
    let j = Journal {
        op: Op::Switchover,
        from: old.clone(),
        to: target.to_string(),
        finished: false,
    };
    journal::begin(c, &j)?;
    let stopped_at = Instant::now();
    match from {
        Phase::Start => stop_and_check(c, &old, target, timeout, &j)?,
        Phase::Stopped => check_stopped(c, &old, target, timeout, &j)?,
        Phase::Promoted => {}
    }
    if from != Phase::Promoted {
        // Before the target is promoted, the stopped old primary can only
        // come back read-only, whoever starts it.
        c.runner()
            .run(&one_off(c, &old, "touch")?.arg(format!("{PGDATA}/standby.signal")))?;
    }
    let timeline = if from == Phase::Promoted {
        live::timeline(c, target)?
    } else {
        standby::promote(c, target, timeout)?
    };
    let promoted = stopped_at.elapsed();
    let sync_again = repoint_the_rest(c, &old, target, &secrets, timeout, stopped_at)?;
    follow_the_new_primary(c, &old, target, &secrets, timeout)?;
    if dry {
        say!("dry run: nothing changed");
        return Ok(());
    }
    sync::restore_sync_names(c, target)?;
    let commit_ms = sync::prove_sync_commit(c, target, Duration::from_secs(15))?;
    journal::end(c, &j)?;
    if from == Phase::Start {
        let sync_again = sync_again.unwrap_or_else(|| stopped_at.elapsed());
        say!(
            "switchover done: {target} is the primary (timeline {timeline}), {old} follows it. \
             Write downtime: {} ms until {target} accepted writes, {} ms until synchronous commits returned (a commit now takes {commit_ms} ms)",
            promoted.as_millis(),
            sync_again.as_millis()
        );
    } else {
        say!("switchover finished: {target} is the primary (timeline {timeline}), {old} follows it (a commit now takes {commit_ms} ms)");
    }
    say_raw!("\n{}", live::table(&live::collect(c)?));
    Ok(())
}

/// The old primary and how far an interrupted run got (`Start` for a new
/// switchover, after its checks); `None` when the last switchover to
/// `target` had finished.
fn start_or_resume(c: &Cluster, target: &str, dry: bool) -> Result<Option<(String, Phase)>> {
    Ok(Some(match journal::check(c, Op::Switchover)? {
        Resume::Interrupted(j) if j.to != target => bail!(
            "the interrupted switchover moves the primary to {}; finish it first: {}",
            j.to,
            j.command(c.path())
        ),
        Resume::Interrupted(j) => {
            let p = if dry {
                Phase::Stopped
            } else {
                phase(c, &j.from, target)?
            };
            say!("{}: the switchover stopped at {p:?}", j.from);
            (j.from, p)
        }
        Resume::Finished(j) if j.to == target && !dry && writable(c, target)? => {
            say!(
                "the last switchover, from {} to {target}, made every change; {target} is the primary: nothing to do",
                j.from
            );
            return Ok(None);
        }
        Resume::Finished(_) | Resume::Fresh => {
            let old = live::find_primary(c)?.context("no writable primary is running")?;
            if old == target {
                bail!("{target} is already the primary");
            }
            if !dry && !live::connected(c, &old)?.iter().any(|n| n == target) {
                bail!("{target} is not streaming from {old}: a switchover needs it caught up (see `cargo xtask status`); nothing was changed");
            }
            (old, Phase::Start)
        }
    }))
}

/// The old primary was stopped by an earlier run: the target is promoted
/// only once it has replayed the shutdown checkpoint; else the old primary
/// is started again, as the primary, and the switchover abandoned.
fn check_stopped(
    c: &Cluster,
    old: &str,
    target: &str,
    timeout: Duration,
    j: &Journal,
) -> Result<()> {
    if c.runner().dry_run() {
        return Ok(());
    }
    let out = c
        .runner()
        .run(&one_off(c, old, "pg_controldata")?.arg(PGDATA).read_only())?;
    let caught_up = shutdown_checkpoint(&out.stdout).and_then(|ckpt| {
        c.poll(
            &format!("{target} to replay {old}'s shutdown checkpoint at {ckpt}"),
            Duration::from_secs(30).min(timeout),
            || {
                Ok((c.sql(
                    target,
                    &format!("SELECT pg_last_wal_replay_lsn() > '{ckpt}'::pg_lsn"),
                )? == "t")
                    .then_some(ckpt))
            },
        )
    });
    match caught_up {
        Ok(ckpt) => {
            say!(
                "{target}: has replayed {old}'s shutdown checkpoint ({ckpt}): nothing can be lost"
            );
            Ok(())
        }
        Err(e) => {
            say!(
                "{target} did not receive everything ({e:#}); starting {old} again as the primary"
            );
            c.runner().run(
                &one_off(c, old, "rm")?
                    .args(["-f".to_string(), format!("{PGDATA}/standby.signal")]),
            )?;
            container::start(c, old)?;
            journal::end(c, j)?;
            bail!("switchover abandoned: {old} is the primary again and nothing was promoted")
        }
    }
}

/// Re-points every other standby at `target` and narrows its list to them;
/// returns when synchronous commits came back, when some standby follows.
fn repoint_the_rest(
    c: &Cluster,
    old: &str,
    target: &str,
    secrets: &crate::secrets::Secrets,
    timeout: Duration,
    stopped_at: Instant,
) -> Result<Option<Duration>> {
    let others: Vec<&str> = c
        .topology()
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| *n != target && *n != old)
        .collect();
    for n in &others {
        standby::repoint(c, n, target, secrets, timeout)?;
    }
    // Synchronous commits return again as soon as a standby follows: with
    // other standbys, now; with none, once the old primary follows.
    if c.runner().dry_run() || others.is_empty() {
        return Ok(None);
    }
    let names = sync::narrowed_sync_names(c, target)?;
    sync::set_sync_names(c, target, &names)?;
    if names == sync::SyncNames::Narrowed(None) {
        return Ok(None);
    }
    sync::prove_sync_commit(c, target, Duration::from_secs(15))?;
    Ok(Some(stopped_at.elapsed()))
}

/// The old primary follows the new one: its WAL ends at the shutdown
/// checkpoint, before the new timeline begins, so no rewind is needed.
fn follow_the_new_primary(
    c: &Cluster,
    old: &str,
    target: &str,
    secrets: &crate::secrets::Secrets,
    timeout: Duration,
) -> Result<()> {
    let t = c.topology();
    let settings =
        render::standby_settings(t, c.node(old)?, target, Some(secrets.replication.expose()));
    // Replaced by a rename: a run killed here leaves the old file or the new.
    c.runner().run(
        &one_off(c, old, "sh")?
            .args([
                "-c",
                "cat > \"$1.pgrepl\" && mv -f \"$1.pgrepl\" \"$1\"",
                "pgrepl-write",
            ])
            .arg(format!("{PGDATA}/postgresql.auto.conf"))
            .stdin(settings),
    )?;
    c.runner()
        .run(&one_off(c, old, "touch")?.arg(format!("{PGDATA}/standby.signal")))?;
    if t.replication.slots {
        c.sql_mut(
            target,
            &crate::pg::sql::create_slot(&c.node(old)?.slot_name()),
        )?;
    }
    container::start(c, old)?;
    if c.runner().dry_run() {
        return Ok(());
    }
    c.wait_ready(old, timeout)?;
    c.poll(&format!("{old} to stream from {target}"), timeout, || {
        Ok(live::is_streaming(c, target, old)?.then_some(()))
    })?;
    standby::ensure_read_only(c, old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shutdown_checkpoint() {
        let out = "pg_control version number:            1300\n\
                   Database cluster state:               shut down\n\
                   Latest checkpoint location:           0/5000028\n";
        assert_eq!(shutdown_checkpoint(out).unwrap(), Lsn(0x5000028));
        let crashed = out.replace("shut down", "in production");
        assert!(shutdown_checkpoint(&crashed)
            .unwrap_err()
            .to_string()
            .contains("not cleanly shut down"));
    }
}
