//! The faults a drill injects into the primary (and around it).

use crate::cluster::Cluster;
use crate::ops::container;
use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;
use std::time::Duration;

/// How the primary fails in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// `docker kill`: no shutdown at all.
    Crash,
    /// A clean shutdown (`docker compose stop`): it sends its WAL first.
    Stop,
    /// The synchronous standby is killed first; the potential one takes
    /// over; then the primary is killed.
    SyncStandbyFirst,
    /// The primary is cut off the cluster network and stays alive: no
    /// commit can be acknowledged there; it is fenced by the failover.
    Partition,
    /// The killed primary's container is started again right after the
    /// promotion, as a process supervisor would: it must come back
    /// read-only.
    RestartOldPrimary,
    /// The writer's sessions are cancelled (`pg_cancel_backend`) while they
    /// wait for the standbys (paused with `docker pause`): PostgreSQL
    /// commits them locally and returns success with a warning. They are
    /// not acknowledged commits; the report shows how many survived.
    CancelWait,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_possible_value().expect("every fault has a name");
        f.write_str(v.get_name())
    }
}

/// Cancels the writer's sessions that wait for synchronous replication on
/// `primary` until `enough` returns true or `timeout` passes.
pub fn cancel_sync_waits(
    c: &Cluster,
    primary: &str,
    timeout: Duration,
    mut enough: impl FnMut() -> bool,
) -> Result<()> {
    c.poll("cancelled synchronous waits", timeout, || {
        c.sql_mut(
            primary,
            "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'pgrepl-drill' AND wait_event = 'SyncRep'",
        )?;
        Ok(enough().then_some(()))
    })
}

/// Pauses or thaws every node but `except`.
pub fn pause_others(c: &Cluster, except: &str, paused: bool) -> Result<()> {
    for n in &c.topology().nodes {
        if n.name() != except && c.is_running(n.name())? {
            container::pause(c, n.name(), paused)?;
        }
    }
    Ok(())
}
