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
fn stop_and_check(c: &Cluster, old: &str, target: &str, timeout: Duration) -> Result<()> {
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
        return Err(e.context("switchover abandoned: nothing was promoted"));
    }
    say!("{target}: has replayed {old}'s shutdown checkpoint ({ckpt}): nothing can be lost");
    Ok(())
}

/// Moves the primary to `target`.
pub fn run(c: &Cluster, target: &NodeName, timeout: Duration) -> Result<()> {
    let target = target.as_str();
    let secrets = c.secrets()?;
    let old = live::find_primary(c)?.context("no writable primary is running")?;
    if old == target {
        bail!("{target} is already the primary");
    }
    if !c.runner().dry_run() && !live::connected(c, &old)?.iter().any(|n| n == target) {
        bail!("{target} is not streaming from {old}: a switchover needs it caught up (see `cargo xtask status`); nothing was changed");
    }
    let stopped_at = Instant::now();
    stop_and_check(c, &old, target, timeout)?;
    let timeline = standby::promote(c, target, timeout)?;
    let promoted = stopped_at.elapsed();
    let t = c.topology();
    let others: Vec<&str> = t
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| *n != target && *n != old)
        .collect();
    for n in &others {
        standby::repoint(c, n, target, &secrets, timeout)?;
    }
    // Synchronous commits return again as soon as a standby follows: with
    // other standbys, now; with none, once the old primary follows.
    let mut sync_again = None;
    if !c.runner().dry_run() && !others.is_empty() {
        let names = sync::narrowed_sync_names(c, target)?;
        sync::set_sync_names(c, target, &names)?;
        if names != sync::SyncNames::Narrowed(None) {
            sync::prove_sync_commit(c, target, Duration::from_secs(15))?;
            sync_again = Some(stopped_at.elapsed());
        }
    }
    // The old primary follows the new one: its WAL ends at the shutdown
    // checkpoint, before the new timeline begins, so no rewind is needed.
    let settings =
        render::standby_settings(t, c.node(&old)?, target, Some(secrets.replication.expose()));
    c.runner().run(
        &one_off(c, &old, "tee")?
            .arg(format!("{PGDATA}/postgresql.auto.conf"))
            .stdin(settings),
    )?;
    c.runner()
        .run(&one_off(c, &old, "touch")?.arg(format!("{PGDATA}/standby.signal")))?;
    if t.replication.slots {
        c.sql_mut(
            target,
            &crate::pg::sql::create_slot(&c.node(&old)?.slot_name()),
        )?;
    }
    container::start(c, &old)?;
    if c.runner().dry_run() {
        say!("dry run: nothing changed");
        return Ok(());
    }
    c.wait_ready(&old, timeout)?;
    c.poll(&format!("{old} to stream from {target}"), timeout, || {
        Ok(live::is_streaming(c, target, &old)?.then_some(()))
    })?;
    standby::ensure_read_only(c, &old)?;
    sync::restore_sync_names(c, target)?;
    let commit_ms = sync::prove_sync_commit(c, target, Duration::from_secs(15))?;
    let sync_again = sync_again.unwrap_or_else(|| stopped_at.elapsed());
    say!(
        "switchover done: {target} is the primary (timeline {timeline}), {old} follows it. \
         Write downtime: {} ms until {target} accepted writes, {} ms until synchronous commits returned (a commit now takes {commit_ms} ms)",
        promoted.as_millis(),
        sync_again.as_millis()
    );
    say_raw!("\n{}", live::table(&live::collect(c)?));
    Ok(())
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
