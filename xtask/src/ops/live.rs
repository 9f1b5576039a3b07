//! The one reader of a cluster's live state: every row PostgreSQL returns
//! about roles, WAL positions, replication and slots is parsed here, into
//! the typed state of `cluster_config::live`.

use crate::cluster::Cluster;
use crate::pg::sql::literal;
use anyhow::{bail, Context, Result};
use cluster_config::live::{self, LiveRole, Lsn, SyncState};
use cluster_config::status::{self, PrimaryView};
pub use cluster_config::status::{healthy, table, NodeStatus, Replica};
use cluster_config::syncrep;
use cluster_config::{Mode, Topology};
use std::collections::HashMap;

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

/// The primary's view of its standbys.
pub fn replication(c: &Cluster, primary: &str) -> Result<Vec<Replica>> {
    Ok(Replica::parse(&c.sql(primary, status::REPLICATION)?))
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

/// Every node's row, judged: what `status` prints.
pub fn collect(c: &Cluster) -> Result<Vec<NodeStatus>> {
    let t = c.topology();
    let names: Vec<&str> = t.nodes.iter().map(|n| n.name()).collect();
    let mut rows = probe_rows(c, &names)?;
    let primaries: Vec<&NodeStatus> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Primary)
        .collect();
    let view = match primaries.as_slice() {
        [p] => Some(primary_view(c, &p.node)?),
        _ => None,
    };
    let configured = configured_sync_names(t);
    status::judge(
        &mut rows,
        view.as_ref(),
        &status::Expected {
            configured: configured.as_ref(),
            slots: t.replication.slots,
        },
    );
    Ok(rows)
}

/// The unjudged rows of `nodes`, probed side by side: a node that does not
/// answer (a frozen one waits out the connection deadline) delays the
/// others no more than itself. A dry run probes in order, to keep its plan.
pub fn probe_rows(c: &Cluster, nodes: &[&str]) -> Result<Vec<NodeStatus>> {
    let answers: Vec<Result<Option<String>>> = if c.runner().dry_run() || nodes.len() < 2 {
        nodes.iter().map(|n| c.probe(n, status::PROBE)).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|n| scope.spawn(move || c.probe(n, status::PROBE)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a probe panicked")))
                })
                .collect()
        })
    };
    nodes
        .iter()
        .zip(answers)
        .map(|(n, a)| Ok(NodeStatus::from_probe(n, a?.as_deref())))
        .collect()
}

/// What the primary says of its standbys, its enforced list and its slots.
fn primary_view(c: &Cluster, primary: &str) -> Result<PrimaryView> {
    let slots = c.sql(
        primary,
        "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical'",
    )?;
    Ok(PrimaryView {
        enforced: enforced_sync_names(c, primary)?,
        replicas: replication(c, primary)?,
        slots: slots
            .lines()
            .filter_map(|l| l.split_once('|'))
            .map(|(name, active)| (name.to_string(), active == "t"))
            .collect(),
    })
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
