//! Test support: a [`Cluster`] over the recording runner, with servers
//! simulated behind the [`Transport`] trait, so that the operations
//! (failover's choice and refusal, re-pointing, narrowing) are unit-tested
//! without Docker. Each simulated node answers the statements the tool
//! sends by what they ask, and records every statement that changes
//! something.

use crate::cluster::Cluster;
use crate::docker::Docker;
use crate::pg::Transport;
use crate::runner::Recording;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One simulated server.
#[derive(Debug, Clone)]
pub struct Server {
    pub standby: bool,
    /// `0/5000000`.
    pub lsn: String,
    pub timeline: u32,
    /// Its `synchronous_standby_names` (as a primary).
    pub sync_names: String,
    /// `pg_stat_replication` rows (as a primary): name, state, sync_state.
    pub replicas: Vec<(String, String, String)>,
    /// The node it streams from (as a standby).
    pub upstream: Option<String>,
    /// WAL still arriving (as a standby): after each answer to the status
    /// probe, `lsn` moves to the next of these.
    pub arriving: Vec<String>,
}

impl Server {
    pub fn primary(lsn: &str, sync_names: &str) -> Server {
        Server {
            standby: false,
            lsn: lsn.into(),
            timeline: 1,
            sync_names: sync_names.into(),
            replicas: vec![],
            upstream: None,
            arriving: vec![],
        }
    }

    pub fn standby(lsn: &str, upstream: &str) -> Server {
        Server {
            standby: true,
            lsn: lsn.into(),
            timeline: 1,
            sync_names: String::new(),
            replicas: vec![],
            upstream: Some(upstream.into()),
            arriving: vec![],
        }
    }
}

/// The simulated servers of a cluster; a node absent from the map is down.
#[derive(Default)]
pub struct Servers {
    pub nodes: Mutex<BTreeMap<String, Server>>,
    /// Every statement that changes something, as `node: sql`.
    pub changes: Mutex<Vec<String>>,
}

impl Transport for Servers {
    fn commit_within(
        &self,
        node: &str,
        sql: &str,
        bound: std::time::Duration,
    ) -> Result<Option<std::time::Duration>> {
        let nodes = self.nodes.lock().unwrap();
        let Some(s) = nodes.get(node) else {
            return Ok(None);
        };
        self.changes.lock().unwrap().push(format!("{node}: {sql}"));
        // A synchronous commit returns once a listed standby streams.
        let served = s.sync_names.is_empty()
            || s.replicas
                .iter()
                .any(|(n, st, _)| st == "streaming" && s.sync_names.contains(&format!("\"{n}\"")));
        if !served {
            bail!("no commit on {node} returned within {bound:?}");
        }
        Ok(Some(std::time::Duration::from_millis(1)))
    }

    fn run(
        &self,
        node: &str,
        _db: Option<&str>,
        sql: &str,
        mutating: bool,
    ) -> Result<Option<String>> {
        let mut nodes = self.nodes.lock().unwrap();
        if !nodes.contains_key(node) {
            // Down: no way reaches it.
            return Ok(None);
        }
        if mutating {
            self.changes.lock().unwrap().push(format!("{node}: {sql}"));
        }
        // A standby re-pointed follows its new upstream at once, on its
        // timeline, and shows in its pg_stat_replication.
        if let Some(rest) = sql.split("primary_conninfo = '").nth(1) {
            let host = rest
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix("host="))
                .unwrap_or_default()
                .to_string();
            let tl = nodes.get(&host).map(|u| u.timeline).unwrap_or(1);
            for other in nodes.values_mut() {
                other.replicas.retain(|(n, _, _)| n != node);
            }
            if let Some(up) = nodes.get_mut(&host) {
                up.replicas
                    .push((node.to_string(), "streaming".into(), String::new()));
            }
            let s = nodes.get_mut(node).expect("checked above");
            s.upstream = Some(host);
            s.timeline = tl;
            return Ok(Some(String::new()));
        }
        let s = nodes.get(node).expect("checked above").clone();
        if sql.starts_with("SELECT pg_is_in_recovery(), ") && !s.arriving.is_empty() {
            let n = nodes.get_mut(node).expect("checked above");
            n.lsn = n.arriving.remove(0);
        }
        // The sync state the primary reports: listed and streaming.
        let sync_state = |name: &str| {
            if s.sync_names.contains(&format!("\"{name}\"")) {
                "sync"
            } else {
                "async"
            }
        };
        let answer = if sql.contains("pg_promote") {
            let n = nodes.get_mut(node).expect("checked above");
            n.standby = false;
            n.timeline += 1;
            n.upstream = None;
            "t".to_string()
        } else if sql.contains("ALTER SYSTEM SET synchronous_standby_names") {
            let v = sql.split('\'').nth(1).unwrap_or_default();
            nodes.get_mut(node).expect("checked above").sync_names = v.to_string();
            String::new()
        } else if sql.starts_with("SELECT pg_is_in_recovery(), ") {
            let version = "17.6";
            if s.standby {
                format!(
                    "t|{tl}||{lsn}|{lsn}|streaming,{},{tl}|{version}",
                    s.upstream.clone().unwrap_or_default(),
                    tl = s.timeline,
                    lsn = s.lsn
                )
            } else {
                format!("f|{}|{}||||{version}", s.timeline, s.lsn)
            }
        } else if sql == "SELECT pg_is_in_recovery()" {
            (if s.standby { "t" } else { "f" }).to_string()
        } else if sql == "SHOW synchronous_standby_names" {
            s.sync_names.clone()
        } else if sql == "SELECT pg_walfile_name(pg_current_wal_lsn())" {
            format!("{:08X}0000000000000005", s.timeline)
        } else if sql.contains("FROM pg_stat_wal_receiver") {
            if s.standby && s.upstream.is_some() {
                s.timeline.to_string()
            } else {
                String::new()
            }
        } else if let Some(rest) =
            sql.strip_prefix("SELECT state FROM pg_stat_replication WHERE application_name = '")
        {
            let name = rest.trim_end_matches('\'');
            s.replicas
                .iter()
                .filter(|(n, _, _)| n == name)
                .map(|(_, st, _)| st.clone())
                .collect::<Vec<_>>()
                .join("\n")
        } else if sql.contains("FROM pg_stat_replication") {
            s.replicas
                .iter()
                .map(|(n, st, _)| format!("{n}|{st}|{}|0", sync_state(n)))
                .collect::<Vec<_>>()
                .join("\n")
        } else if sql.contains("FROM pg_replication_slots") || mutating {
            String::new()
        } else {
            bail!("the simulated {node} does not know `{sql}`")
        };
        Ok(Some(answer))
    }
}

/// A cluster of the semi-sync preset over `rec`, its SQL answered by
/// `servers`.
pub fn cluster<'r>(rec: &'r Recording, servers: &'r Servers) -> Cluster<'r> {
    let path = crate::project::root().join("conf/semi-sync.toml");
    let loaded = crate::project::load(&path).unwrap();
    let docker = Docker {
        docker: "docker".into(),
        compose: std::sync::OnceLock::new(),
    };
    // Every node has a container (`id-<node>`); the image is known.
    for n in ["master-db", "slave1-db", "slave2-db"] {
        rec.answer(&format!("label=io.pgrepl.node={n} "), &format!("id-{n}"));
    }
    Cluster::with(
        loaded,
        docker,
        rec,
        "compose.yml".into(),
        "../state/semi-sync".into(),
        Some(vec![Box::new(ServersRef(servers))]),
    )
    .with_image(crate::pg_image::Resolved {
        image: "pgrepl/postgres:17".into(),
        id: "sha256:17".into(),
        version: cluster_config::version::parse_version_line("postgres (PostgreSQL) 17.6").unwrap(),
    })
}

/// A borrowed [`Servers`] as a transport.
struct ServersRef<'a>(&'a Servers);

impl Transport for ServersRef<'_> {
    fn commit_within(
        &self,
        node: &str,
        sql: &str,
        bound: std::time::Duration,
    ) -> Result<Option<std::time::Duration>> {
        self.0.commit_within(node, sql, bound)
    }

    fn run(
        &self,
        node: &str,
        db: Option<&str>,
        sql: &str,
        mutating: bool,
    ) -> Result<Option<String>> {
        self.0.run(node, db, sql, mutating)
    }
}
