//! `synchronous_standby_names` on a live primary: narrowed to the standbys
//! connected now, restored to the configured value, and proven by one
//! synchronous commit that must return in time.

use crate::cluster::Cluster;
use crate::pg::sql::literal;
use crate::wait::ms;
use anyhow::Result;
use cluster_config::syncrep::SyncStandbyNames;
use std::time::Duration;

/// What `synchronous_standby_names` is set to on a live primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncNames {
    /// The configured value (the ALTER SYSTEM override reset).
    Configured,
    /// The configured list narrowed to the standbys connected now; `None`:
    /// none is connected, so commits are not synchronous until one rejoins.
    Narrowed(Option<SyncStandbyNames>),
}

impl SyncNames {
    /// The value as the server stores it (empty: none).
    pub fn value(&self) -> Option<String> {
        match self {
            SyncNames::Configured => None,
            SyncNames::Narrowed(n) => Some(n.as_ref().map(|s| s.to_string()).unwrap_or_default()),
        }
    }
}

/// The configured `synchronous_standby_names`, narrowed to the standbys
/// streaming from `primary` now.
pub fn narrowed_sync_names(c: &Cluster, primary: &str) -> Result<SyncNames> {
    let t = c.topology();
    let connected = crate::ops::live::connected(c, primary)?;
    let connected: Vec<&str> = connected.iter().map(String::as_str).collect();
    let nodes: Vec<&str> = t.nodes.iter().map(|n| n.name()).collect();
    Ok(SyncNames::Narrowed(
        crate::ops::live::configured_sync_names(t)
            .and_then(|cfg| cluster_config::live::narrowed(&cfg, &connected, &nodes)),
    ))
}

/// Back to the configured list when enough of the standbys it names are
/// connected for it to be satisfied; otherwise the list narrowed to the
/// connected ones (a primary must never wait for standbys that are not
/// there).
pub fn restore_sync_names(c: &Cluster, primary: &str) -> Result<()> {
    let t = c.topology();
    let Some(cfg) = crate::ops::live::configured_sync_names(t) else {
        return set_sync_names(c, primary, &SyncNames::Configured);
    };
    let connected = crate::ops::live::connected(c, primary)?;
    let listed = connected.iter().filter(|n| cfg.matches(n)).count();
    if listed >= cfg.num_sync as usize {
        set_sync_names(c, primary, &SyncNames::Configured)
    } else {
        let names = narrowed_sync_names(c, primary)?;
        set_sync_names(c, primary, &names)
    }
}

/// Sets `synchronous_standby_names` on a live primary (ALTER SYSTEM, then
/// a reload).
pub fn set_sync_names(c: &Cluster, primary: &str, names: &SyncNames) -> Result<()> {
    let sql = match names.value() {
        Some(v) => format!(
            "ALTER SYSTEM SET synchronous_standby_names = {};\nSELECT pg_reload_conf();",
            literal(&v)
        ),
        None => {
            "ALTER SYSTEM RESET synchronous_standby_names;\nSELECT pg_reload_conf();".to_string()
        }
    };
    c.sql_mut(primary, &sql)?;
    match names {
        SyncNames::Narrowed(None) => say!(
            "{primary}: no standby is connected yet; commits are not synchronous until one rejoins"
        ),
        SyncNames::Narrowed(Some(v)) => say!("{primary}: synchronous_standby_names = '{v}'"),
        SyncNames::Configured => {
            say!("{primary}: synchronous_standby_names back to the configured value")
        }
    }
    Ok(())
}

/// Commits one row with synchronous_commit = on and fails if it does not
/// return within `bound`.
pub fn prove_sync_commit(c: &Cluster, primary: &str, bound: Duration) -> Result<u64> {
    let sql = format!(
        "SET synchronous_commit = on;\n{}",
        crate::pg::sql::INSERT_CHECK_RANDOM
    );
    match c.commit_within(primary, &sql, bound) {
        Ok(d) => {
            say!("{primary}: a synchronous commit returned in {} ms", d.as_millis());
            Ok(ms(d))
        }
        Err(e) => Err(e.context(format!(
            "a synchronous commit on {primary} failed or did not return within {bound:?} (synchronous_standby_names may name no connected standby)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Recording;
    use crate::testing::{cluster, Server, Servers};

    fn primary_with(replicas: &[&str]) -> Servers {
        let s = Servers::default();
        let mut p = Server::primary("0/6000000", "FIRST 1 (\"slave1-db\", \"slave2-db\")");
        p.replicas = replicas
            .iter()
            .map(|n| (n.to_string(), "streaming".to_string(), String::new()))
            .collect();
        s.nodes.lock().unwrap().insert("master-db".into(), p);
        s
    }

    #[test]
    fn narrowed_to_the_standbys_connected_now() {
        let rec = Recording::default();
        let s = primary_with(&["slave2-db"]);
        let c = cluster(&rec, &s);
        assert_eq!(
            narrowed_sync_names(&c, "master-db")
                .unwrap()
                .value()
                .unwrap(),
            "FIRST 1 (\"slave2-db\")"
        );
        let s = primary_with(&[]);
        let c = cluster(&rec, &s);
        assert_eq!(
            narrowed_sync_names(&c, "master-db")
                .unwrap()
                .value()
                .unwrap(),
            "",
            "none connected: empty, never waiting"
        );
    }

    #[test]
    fn restored_only_when_the_configured_list_can_be_satisfied() {
        let rec = Recording::default();
        let s = primary_with(&["slave1-db", "slave2-db"]);
        let c = cluster(&rec, &s);
        restore_sync_names(&c, "master-db").unwrap();
        let changes = s.changes.lock().unwrap().clone();
        assert!(
            changes
                .iter()
                .any(|l| l.contains("ALTER SYSTEM RESET synchronous_standby_names")),
            "{changes:?}"
        );
        // With no standby connected, restoring FIRST 1 would make every
        // commit wait: the narrowed (empty) list is set instead.
        let s = primary_with(&[]);
        let c = cluster(&rec, &s);
        restore_sync_names(&c, "master-db").unwrap();
        let changes = s.changes.lock().unwrap().clone();
        assert!(
            changes
                .iter()
                .any(|l| l.contains("ALTER SYSTEM SET synchronous_standby_names = ''")),
            "{changes:?}"
        );
        // A synchronous commit with no standby connected does not return:
        // the proof fails within its bound.
        let s = primary_with(&[]);
        s.nodes
            .lock()
            .unwrap()
            .get_mut("master-db")
            .unwrap()
            .sync_names = "FIRST 1 (\"slave1-db\")".into();
        let c = cluster(&rec, &s);
        let err = prove_sync_commit(&c, "master-db", Duration::from_millis(10)).unwrap_err();
        assert!(
            format!("{err:#}").contains("did not return within"),
            "{err:#}"
        );
    }
}
