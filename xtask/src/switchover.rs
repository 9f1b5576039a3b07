//! `switchover`: a planned, lossless move of the primary. Checkpoint, stop
//! the primary cleanly (it sends all its WAL to its standbys before it
//! exits), check that the target has replayed the old primary's shutdown
//! checkpoint, promote it, restart the old primary as its standby (no
//! pg_rewind: its history ends before the new timeline begins), re-point
//! the rest, restore the configured `synchronous_standby_names`, and print
//! how long writes were impossible.

use crate::cluster::Cluster;
use crate::ops::container::{self, one_off};
use crate::ops::{live, standby, sync};
use crate::project;
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use clap::Args;
use cluster_config::live::Lsn;
use cluster_config::names::NodeName;
use cluster_config::render::{self, PGDATA};
use std::time::{Duration, Instant};

/// Move the primary to a standby, planned and lossless; print the write downtime.
#[derive(Debug, Args)]
pub struct SwitchoverArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// The standby that becomes the primary
    #[arg(long, value_name = "NODE")]
    pub to: NodeName,
    /// Print the commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for each step, in seconds
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

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

pub fn run(args: &SwitchoverArgs, runner: &dyn Runner) -> Result<()> {
    let path = args.topology.resolve();
    let loaded = project::load_valid(&path)?;
    project::require_node(&loaded, &args.to)?;
    let c = Cluster::connect(&path, loaded, runner)?;
    // Data folders of another major than the image's are refused before
    // anything changes.
    crate::ops::preflight::majors(&c, c.image()?.major())?;
    let timeout = Duration::from_secs(args.timeout);
    let secrets = c.secrets()?;
    let target = args.to.as_str();
    let old = live::find_primary(&c)?.context("no writable primary is running")?;
    if old == target {
        bail!("{target} is already the primary");
    }
    if !runner.dry_run() && !live::connected(&c, &old)?.iter().any(|n| n == target) {
        bail!("{target} is not streaming from {old}: a switchover needs it caught up (see `cargo xtask status`); nothing was changed");
    }
    // A checkpoint now makes the shutdown checkpoint quick.
    c.sql_mut(&old, "CHECKPOINT")?;
    say!("{old}: stopping cleanly (it sends all its WAL to its standbys first)");
    let stopped_at = Instant::now();
    container::stop(&c, &old)?;
    if !runner.dry_run() {
        let out = c
            .runner()
            .run(&one_off(&c, &old, "pg_controldata")?.arg(PGDATA).read_only())?;
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
            container::start(&c, &old)?;
            return Err(e.context("switchover abandoned: nothing was promoted"));
        }
        say!("{target}: has replayed {old}'s shutdown checkpoint ({ckpt}): nothing can be lost");
    }
    let timeline = standby::promote(&c, target, timeout)?;
    let promoted = stopped_at.elapsed();
    let t = c.topology();
    let others: Vec<&str> = t
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| *n != target && *n != old)
        .collect();
    for n in &others {
        standby::repoint(&c, n, target, &secrets, timeout)?;
    }
    // Synchronous commits return again as soon as a standby follows: with
    // other standbys, now; with none, once the old primary follows.
    let mut sync_again = None;
    if !runner.dry_run() && !others.is_empty() {
        let names = sync::narrowed_sync_names(&c, target)?;
        sync::set_sync_names(&c, target, Some(&names))?;
        if !names.is_empty() {
            sync::prove_sync_commit(&c, target, Duration::from_secs(15))?;
            sync_again = Some(stopped_at.elapsed());
        }
    }
    // The old primary follows the new one: its WAL ends at the shutdown
    // checkpoint, before the new timeline begins, so no rewind is needed.
    let settings =
        render::standby_settings(t, c.node(&old)?, target, Some(secrets.replication.expose()));
    c.runner().run(
        &one_off(&c, &old, "tee")?
            .arg(format!("{PGDATA}/postgresql.auto.conf"))
            .stdin(settings),
    )?;
    c.runner()
        .run(&one_off(&c, &old, "touch")?.arg(format!("{PGDATA}/standby.signal")))?;
    if t.replication.slots {
        c.sql_mut(
            target,
            &crate::pg::sql::create_slot(&c.node(&old)?.slot_name()),
        )?;
    }
    container::start(&c, &old)?;
    if runner.dry_run() {
        say!("dry run: nothing changed");
        return Ok(());
    }
    c.wait_ready(&old, timeout)?;
    c.poll(&format!("{old} to stream from {target}"), timeout, || {
        Ok(live::is_streaming(&c, target, &old)?.then_some(()))
    })?;
    standby::ensure_read_only(&c, &old)?;
    sync::restore_sync_names(&c, target)?;
    let commit_ms = sync::prove_sync_commit(&c, target, Duration::from_secs(15))?;
    let sync_again = sync_again.unwrap_or_else(|| stopped_at.elapsed());
    say!(
        "switchover done: {target} is the primary (timeline {timeline}), {old} follows it. \
         Write downtime: {} ms until {target} accepted writes, {} ms until synchronous commits returned (a commit now takes {commit_ms} ms)",
        promoted.as_millis(),
        sync_again.as_millis()
    );
    say_raw!("\n{}", live::table(&live::collect(&c)?));
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
