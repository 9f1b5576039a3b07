//! The same topology as a Patroni cluster on several hosts: one
//! `patroni.yml` per node and the etcd members' settings, rendered to
//! strings (the caller writes them). What Patroni 3.0 cannot express is
//! refused with the reason; what it expresses differently is a warning.
//!
//! Passwords are never in these files: Patroni reads them from
//! `PATRONI_SUPERUSER_PASSWORD`, `PATRONI_REPLICATION_PASSWORD` and
//! `PATRONI_REWIND_PASSWORD` (the rewind user is the superuser).

use crate::compose::json_scalar as s;
use crate::model::{Mode, Topology};
use crate::syncrep::{self, Method};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A host name or an IP address, as another machine reaches a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Host(String);

impl Host {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Host {
    type Err = String;

    fn from_str(v: &str) -> Result<Host, String> {
        if v.parse::<std::net::IpAddr>().is_ok() {
            return Ok(Host(v.to_string()));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if v.is_empty() || v.len() > 253 || !v.split('.').all(label_ok) {
            return Err(format!(
                "`{}` is neither an IP address nor a host name (letters, digits and `-` in labels of at most 63, separated by `.`)",
                crate::names::shown(v)
            ));
        }
        Ok(Host(v.to_ascii_lowercase()))
    }
}

/// What the export writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// `patroni.yml` of each node, in topology order.
    pub nodes: Vec<(String, String)>,
    /// `etcd.env` of each etcd member (the first three nodes' hosts).
    pub etcd: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Settings Patroni sets itself on every node: leaving them out keeps
/// `patroni.yml` from fighting it.
const PATRONI_OWNS: &[&str] = &[
    "listen_addresses",
    "port",
    "hot_standby",
    "synchronous_standby_names",
    "primary_conninfo",
    "primary_slot_name",
    "hba_file",
    "ident_file",
    "config_file",
    "data_directory",
    "cluster_name",
];

pub const DATA_DIR: &str = "/var/lib/postgresql/data";
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
pub const REST_PORT: u16 = 8008;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;

/// Renders the Patroni files for `t` with every node on its host. Errors
/// (all of them) when the topology says what Patroni 3.0 cannot do, or a
/// host is missing, unknown or shared.
pub fn render(t: &Topology, hosts: &BTreeMap<String, Host>) -> Result<Files, Vec<String>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let names: Vec<&str> = t.nodes.iter().map(|n| n.name()).collect();
    for n in &names {
        if !hosts.contains_key(*n) {
            errors.push(format!("node {n} has no host: pass --host {n}=ADDRESS"));
        }
    }
    for h in hosts.keys() {
        if !names.contains(&h.as_str()) {
            errors.push(format!(
                "--host {h}: the topology has no such node (its nodes: {})",
                names.join(", ")
            ));
        }
    }
    let mut seen: BTreeMap<&Host, &str> = BTreeMap::new();
    for (n, h) in hosts {
        if let Some(other) = seen.insert(h, n) {
            errors.push(format!(
                "nodes {other} and {n} are both on {h}: Patroni runs one PostgreSQL per host on port 5432 here"
            ));
        }
    }
    // Synchronous replication: FIRST n maps to synchronous_node_count = n;
    // a standby the list leaves out is tagged nosync.
    let mut sync_count = 0u32;
    let mut listed: Option<Vec<String>> = None;
    if t.replication.mode == Mode::Sync {
        let raw = t
            .replication
            .synchronous_standby_names
            .as_ref()
            .map(|v| v.get_ref().as_str())
            .unwrap_or("");
        match syncrep::parse(raw) {
            Ok(Some(sn)) => {
                if sn.method == Method::Any {
                    errors.push(format!(
                        "synchronous_standby_names = '{raw}' is a quorum (ANY {}): Patroni 3.0 has no quorum commit, \
                         only synchronous_node_count standbys chosen by Patroni (FIRST n). Use FIRST n for this export.",
                        sn.num_sync
                    ));
                }
                sync_count = sn.num_sync;
                if sn.names.len() > 1 {
                    warnings.push(format!(
                        "Patroni chooses its synchronous standbys itself: the priority order of '{raw}' is not kept, only that {} of the listed standbys are synchronous",
                        sn.num_sync
                    ));
                }
                listed = Some(sn.names.clone());
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("synchronous_standby_names: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let host = |n: &str| hosts[n].as_str().to_string();
    let etcd_members: Vec<&str> = names.iter().take(3).copied().collect();
    if etcd_members.len() < 3 {
        warnings.push(format!(
            "etcd runs on {} host(s): it survives the loss of a member only with three",
            etcd_members.len()
        ));
    }
    let etcd_hosts: Vec<String> = etcd_members
        .iter()
        .map(|n| format!("{}:{ETCD_CLIENT_PORT}", host(n)))
        .collect();
    let owner = t.database.owner.get_ref().as_str();
    let repl_user = t.replication.user.get_ref().as_str();
    let auth = t.replication.auth().as_str().to_string();
    let mut hba = vec![
        "local all all trust".to_string(),
        "local replication all trust".to_string(),
    ];
    for peer in &names {
        let addr = host_cidr(&host(peer));
        hba.push(format!(
            "host replication {} {addr} {auth}",
            hba_word(repl_user)
        ));
    }
    hba.push(format!("host all all 0.0.0.0/0 {auth}"));
    hba.push(format!("host all all ::/0 {auth}"));
    let mut nodes = Vec::new();
    for node in &t.nodes {
        let name = node.name();
        let settings = crate::render::effective_settings(t, node);
        let mut y = String::new();
        let mut line = |indent: usize, text: &str| {
            y.push_str(&" ".repeat(indent));
            y.push_str(text);
            y.push('\n');
        };
        line(0, &format!("# Patroni settings of node {name} of cluster {}, exported by `cargo xtask export --engine patroni`.", t.name()));
        line(0, "# Passwords come from PATRONI_SUPERUSER_PASSWORD, PATRONI_REPLICATION_PASSWORD and PATRONI_REWIND_PASSWORD.");
        line(0, &format!("scope: {}", s(t.name())));
        line(0, "namespace: \"/service/\"");
        line(0, &format!("name: {}", s(name)));
        line(0, "restapi:");
        line(
            2,
            &format!("listen: {}", s(&format!("0.0.0.0:{REST_PORT}"))),
        );
        line(
            2,
            &format!(
                "connect_address: {}",
                s(&format!("{}:{REST_PORT}", host(name)))
            ),
        );
        line(0, "etcd3:");
        line(2, "hosts:");
        for h in &etcd_hosts {
            line(4, &format!("- {}", s(h)));
        }
        line(0, "bootstrap:");
        line(2, "dcs:");
        line(4, "ttl: 30");
        line(4, "loop_wait: 10");
        line(4, "retry_timeout: 10");
        line(4, "maximum_lag_on_failover: 1048576");
        line(4, &format!("synchronous_mode: {}", sync_count > 0));
        if sync_count > 0 {
            line(4, "synchronous_mode_strict: false");
            line(4, &format!("synchronous_node_count: {sync_count}"));
        }
        line(4, "postgresql:");
        line(6, "use_pg_rewind: true");
        line(6, &format!("use_slots: {}", t.replication.slots));
        line(6, "parameters:");
        for st in settings
            .iter()
            .filter(|st| !PATRONI_OWNS.contains(&st.name.as_str()))
        {
            line(8, &format!("{}: {}", st.name, s(&st.value.as_raw())));
        }
        // Patroni 3.0 writes pg_hba.conf from `postgresql.pg_hba`; its
        // config validator also wants the bootstrap copy.
        line(2, "pg_hba:");
        for rule in &hba {
            line(4, &format!("- {}", s(rule)));
        }
        line(2, "initdb:");
        line(4, "- encoding: \"UTF8\"");
        if t.cluster.data_checksums {
            line(4, "- \"data-checksums\"");
        }
        line(0, "postgresql:");
        line(2, &format!("listen: {}", s("0.0.0.0:5432")));
        line(
            2,
            &format!("connect_address: {}", s(&format!("{}:5432", host(name)))),
        );
        line(2, &format!("data_dir: {}", s(DATA_DIR)));
        line(2, &format!("bin_dir: {}", s(BIN_DIR)));
        line(2, "authentication:");
        line(4, "superuser:");
        line(6, &format!("username: {}", s(owner)));
        line(4, "replication:");
        line(6, &format!("username: {}", s(repl_user)));
        line(4, "rewind:");
        line(6, &format!("username: {}", s(owner)));
        line(2, "pg_hba:");
        for rule in &hba {
            line(4, &format!("- {}", s(rule)));
        }
        let nosync = listed
            .as_ref()
            .is_some_and(|l| !l.iter().any(|x| x.eq_ignore_ascii_case(name)));
        line(0, "tags:");
        line(2, "nofailover: false");
        line(2, &format!("nosync: {nosync}"));
        line(2, "noloadbalance: false");
        line(2, "clonefrom: false");
        nodes.push((name.to_string(), y));
    }
    let cluster_list: Vec<String> = etcd_members
        .iter()
        .map(|n| format!("{n}=http://{}:{ETCD_PEER_PORT}", host(n)))
        .collect();
    let etcd = etcd_members
        .iter()
        .map(|n| {
            let h = host(n);
            let env = format!(
                "# etcd member {n} of cluster {}, for /etc/default/etcd (Debian's etcd-server).\n\
                 ETCD_NAME={n}\n\
                 ETCD_DATA_DIR=/var/lib/etcd/{}\n\
                 ETCD_INITIAL_CLUSTER={}\n\
                 ETCD_INITIAL_CLUSTER_STATE=new\n\
                 ETCD_INITIAL_CLUSTER_TOKEN={}\n\
                 ETCD_LISTEN_PEER_URLS=http://0.0.0.0:{ETCD_PEER_PORT}\n\
                 ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:{ETCD_CLIENT_PORT}\n\
                 ETCD_INITIAL_ADVERTISE_PEER_URLS=http://{h}:{ETCD_PEER_PORT}\n\
                 ETCD_ADVERTISE_CLIENT_URLS=http://{h}:{ETCD_CLIENT_PORT}\n",
                t.name(),
                t.name(),
                cluster_list.join(","),
                t.name()
            );
            (n.to_string(), env)
        })
        .collect();
    Ok(Files {
        nodes,
        etcd,
        warnings,
    })
}

fn host_cidr(h: &str) -> String {
    match h.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => format!("{a}/32"),
        Ok(std::net::IpAddr::V6(a)) => format!("{a}/128"),
        Err(_) => h.to_string(),
    }
}

fn hba_word(user: &str) -> String {
    crate::hba::name(user).render_token()
}
