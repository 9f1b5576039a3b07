//! Failing over, written once for the `failover` command and the drill:
//! fence the failed primary, choose the standby that holds every
//! acknowledged commit (or refuse), promote it, re-point the others, narrow
//! `synchronous_standby_names` to the standbys connected now, and prove one
//! synchronous commit.

use super::container;
use super::live::{self, NodeStatus};
use super::standby::{promote, repoint};
use super::sync::{narrowed_sync_names, prove_sync_commit, set_sync_names};
use crate::cluster::{ms, Cluster, Secrets};
use anyhow::{bail, Result};
use cluster_config::live::{
    guaranteed, guaranteed_worst_case, Guarantee, LiveRole, Lsn, SyncState,
};
use cluster_config::syncrep::SyncStandbyNames;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What a failover is asked to do.
pub struct Request<'a> {
    /// The failed or abandoned primary: fenced before anything is promoted.
    pub fence: Vec<String>,
    /// Every node known down (the fenced ones included).
    pub down: BTreeSet<String>,
    /// `sync_state` of each standby when the primary failed, when known
    /// (the drill reads it just before the fault; the `failover` command
    /// reads it from a primary that is still reachable).
    pub states: Option<Vec<(String, SyncState)>>,
    /// The `synchronous_standby_names` the failed primary enforced.
    pub enforced: Option<SyncStandbyNames>,
    /// `--to`: the standby the user wants promoted.
    pub to: Option<&'a str>,
    /// `--allow-data-loss`: promote even when no reachable standby is
    /// guaranteed to hold every acknowledged commit.
    pub allow_data_loss: bool,
    pub timeout: Duration,
    /// Called with the new primary's name once it accepts writes, while
    /// the other standbys are still being re-pointed (the drill's writer
    /// moves over then: its first commits wait for a standby, not for the
    /// rest of the failover).
    pub on_promoted: Option<&'a (dyn Fn(&str) + Sync)>,
}

/// The standby to promote and why.
#[derive(Debug, Clone)]
pub struct Choice {
    pub node: String,
    pub why: String,
    /// Whether it is guaranteed to hold every acknowledged commit.
    pub guaranteed: bool,
}

/// What a failover did, with when each step ended.
#[derive(Debug, Clone)]
pub struct Done {
    pub choice: Choice,
    pub timeline: u32,
    pub promoted_at: Instant,
    /// Reading every node's state and choosing, fencing, promoting.
    pub steps_ms: [u64; 3],
    pub repoint: Duration,
    pub sync_names: String,
    pub sync_commit_ms: Option<u64>,
}

/// Chooses the standby to promote among the reachable ones.
pub fn choose(c: &Cluster, req: &Request) -> Result<Choice> {
    let rows = live::collect(c)?;
    let candidates: Vec<&NodeStatus> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Standby && !req.down.contains(&r.node))
        .collect();
    if candidates.is_empty() {
        bail!("no reachable standby to promote");
    }
    // Every node but the failed primary was a standby of it (a primary
    // ignores its own name in synchronous_standby_names).
    let standbys: Vec<&str> = c
        .topology()
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| !req.fence.iter().any(|f| f == n))
        .collect();
    let reachable: Vec<&str> = candidates.iter().map(|r| r.node.as_str()).collect();
    let guarantee = match &req.states {
        Some(states) => guaranteed(req.enforced.as_ref(), &standbys, states, &reachable),
        None => guaranteed_worst_case(req.enforced.as_ref(), &standbys, &reachable),
    };
    let pos = |r: &NodeStatus| r.wal_position().unwrap_or(Lsn(0));
    let positions: Vec<String> = candidates
        .iter()
        .map(|r| format!("{} received {}", r.node, pos(r)))
        .collect();
    let best = candidates.iter().map(|r| pos(r)).max().unwrap_or(Lsn(0));
    let holders: Vec<String> = match &guarantee {
        Guarantee::Holders(h) => h.clone(),
        Guarantee::None(_) => vec![],
    };
    // What a holder of every acknowledged commit has received: the most any
    // of them has (under ANY n, only the most advanced holds them all).
    let needed = candidates
        .iter()
        .filter(|r| holders.contains(&r.node))
        .map(|r| pos(r))
        .max();
    let pick = match req.to {
        Some(to) => {
            let Some(r) = candidates.iter().find(|r| r.node == to) else {
                bail!(
                    "--to {to}: it is not a reachable standby (reachable: {})",
                    reachable.join(", ")
                );
            };
            r
        }
        None => {
            // The furthest ahead; among equals the one that was synchronous.
            let ahead: Vec<&&NodeStatus> = candidates.iter().filter(|r| pos(r) == best).collect();
            ahead
                .iter()
                .find(|r| {
                    req.states.as_ref().is_some_and(|s| {
                        s.iter()
                            .any(|(n, st)| n == &r.node && *st == SyncState::Sync)
                    })
                })
                .or(ahead.first())
                .copied()
                .copied()
                .expect("candidates is not empty")
        }
    };
    let ok = needed.is_some_and(|n| pos(pick) >= n);
    let reason = match (&guarantee, ok) {
        (Guarantee::Holders(_), true) => format!(
            "it holds every acknowledged commit ({}; guaranteed by {})",
            positions.join(", "),
            holders.join(", ")
        ),
        (Guarantee::Holders(_), false) => format!(
            "{} has received only {}, while {} hold every acknowledged commit up to {}",
            pick.node,
            pos(pick),
            holders.join(", "),
            needed.unwrap_or(Lsn(0))
        ),
        (Guarantee::None(why), _) => why.clone(),
    };
    if !ok && !req.allow_data_loss {
        bail!(
            "refusing to promote {}: {reason}. Nothing was changed. Bring the missing standby back, \
             or pass --allow-data-loss to promote anyway (acknowledged commits may be lost).",
            pick.node
        );
    }
    Ok(Choice {
        node: pick.node.clone(),
        why: if ok {
            reason
        } else {
            format!("--allow-data-loss: {reason}")
        },
        guaranteed: ok,
    })
}

/// The whole failover: the failed primary is fenced first, so it cannot
/// take a write if it returns.
pub fn run(c: &Cluster, secrets: &Secrets, req: &Request) -> Result<Done> {
    let t0 = Instant::now();
    let choice = choose(c, req)?;
    let t1 = Instant::now();
    for node in &req.fence {
        container::fence(c, node)?;
    }
    let t2 = Instant::now();
    say!("promoting {}: {}", choice.node, choice.why);
    let timeline = promote(c, &choice.node, req.timeout)?;
    let promoted_at = Instant::now();
    if let Some(hook) = req.on_promoted {
        hook(&choice.node);
    }
    let started = Instant::now();
    let others: Vec<String> = c
        .topology()
        .nodes
        .iter()
        .map(|n| n.name().to_string())
        .filter(|n| *n != choice.node && !req.down.contains(n))
        .collect();
    // Side by side: each standby's walreceiver restarts on its own. A dry
    // run keeps the plan in order.
    let results: Vec<Result<()>> = if c.runner.dry_run() {
        others
            .iter()
            .map(|s| repoint(c, s, &choice.node, secrets, req.timeout))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = others
                .iter()
                .map(|s| scope.spawn(|| repoint(c, s, &choice.node, secrets, req.timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("re-pointing panicked")))
                })
                .collect()
        })
    };
    for (s, r) in others.iter().zip(results) {
        r.map_err(|e| e.context(format!("re-pointing {s} to {}", choice.node)))?;
    }
    let repoint = started.elapsed();
    let names = narrowed_sync_names(c, &choice.node)?;
    set_sync_names(c, &choice.node, Some(&names))?;
    let sync_commit_ms = if names.is_empty() {
        None
    } else {
        Some(prove_sync_commit(
            c,
            &choice.node,
            secrets,
            Duration::from_secs(15),
        )?)
    };
    Ok(Done {
        choice,
        timeline,
        promoted_at,
        steps_ms: [ms(t1 - t0), ms(t2 - t1), ms(promoted_at - t2)],
        repoint,
        sync_names: names,
        sync_commit_ms,
    })
}
