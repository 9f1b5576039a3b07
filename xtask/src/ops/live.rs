//! The one reader of a cluster's live state: every row PostgreSQL returns
//! about roles, WAL positions, replication and slots is parsed here, into
//! the typed state of `cluster_config::live`.

use crate::cluster::Cluster;
use crate::pg::sql::literal;
use anyhow::{bail, Context, Result};
use cluster_config::live::{self, LiveRole, Lsn, SyncState};
use cluster_config::syncrep;
use cluster_config::{Mode, Topology};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub reachable: bool,
    pub role: LiveRole,
    /// `server_version` (`17.6`, `18.0 (Debian ...)` trimmed to the number).
    pub version: Option<String>,
    pub timeline: Option<u32>,
    pub current_lsn: Option<Lsn>,
    pub receive_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
    pub lag_bytes: Option<i64>,
    pub upstream: Option<String>,
    pub wal_receiver: Option<String>,
    pub sync_state: Option<SyncState>,
    pub expected_sync_state: Option<SyncState>,
    pub slot: Option<String>,
    pub slot_active: Option<bool>,
    pub problems: Vec<String>,
    /// Worth knowing, not a fault.
    pub notes: Vec<String>,
}

impl NodeStatus {
    fn down(node: &str) -> NodeStatus {
        NodeStatus {
            node: node.to_string(),
            reachable: false,
            role: LiveRole::Down,
            version: None,
            timeline: None,
            current_lsn: None,
            receive_lsn: None,
            replay_lsn: None,
            lag_bytes: None,
            upstream: None,
            wal_receiver: None,
            sync_state: None,
            expected_sync_state: None,
            slot: None,
            slot_active: None,
            problems: vec![],
            notes: vec![],
        }
    }

    /// How far this node's WAL reaches: received (or replayed, if further)
    /// on a standby, current on a primary.
    pub fn wal_position(&self) -> Option<Lsn> {
        self.current_lsn.or(self.receive_lsn.max(self.replay_lsn))
    }
}

/// The configured `synchronous_standby_names` of a topology, parsed.
pub fn configured_sync_names(t: &Topology) -> Option<syncrep::SyncStandbyNames> {
    match t.replication.mode {
        Mode::Async => None,
        Mode::Sync => t.replication.sync_names().cloned(),
    }
}

/// The `sync_state` each standby should show with `primary` as primary,
/// under the configured `synchronous_standby_names`, every standby streaming.
pub fn expected_sync_states(t: &Topology, primary: &str) -> HashMap<String, SyncState> {
    let standbys: Vec<&str> = t
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| *n != primary)
        .collect();
    live::expected_states(configured_sync_names(t).as_ref(), &standbys, &standbys)
        .into_iter()
        .collect()
}

/// Each standby's `sync_state` as the primary reported it in `rows`.
pub fn sync_states(rows: &[NodeStatus]) -> Vec<(String, SyncState)> {
    rows.iter()
        .filter_map(|r| r.sync_state.map(|s| (r.node.clone(), s)))
        .collect()
}

/// The `synchronous_standby_names` a primary enforces now (None: empty).
pub fn enforced_sync_names(
    c: &Cluster,
    primary: &str,
) -> Result<Option<syncrep::SyncStandbyNames>> {
    let value = c.sql(primary, "SHOW synchronous_standby_names")?;
    syncrep::parse(&value).with_context(|| {
        format!(
            "{primary} enforces synchronous_standby_names = '{value}', which the tool cannot read"
        )
    })
}

/// One row of the primary's `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub name: String,
    pub state: String,
    pub sync_state: Option<SyncState>,
    /// Bytes the standby has yet to replay.
    pub lag: Option<i64>,
}

/// The primary's view of its standbys.
pub fn replication(c: &Cluster, primary: &str) -> Result<Vec<Replica>> {
    let rows = c.sql(
        primary,
        "SELECT application_name, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication",
    )?;
    Ok(rows
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            Replica {
                name: f[0].to_string(),
                state: f.get(1).unwrap_or(&"").to_string(),
                sync_state: f.get(2).and_then(|s| s.parse().ok()),
                lag: f.get(3).and_then(|s| s.trim().parse().ok()),
            }
        })
        .collect())
}

/// Standbys streaming from `primary` now.
pub fn connected(c: &Cluster, primary: &str) -> Result<Vec<String>> {
    Ok(replication(c, primary)?
        .into_iter()
        .filter(|r| r.state == "streaming")
        .map(|r| r.name)
        .collect())
}

pub fn find_primary(c: &Cluster) -> Result<Option<String>> {
    let mut writable = Vec::new();
    for n in &c.topology().nodes {
        const Q: &str = "SELECT pg_is_in_recovery()";
        let answer = c.probe(n.name(), Q)?;
        if answer.as_deref() == Some("f") {
            writable.push(n.name().to_string());
        }
    }
    match writable.len() {
        0 | 1 => Ok(writable.pop()),
        _ => bail!(
            "more than one writable primary: {}. Stop all but one before anything else.",
            writable.join(", ")
        ),
    }
}

fn field(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn lsn(s: &str) -> Option<Lsn> {
    field(s).and_then(|v| v.parse().ok())
}

pub fn collect(c: &Cluster) -> Result<Vec<NodeStatus>> {
    let t = c.topology();
    let mut rows = Vec::new();
    for n in &t.nodes {
        let mut row = NodeStatus::down(n.name());
        let probe = c.probe(n.name(), PROBE)?;
        const PROBE: &str = "SELECT pg_is_in_recovery(), \
                 CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())::text \
                      ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text END, \
                 CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
                 (SELECT status || ',' || coalesce(sender_host, '') || ',' || received_tli FROM pg_stat_wal_receiver), \
                 split_part(current_setting('server_version'), ' ', 1)";
        if let Some(line) = probe {
            let f: Vec<&str> = line.split('|').collect();
            if f.len() == 7 {
                row.reachable = true;
                row.version = field(f[6]);
                let standby = f[0] == "t";
                row.role = if standby {
                    LiveRole::Standby
                } else {
                    LiveRole::Primary
                };
                row.timeline = f[1].trim().parse().ok();
                row.current_lsn = lsn(f[2]);
                if standby {
                    // After a promotion these keep their last values: show them only on standbys.
                    row.receive_lsn = lsn(f[3]);
                    row.replay_lsn = lsn(f[4]);
                }
                if let Some(w) = field(f[5]) {
                    let parts: Vec<&str> = w.split(',').collect();
                    row.wal_receiver = parts.first().map(|s| s.to_string());
                    row.upstream = parts.get(1).and_then(|s| field(s));
                    if let Some(tli) = parts.get(2).and_then(|s| s.parse().ok()) {
                        row.timeline = Some(tli);
                    }
                }
            }
        }
        rows.push(row);
    }
    let primaries: Vec<String> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Primary)
        .map(|r| r.node.clone())
        .collect();
    if let [primary] = primaries.as_slice() {
        // Judge against what the primary enforces now; say so when that is
        // not the configured value (a failover narrows it with ALTER SYSTEM).
        let live_parsed = enforced_sync_names(c, primary)?;
        let live_value = live_parsed
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let configured = configured_sync_names(t);
        if live_parsed != configured {
            if let Some(row) = rows.iter_mut().find(|r| &r.node == primary) {
                row.notes.push(format!(
                    "synchronous_standby_names is '{live_value}', not the configured '{}' (cargo xtask setup-sync restores it)",
                    configured.map(|c| c.to_string()).unwrap_or_default()
                ));
            }
        }
        let repl = replication(c, primary)?;
        let connected: Vec<&str> = repl
            .iter()
            .filter(|r| r.state == "streaming")
            .map(|r| r.name.as_str())
            .collect();
        let standbys: Vec<&str> = t
            .nodes
            .iter()
            .map(|n| n.name())
            .filter(|n| n != primary)
            .collect();
        let expected: HashMap<String, SyncState> =
            live::expected_states(live_parsed.as_ref(), &standbys, &connected)
                .into_iter()
                .collect();
        let slots = c.sql(
            primary,
            "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'",
        )?;
        for row in rows.iter_mut().filter(|r| r.role != LiveRole::Primary) {
            row.expected_sync_state = expected.get(&row.node).copied();
            if let Some(r) = repl.iter().find(|r| r.name == row.node) {
                row.sync_state = r.sync_state;
                row.lag_bytes = r.lag;
                if r.state != "streaming" {
                    row.problems
                        .push(format!("replication state is {}", r.state));
                }
            } else if row.reachable {
                row.problems
                    .push(format!("not connected to the primary {primary}"));
            }
            if t.replication.slots {
                let slot = cluster_config::model::slot_name(&row.node);
                let active = slots
                    .lines()
                    .find(|l| l.split('|').next() == Some(slot.as_str()))
                    .map(|l| l.ends_with("|t"));
                row.slot = Some(slot.clone());
                row.slot_active = active;
                if active != Some(true) {
                    row.problems.push(format!(
                        "slot {slot} is {}",
                        if active.is_some() {
                            "inactive"
                        } else {
                            "missing"
                        }
                    ));
                }
            }
            if let (Some(got), Some(want)) = (row.sync_state, row.expected_sync_state) {
                if got != want {
                    row.problems
                        .push(format!("sync_state {got}, expected {want}"));
                }
            }
        }
    } else if primaries.len() > 1 {
        for row in rows.iter_mut().filter(|r| r.role == LiveRole::Primary) {
            row.problems
                .push(format!("one of {} writable primaries", primaries.len()));
        }
    }
    for row in rows.iter_mut().filter(|r| !r.reachable) {
        row.problems.push("not reachable".into());
    }
    // One major across the cluster: a standby of another major cannot
    // follow its primary.
    let major = |v: &str| v.split('.').next().unwrap_or(v).to_string();
    let primary_major = rows
        .iter()
        .find(|r| r.role == LiveRole::Primary)
        .and_then(|r| r.version.as_deref().map(major));
    if let Some(pm) = primary_major {
        for row in rows.iter_mut() {
            if let Some(v) = &row.version {
                if major(v) != pm {
                    row.problems
                        .push(format!("PostgreSQL {v}, but the primary runs {pm}"));
                }
            }
        }
    }
    if primaries.is_empty() {
        if let Some(first) = rows.first_mut() {
            first
                .problems
                .push("no writable primary in the cluster".into());
        }
    }
    Ok(rows)
}

pub fn healthy(rows: &[NodeStatus]) -> bool {
    rows.iter().all(|r| r.problems.is_empty())
}

pub fn table(rows: &[NodeStatus]) -> String {
    fn opt<T: std::fmt::Display>(o: &Option<T>) -> String {
        o.as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    }
    let mut out = format!(
        "{:<18} {:<8} {:<8} {:<4} {:<12} {:<12} {:<12} {:>10} {:<10} {:<18} {}\n",
        "NODE",
        "ROLE",
        "VERSION",
        "TL",
        "CURRENT",
        "RECEIVE",
        "REPLAY",
        "LAG",
        "SYNC",
        "SLOT",
        "PROBLEMS"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<18} {:<8} {:<8} {:<4} {:<12} {:<12} {:<12} {:>10} {:<10} {:<18} {}\n",
            r.node,
            r.role.to_string(),
            opt(&r.version),
            r.timeline
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into()),
            opt(&r.current_lsn),
            opt(&r.receive_lsn),
            opt(&r.replay_lsn),
            r.lag_bytes
                .map(|l| l.to_string())
                .unwrap_or_else(|| "-".into()),
            opt(&r.sync_state),
            match (&r.slot, r.slot_active) {
                (Some(s), Some(true)) => format!("{s} (active)"),
                (Some(s), _) => format!("{s} (inactive)"),
                _ => "-".into(),
            },
            if r.problems.is_empty() {
                "ok".into()
            } else {
                r.problems.join("; ")
            }
        ));
    }
    for r in rows {
        for n in &r.notes {
            out.push_str(&format!("note: {}: {n}\n", r.node));
        }
    }
    out
}

pub fn timeline(c: &Cluster, node: &str) -> Result<u32> {
    let name = c.sql(node, "SELECT pg_walfile_name(pg_current_wal_lsn())")?;
    u32::from_str_radix(name.get(..8).unwrap_or(""), 16)
        .with_context(|| format!("reading the timeline from `{name}`"))
}

/// Whether `node` streams from `primary` and has replayed up to `lsn`.
pub fn caught_up(c: &Cluster, primary: &str, node: &str, lsn: Lsn) -> Result<bool> {
    let row = c.sql(
        primary,
        &format!(
            "SELECT state = 'streaming' AND replay_lsn >= '{lsn}'::pg_lsn FROM pg_stat_replication WHERE application_name = {}",
            literal(node)
        ),
    )?;
    Ok(row.lines().any(|l| l == "t"))
}

/// The timeline a standby's WAL receiver streams on, if it streams.
pub fn streaming_timeline(c: &Cluster, node: &str) -> Result<Option<u32>> {
    let v = c.sql(
        node,
        "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'",
    )?;
    Ok(v.trim().parse().ok())
}

pub fn is_streaming(c: &Cluster, upstream: &str, node: &str) -> Result<bool> {
    let q = format!(
        "SELECT state FROM pg_stat_replication WHERE application_name = {}",
        literal(node)
    );
    Ok(c.sql(upstream, &q)?.lines().any(|l| l == "streaming"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project;
    use cluster_config::live::SyncState::*;

    fn topo(name: &str) -> Topology {
        let text = std::fs::read_to_string(project::root().join("conf").join(name)).unwrap();
        cluster_config::Loaded::parse(name, &text).unwrap().topology
    }

    #[test]
    fn expected_states_follow_the_configuration() {
        let t = topo("semi-sync.toml");
        let e = expected_sync_states(&t, "master-db");
        assert_eq!((e["slave1-db"], e["slave2-db"]), (Sync, Potential));
        // After slave1 is promoted, the list still names it (a primary
        // ignores its own name): slave2 is sync, the old primary potential.
        let e = expected_sync_states(&t, "slave1-db");
        assert_eq!((e["slave2-db"], e["master-db"]), (Sync, Potential));
        let a = expected_sync_states(&topo("async-slots.toml"), "db-counter-master");
        assert_eq!(a["db-counter-slave"], Async);
    }
}
