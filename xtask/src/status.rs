//! `status`: one row per node, read from the live servers: role, reachable,
//! timeline, LSNs, lag, sync state, slot. Exits non-zero when unhealthy.

use crate::cluster::Cluster;
use crate::project;
use anyhow::{bail, Result};
use clap::Args;
use cluster_config::syncrep::{self, Method};
use cluster_config::{Mode, Topology};
use serde::Serialize;
use std::collections::HashMap;

/// Show each node's live role, timeline, LSNs, lag, sync state and slot; fail when unhealthy.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct NodeStatus {
    pub node: String,
    pub reachable: bool,
    /// "primary", "standby", or "down".
    pub role: String,
    pub timeline: Option<u32>,
    pub current_lsn: Option<String>,
    pub receive_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    pub lag_bytes: Option<i64>,
    pub upstream: Option<String>,
    pub wal_receiver: Option<String>,
    pub sync_state: Option<String>,
    pub expected_sync_state: Option<String>,
    pub slot: Option<String>,
    pub slot_active: Option<bool>,
    pub problems: Vec<String>,
    /// Worth knowing, not a fault.
    pub notes: Vec<String>,
}

/// The `sync_state` each standby should show with `primary` as primary,
/// under the configured `synchronous_standby_names`, every standby streaming.
pub fn expected_sync_states(t: &Topology, primary: &str) -> HashMap<String, String> {
    let standbys: Vec<&str> = t
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| *n != primary)
        .collect();
    let parsed = match t.replication.mode {
        Mode::Async => None,
        Mode::Sync => t
            .replication
            .synchronous_standby_names
            .as_ref()
            .and_then(|s| syncrep::parse(s.get_ref()).ok().flatten()),
    };
    expected_states(parsed.as_ref(), &standbys, &standbys)
}

/// What PostgreSQL reports for each standby under `ssn`: with `FIRST n`, the
/// first n *connected* listed standbys are `sync` and the other listed ones
/// `potential`; with `ANY n`, listed ones are `quorum`; unlisted ones `async`.
pub fn expected_states(
    ssn: Option<&syncrep::SyncStandbyNames>,
    standbys: &[&str],
    connected: &[&str],
) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = standbys
        .iter()
        .map(|s| (s.to_string(), "async".to_string()))
        .collect();
    let Some(p) = ssn else { return out };
    let mut sync_left = p.num_sync as usize;
    for name in &p.names {
        for s in standbys
            .iter()
            .filter(|s| name == "*" || name.eq_ignore_ascii_case(s))
        {
            if out.get(*s).map(String::as_str) != Some("async") {
                continue;
            }
            let state = match p.method {
                Method::Any => "quorum",
                Method::First if sync_left > 0 && connected.contains(s) => {
                    sync_left -= 1;
                    "sync"
                }
                Method::First => "potential",
            };
            out.insert(s.to_string(), state.to_string());
        }
    }
    out
}

/// The one node that accepts writes; an error when more than one does.
pub fn find_primary(c: &Cluster) -> Result<Option<String>> {
    let mut writable = Vec::new();
    for n in &c.topology().nodes {
        if c.is_running(n.name())?
            && c.sql(n.name(), "SELECT pg_is_in_recovery()")
                .ok()
                .as_deref()
                == Some("f")
        {
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

pub fn collect(c: &Cluster) -> Result<Vec<NodeStatus>> {
    let t = c.topology();
    let mut rows = Vec::new();
    for n in &t.nodes {
        let mut row = NodeStatus {
            node: n.name().to_string(),
            role: "down".into(),
            ..Default::default()
        };
        let probe = if c.is_running(n.name())? {
            c.sql(
                n.name(),
                "SELECT pg_is_in_recovery(), \
                 CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())::text \
                      ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text END, \
                 CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
                 (SELECT status || ',' || coalesce(sender_host, '') || ',' || received_tli FROM pg_stat_wal_receiver)",
            )
            .ok()
        } else {
            None
        };
        if let Some(line) = probe {
            let f: Vec<&str> = line.split('|').collect();
            if f.len() == 6 {
                row.reachable = true;
                row.role = if f[0] == "t" { "standby" } else { "primary" }.into();
                row.timeline = f[1].trim().parse().ok();
                row.current_lsn = field(f[2]);
                if f[0] == "t" {
                    // After a promotion these keep their last values: show them only on standbys.
                    row.receive_lsn = field(f[3]);
                    row.replay_lsn = field(f[4]);
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
        .filter(|r| r.role == "primary")
        .map(|r| r.node.clone())
        .collect();
    if let [primary] = primaries.as_slice() {
        // Judge against what the primary enforces now; say so when that is
        // not the configured value (a failover narrows it with ALTER SYSTEM).
        let live = c.sql(primary, "SHOW synchronous_standby_names")?;
        let live_parsed = syncrep::parse(&live).ok().flatten();
        let configured = t
            .replication
            .synchronous_standby_names
            .as_ref()
            .and_then(|s| syncrep::parse(s.get_ref()).ok().flatten());
        if live_parsed != configured {
            if let Some(row) = rows.iter_mut().find(|r| &r.node == primary) {
                row.notes.push(format!(
                    "synchronous_standby_names is '{live}', not the configured '{}' (cargo xtask setup-sync restores it)",
                    configured.map(|c| c.to_string()).unwrap_or_default()
                ));
            }
        }
        let connected_rows = c.sql(
            primary,
            "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
        )?;
        let connected: Vec<&str> = connected_rows.lines().collect();
        let standbys: Vec<&str> = t
            .nodes
            .iter()
            .map(|n| n.name())
            .filter(|n| n != primary)
            .collect();
        let expected = expected_states(live_parsed.as_ref(), &standbys, &connected);
        let repl = c.sql(
            primary,
            "SELECT application_name, state, sync_state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint FROM pg_stat_replication",
        )?;
        let slots = c.sql(
            primary,
            "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'",
        )?;
        for row in rows.iter_mut().filter(|r| r.role != "primary") {
            row.expected_sync_state = expected.get(&row.node).cloned();
            if let Some(l) = repl
                .lines()
                .find(|l| l.split('|').next() == Some(row.node.as_str()))
            {
                let f: Vec<&str> = l.split('|').collect();
                row.sync_state = f.get(2).and_then(|s| field(s));
                row.lag_bytes = f.get(3).and_then(|s| s.trim().parse().ok());
                if f.get(1) != Some(&"streaming") {
                    row.problems
                        .push(format!("replication state is {}", f.get(1).unwrap_or(&"?")));
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
            if let (Some(got), Some(want)) = (&row.sync_state, &row.expected_sync_state) {
                if got != want {
                    row.problems
                        .push(format!("sync_state {got}, expected {want}"));
                }
            }
        }
    } else if primaries.len() > 1 {
        for row in rows.iter_mut().filter(|r| r.role == "primary") {
            row.problems
                .push(format!("one of {} writable primaries", primaries.len()));
        }
    }
    for row in rows.iter_mut().filter(|r| !r.reachable) {
        row.problems.push("not reachable".into());
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
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let mut out = format!(
        "{:<18} {:<8} {:<4} {:<12} {:<12} {:<12} {:>10} {:<10} {:<18} {}\n",
        "NODE", "ROLE", "TL", "CURRENT", "RECEIVE", "REPLAY", "LAG", "SYNC", "SLOT", "PROBLEMS"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<18} {:<8} {:<4} {:<12} {:<12} {:<12} {:>10} {:<10} {:<18} {}\n",
            r.node,
            r.role,
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

pub fn run(args: &StatusArgs, runner: &dyn crate::runner::Runner) -> Result<()> {
    let c = Cluster::open(&args.topology.resolve(), runner)?;
    let rows = collect(&c)?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        say_raw!("{}", table(&rows));
    }
    if !healthy(&rows) {
        bail!("cluster {} is not healthy", c.name());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo(name: &str) -> Topology {
        let text = std::fs::read_to_string(project::root().join("conf").join(name)).unwrap();
        cluster_config::Loaded::parse(name, &text).unwrap().topology
    }

    #[test]
    fn expected_states_follow_the_configuration() {
        let t = topo("semi-sync.toml");
        let e = expected_sync_states(&t, "master-db");
        assert_eq!(e["slave1-db"], "sync");
        assert_eq!(e["slave2-db"], "potential");
        // After slave1 is promoted, the list still names it: slave2 is sync.
        let e = expected_sync_states(&t, "slave1-db");
        assert_eq!(e["slave2-db"], "sync");
        assert_eq!(e["master-db"], "async");
        // PostgreSQL makes the first *connected* listed standby sync.
        let ssn = syncrep::parse("FIRST 1 (a, b, c)").unwrap();
        let e = expected_states(ssn.as_ref(), &["a", "b", "c"], &["b", "c"]);
        assert_eq!(
            (e["a"].as_str(), e["b"].as_str(), e["c"].as_str()),
            ("potential", "sync", "potential")
        );
        let any = syncrep::parse("ANY 1 (a, b)").unwrap();
        let e = expected_states(any.as_ref(), &["a", "b", "x"], &["a"]);
        assert_eq!(
            (e["a"].as_str(), e["b"].as_str(), e["x"].as_str()),
            ("quorum", "quorum", "async")
        );
        let a = expected_sync_states(&topo("async-slots.toml"), "db-counter-master");
        assert_eq!(a["db-counter-slave"], "async");
    }
}
