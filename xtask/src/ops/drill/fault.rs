//! The faults a drill injects into the primary (and around it). Each fault
//! knows what goes before the primary fails, how the primary fails, what
//! to put back if the failover does not happen, and what a supervisor or
//! the network does once a standby is promoted.

use super::writer::{Outcome, Writer};
use super::RoundReport;
use crate::cluster::Cluster;
use crate::ops::container;
use crate::ops::standby::ensure_read_only;
use anyhow::{bail, Context, Result};
use cluster_config::live::SyncState;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How the primary fails in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    /// The primary's container is frozen (`docker pause`) under load: alive,
    /// holding its connections, answering nothing. The failover must not
    /// hang on it and fences it (a frozen container can be killed) before
    /// promoting; thawed afterwards, it stays down.
    Freeze,
    /// The synchronous standby is cut off the network while the primary
    /// stays up: nothing is promoted; commits stall until the primary's WAL
    /// sender gives up on it (`wal_sender_timeout`). The round measures the
    /// stall and puts the standby back.
    SyncStandbyPartition,
}

impl Fault {
    /// Every fault, in the order the command line lists them.
    #[cfg(test)]
    pub const ALL: [Fault; 8] = [
        Fault::Crash,
        Fault::Stop,
        Fault::SyncStandbyFirst,
        Fault::Partition,
        Fault::RestartOldPrimary,
        Fault::CancelWait,
        Fault::Freeze,
        Fault::SyncStandbyPartition,
    ];

    /// The fault's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Crash => "crash",
            Fault::Stop => "stop",
            Fault::SyncStandbyFirst => "sync-standby-first",
            Fault::Partition => "partition",
            Fault::RestartOldPrimary => "restart-old-primary",
            Fault::CancelWait => "cancel-wait",
            Fault::Freeze => "freeze",
            Fault::SyncStandbyPartition => "sync-standby-partition",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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

/// What a fault works with in its round.
pub struct Round<'a, 'r> {
    pub c: &'a Cluster<'r>,
    /// The primary that fails.
    pub old: &'a str,
    pub writer: &'a Writer,
    pub old_port: u16,
    pub timeout: Duration,
}

impl Fault {
    /// What goes before the primary fails: the synchronous standby
    /// (`sync-standby-first`, then `states` are those after the potential
    /// standby took over), or paused standbys and cancelled waits
    /// (`cancel-wait`). Nodes failed here join `down`.
    pub fn before(
        self,
        r: &Round,
        states: &mut Vec<(String, SyncState)>,
        down: &mut BTreeSet<String>,
        report: &mut RoundReport,
    ) -> Result<()> {
        let (c, old) = (r.c, r.old);
        match self {
            Fault::SyncStandbyFirst => {
                let victim = states
                    .iter()
                    .find(|(_, s)| *s == SyncState::Sync)
                    .map(|(n, _)| n.clone())
                    .context("no synchronous standby to fail first")?;
                if !states
                    .iter()
                    .any(|(_, s)| matches!(s, SyncState::Potential | SyncState::Quorum))
                {
                    bail!(
                        "the sync-standby-first fault needs a potential standby to take over from {victim}, and {old}'s \
                         synchronous_standby_names leaves none (see `cargo xtask status`)"
                    );
                }
                say!("failing the synchronous standby {victim} first");
                container::kill(c, &victim)?;
                down.insert(victim.clone());
                report.also_failed = Some(victim.clone());
                // Commits go on once the potential standby has become synchronous.
                let mark = Instant::now();
                let took_over = c.poll(
                    "a potential standby to take over as synchronous",
                    r.timeout,
                    || {
                        let now = crate::ops::live::replication(c, old)?;
                        Ok((now.iter().any(|x| x.sync_state == Some(SyncState::Sync))
                            && r.writer.acknowledged_on(r.old_port, mark) >= 20)
                            .then_some(now))
                    },
                );
                match took_over {
                    Ok(now) => {
                        *states = now
                            .into_iter()
                            .filter_map(|x| x.sync_state.map(|s| (x.name, s)))
                            .collect();
                        Ok(())
                    }
                    Err(e) => {
                        say!("restarting {victim}");
                        container::start(c, &victim)?;
                        Err(e)
                    }
                }
            }
            Fault::CancelWait => {
                say!("pausing the standbys and cancelling the writer's synchronous waits on {old}");
                pause_others(c, old, true)?;
                let mark = Instant::now();
                let cancelled = cancel_sync_waits(c, old, r.timeout, || {
                    r.writer.count(Outcome::CancelledWait, mark) >= 5
                });
                if let Err(e) = cancelled {
                    pause_others(c, old, false)?;
                    return Err(e);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The primary's own failure, and what follows it at once.
    pub fn fail_primary(self, r: &Round) -> Result<()> {
        match self {
            Fault::Stop => container::stop(r.c, r.old)?,
            Fault::Partition => container::disconnect(r.c, r.old)?,
            Fault::Freeze => container::pause(r.c, r.old, true)?,
            Fault::SyncStandbyPartition => {
                bail!("sync-standby-partition fails no primary: its round is its own")
            }
            _ => container::kill(r.c, r.old)?,
        }
        r.writer.point_at(None);
        if self == Fault::CancelWait {
            pause_others(r.c, r.old, false)?;
        }
        Ok(())
    }

    /// When the failover did not happen: what the fault took away goes
    /// back where it can.
    pub fn heal(self, r: &Round) {
        match self {
            Fault::Partition => {
                let _ = container::reconnect(r.c, r.old);
            }
            Fault::Freeze => {
                let _ = container::pause(r.c, r.old, false);
            }
            _ => {}
        }
    }

    /// What a supervisor or the network does once `new` is promoted.
    pub fn after_promotion(self, r: &Round, new: &str, report: &mut RoundReport) -> Result<()> {
        let (c, old) = (r.c, r.old);
        match self {
            Fault::Partition => {
                say!("{old}: back on the network (it was fenced)");
                container::reconnect(c, old)?;
            }
            Fault::Freeze => {
                // The fence killed it frozen; a thaw finds nothing to run.
                let paused = c.runner().run_unchecked(
                    &c.docker()
                        .cmd()
                        .args(["inspect", "--format", "{{.State.Status}}"])
                        .arg(container::id_of(c, old)?)
                        .read_only(),
                )?;
                let state = paused.stdout.trim().to_string();
                if state == "paused" {
                    container::pause(c, old, false)?;
                    bail!("{old} was still frozen after the failover to {new}: the fence did not stop it");
                }
                say!("{old}: fenced while frozen (its container is {state})");
            }
            Fault::RestartOldPrimary => {
                say!("{old}: started again, as a supervisor would");
                let id = c
                    .container(old)?
                    .context("the old primary has no container")?;
                c.runner().run(&c.docker().cmd().args(["start", &id]))?;
                c.wait_ready(old, r.timeout)?;
                let in_recovery = c.sql(old, "SELECT pg_is_in_recovery()")? == "t";
                let read_only = in_recovery && ensure_read_only(c, old).is_ok();
                report.restarted_read_only = Some(read_only);
                if !read_only {
                    bail!("{old} came back writable after the failover to {new}");
                }
                say!("{old}: it came back read-only (standby.signal from the fence)");
            }
            _ => {}
        }
        Ok(())
    }
}
