//! The same topology as a Patroni 4.1 cluster on several hosts: one
//! `patroni.yml` per node and the etcd members' settings, rendered to
//! strings (the caller writes them). `FIRST n` is Patroni's
//! `synchronous_mode: on` with `synchronous_node_count: n`; `ANY n` its
//! `synchronous_mode: quorum` (Patroni 4.1.5 on). What Patroni cannot
//! express is refused with the reason; what it expresses differently is a
//! warning.
//!
//! Passwords are never in these files: Patroni reads them from
//! `PATRONI_SUPERUSER_PASSWORD`, `PATRONI_REPLICATION_PASSWORD` and
//! `PATRONI_REWIND_PASSWORD` (the rewind user is the superuser).

use crate::compose::json_scalar as s;
use crate::model::{Mode, Topology};
use crate::syncrep::Method;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A host name or an IP address, as another machine reaches a node. Both
/// are validated and kept in canonical form, so that two spellings of one
/// address (`fd00::1`, `fd00:0::1`; `::ffff:10.0.0.2`, `10.0.0.2`) compare
/// equal, and what cannot be another machine's address (loopback, the
/// unspecified address, multicast, broadcast, link-local) is refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Ip(std::net::IpAddr),
    /// Lower case, without a trailing dot.
    Name(String),
}

impl Host {
    /// The host as a URL or `host:port` needs it: IPv6 in brackets.
    pub fn url_host(&self) -> String {
        match self {
            Host::Ip(std::net::IpAddr::V6(a)) => format!("[{a}]"),
            Host::Ip(a) => a.to_string(),
            Host::Name(n) => n.clone(),
        }
    }

    /// `host:port`, IPv6 bracketed.
    pub fn with_port(&self, port: u16) -> String {
        format!("{}:{port}", self.url_host())
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(a) => write!(f, "{a}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// Why an address cannot be where another machine reaches a node.
fn unusable(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    if ip.is_loopback() {
        return Some("a loopback address: every host would reach itself");
    }
    if ip.is_unspecified() {
        return Some("the unspecified address: it names no host");
    }
    if ip.is_multicast() {
        return Some("a multicast address: it names a group, not a host");
    }
    match ip {
        IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(a) if a.is_link_local() => {
            Some("a link-local address: it is not routed between networks")
        }
        IpAddr::V4(a) if a.octets()[0] == 0 => {
            Some("in 0.0.0.0/8 (\"this network\"): no host has it")
        }
        IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80 => Some(
            "a link-local address: it needs an interface (zone) on every host and is not routed",
        ),
        _ => None,
    }
}

/// Why a value cannot be where another machine reaches a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("`{0}`: only IPv6 addresses are written in brackets")]
    BracketedIpv4(String),
    #[error("`{shown}` is {why}; give the address other machines reach this node at")]
    Unusable { shown: String, why: &'static str },
    #[error("`{0}` is not a valid IPv6 address")]
    BadIpv6(String),
    #[error("`{0}` is neither an IP address nor a host name (letters, digits and `-` in labels of at most 63, separated by `.`)")]
    NotHost(String),
    #[error("`{0}` is not an IPv4 address in dotted-quad form (four numbers from 0 to 255, no leading zeros), and as a host name it would be read as one")]
    NumericName(String),
    #[error("`{0}` is the loopback host: every host would reach itself; give the name other machines reach this node at")]
    Localhost(String),
}

impl FromStr for Host {
    type Err = HostError;

    fn from_str(v: &str) -> Result<Host, HostError> {
        let shown = crate::names::shown(v);
        // `[fd00::1]`, as URLs write it, is accepted too.
        let bare = v
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(v);
        if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            if bare != v && ip.is_ipv4() {
                return Err(HostError::BracketedIpv4(shown));
            }
            let ip = ip.to_canonical();
            if let Some(why) = unusable(ip) {
                return Err(HostError::Unusable { shown, why });
            }
            return Ok(Host::Ip(ip));
        }
        if bare != v || v.contains(':') {
            return Err(HostError::BadIpv6(shown));
        }
        let name = v.strip_suffix('.').unwrap_or(v).to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(HostError::NotHost(shown));
        }
        // A name whose last label is a number is read as an IPv4 address by
        // resolvers (`010.0.0.2` is 8.0.0.2 to inet_aton, `10.2` is 10.0.0.2).
        if name
            .rsplit('.')
            .next()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(HostError::NumericName(shown));
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(HostError::Localhost(shown));
        }
        Ok(Host::Name(name))
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

/// Where Debian's packages put a major's programs.
pub fn bin_dir(major: crate::version::Major) -> String {
    format!("/usr/lib/postgresql/{major}/bin")
}
pub const REST_PORT: u16 = 8008;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;

/// Patroni's DCS timings, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub ttl: u32,
    pub loop_wait: u32,
    pub retry_timeout: u32,
}

impl Timings {
    /// Patroni's defaults.
    pub const DEFAULT: Timings = Timings {
        ttl: 30,
        loop_wait: 10,
        retry_timeout: 10,
    };
    /// The tightest Patroni accepts: its documented minimums (ttl 20,
    /// loop_wait 1, retry_timeout 3; `--validate-config` of 4.1 refuses
    /// less), which keep loop_wait + 2 x retry_timeout within ttl.
    pub const TIGHTEST: Timings = Timings {
        ttl: 20,
        loop_wait: 1,
        retry_timeout: 3,
    };
}

/// Where everything runs.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Each node's host, as the others and the clients reach it.
    pub hosts: BTreeMap<String, Host>,
    /// The etcd members: name and host.
    pub etcd: Vec<(String, Host)>,
    /// Where replication connections may come from (pg_hba addresses):
    /// `None`, each node's host.
    pub replication_from: Option<Vec<String>>,
    pub timings: Timings,
}

impl Layout {
    /// Nodes on their own machines, etcd on the first three of them.
    pub fn hosts(t: &Topology, hosts: BTreeMap<String, Host>) -> Layout {
        let etcd = t
            .nodes
            .iter()
            .take(3)
            .filter_map(|n| {
                hosts
                    .get(n.name())
                    .map(|h| (n.name().to_string(), h.clone()))
            })
            .collect();
        Layout {
            hosts,
            etcd,
            replication_from: None,
            timings: Timings::DEFAULT,
        }
    }
}

/// The etcd services of a Compose cluster.
pub const ETCD_SERVICES: [&str; 3] = ["etcd1", "etcd2", "etcd3"];

/// Renders the Patroni files for `t` with every node on its host. Errors
/// (all of them) when the topology says what Patroni cannot do, or a host
/// is missing, unknown or shared.
pub fn render(t: &Topology, layout: &Layout) -> Result<Files, Vec<String>> {
    let hosts = &layout.hosts;
    let major = t
        .cluster
        .declared_major()
        .unwrap_or(crate::version::DEFAULT);

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
    // Synchronous replication: FIRST n is synchronous_mode on with
    // synchronous_node_count = n, ANY n synchronous_mode quorum with the
    // same count; a standby the list leaves out is tagged nosync.
    let mut sync_count = 0u32;
    let mut sync_mode = "false";
    let mut listed: Option<Vec<String>> = None;
    if t.replication.mode == Mode::Sync {
        let field = t.replication.synchronous_standby_names.as_ref();
        let raw = field.map(|v| v.get_ref().text()).unwrap_or("");
        match field.map(|v| v.get_ref().parsed()).unwrap_or(Ok(None)) {
            Ok(Some(sn)) => {
                sync_count = sn.num_sync;
                sync_mode = match sn.method {
                    Method::Any => "quorum",
                    Method::First => "true",
                };
                if sn.method == Method::First && sn.names.len() > 1 {
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
    let host = |n: &str| hosts[n].clone();
    if layout.etcd.len() < 3 {
        warnings.push(format!(
            "etcd runs on {} host(s): it survives the loss of a member only with three",
            layout.etcd.len()
        ));
    }
    let etcd_hosts: Vec<String> = layout
        .etcd
        .iter()
        .map(|(_, h)| h.with_port(ETCD_CLIENT_PORT))
        .collect();
    let owner = t.database.owner.get_ref().as_str();
    let repl_user = t.replication.user.get_ref().as_str();
    let auth = t.replication.auth().as_str().to_string();
    let mut hba = vec![
        "local all all trust".to_string(),
        "local replication all trust".to_string(),
    ];
    // Patroni checks its own server's timeline over a local replication
    // connection (before a rewind): loopback is always allowed.
    let mut from: Vec<String> = vec!["127.0.0.1/32".into(), "::1/128".into()];
    match &layout.replication_from {
        Some(list) => from.extend(list.iter().cloned()),
        None => from.extend(names.iter().map(|peer| host_cidr(&host(peer)))),
    }
    for addr in from {
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
            &format!("connect_address: {}", s(&host(name).with_port(REST_PORT))),
        );
        line(0, "etcd3:");
        line(2, "hosts:");
        for h in &etcd_hosts {
            line(4, &format!("- {}", s(h)));
        }
        line(0, "bootstrap:");
        line(2, "dcs:");
        line(4, &format!("ttl: {}", layout.timings.ttl));
        line(4, &format!("loop_wait: {}", layout.timings.loop_wait));
        line(
            4,
            &format!("retry_timeout: {}", layout.timings.retry_timeout),
        );
        line(4, "maximum_lag_on_failover: 1048576");
        line(4, &format!("synchronous_mode: {sync_mode}"));
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
        // Patroni writes pg_hba.conf from `postgresql.pg_hba`; its config
        // validator also wants the bootstrap copy.
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
            &format!("connect_address: {}", s(&host(name).with_port(5432))),
        );
        line(2, &format!("data_dir: {}", s(DATA_DIR)));
        line(2, &format!("bin_dir: {}", s(&bin_dir(major))));
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
    let cluster_list: Vec<String> = layout
        .etcd
        .iter()
        .map(|(n, h)| format!("{n}=http://{}", h.with_port(ETCD_PEER_PORT)))
        .collect();
    let etcd = layout
        .etcd
        .iter()
        .map(|(n, h)| {
            let env = format!(
                "# etcd member {n} of cluster {}, for /etc/default/etcd (Debian's etcd-server).\n\
                 ETCD_NAME={n}\n\
                 ETCD_DATA_DIR=/var/lib/etcd/{}\n\
                 ETCD_INITIAL_CLUSTER={}\n\
                 ETCD_INITIAL_CLUSTER_STATE=new\n\
                 ETCD_INITIAL_CLUSTER_TOKEN={}\n\
                 ETCD_LISTEN_PEER_URLS=http://0.0.0.0:{ETCD_PEER_PORT}\n\
                 ETCD_LISTEN_CLIENT_URLS=http://0.0.0.0:{ETCD_CLIENT_PORT}\n\
                 ETCD_INITIAL_ADVERTISE_PEER_URLS=http://{}\n\
                 ETCD_ADVERTISE_CLIENT_URLS=http://{}\n",
                t.name(),
                t.name(),
                cluster_list.join(","),
                t.name(),
                h.with_port(ETCD_PEER_PORT),
                h.with_port(ETCD_CLIENT_PORT),
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

/// A pg_hba.conf address for one host: an address as a single-host CIDR,
/// a name as itself (PostgreSQL resolves it both ways).
fn host_cidr(h: &Host) -> String {
    match h {
        Host::Ip(std::net::IpAddr::V4(a)) => format!("{a}/32"),
        Host::Ip(std::net::IpAddr::V6(a)) => format!("{a}/128"),
        Host::Name(n) => n.clone(),
    }
}

fn hba_word(user: &str) -> String {
    crate::hba::name(user).render_token()
}

/// Label telling which engine runs a cluster's containers.
pub const LABEL_ENGINE: &str = "io.pgrepl.engine";

/// The host port of a node's REST API in the Patroni engine: its
/// PostgreSQL port + 1000, on 127.0.0.1.
pub fn rest_port(pg_port: u16) -> u32 {
    u32::from(pg_port) + 1000
}

/// The Compose file of the Patroni engine: three etcd members and one
/// Patroni per node, in `image` (the project's Patroni image), with the
/// same project name, network and labels as the tool's own engine.
/// `state_ref` is the state folder relative to the file.
pub fn compose(t: &Topology, state_ref: &str, image: &str) -> String {
    use crate::compose::{mount, q, LABEL_CLUSTER, LABEL_NODE};
    let name = t.name();
    let mut y = String::new();
    let mut push = |indent: usize, line: &str| {
        y.push_str(&" ".repeat(indent));
        y.push_str(line);
        y.push('\n');
    };
    push(
        0,
        &format!(
            "# Patroni engine of cluster {}: written by `cargo xtask setup-sync --engine patroni`; do not edit.",
            crate::names::shown(name)
        ),
    );
    push(0, "services:");
    let cluster: Vec<String> = ETCD_SERVICES
        .iter()
        .map(|e| format!("{e}=http://{e}:{ETCD_PEER_PORT}"))
        .collect();
    for e in ETCD_SERVICES {
        push(2, &format!("{}:", q(e)));
        push(4, &format!("image: {}", q(image)));
        push(4, &format!("hostname: {}", q(e)));
        push(4, "entrypoint:");
        for arg in [
            "etcd".to_string(),
            format!("--name={e}"),
            "--data-dir=/tmp/etcd".into(),
            format!("--listen-client-urls=http://0.0.0.0:{ETCD_CLIENT_PORT}"),
            format!("--advertise-client-urls=http://{e}:{ETCD_CLIENT_PORT}"),
            format!("--listen-peer-urls=http://0.0.0.0:{ETCD_PEER_PORT}"),
            format!("--initial-advertise-peer-urls=http://{e}:{ETCD_PEER_PORT}"),
            format!("--initial-cluster={}", cluster.join(",")),
            "--initial-cluster-state=new".into(),
            format!("--initial-cluster-token={name}"),
        ] {
            push(6, &format!("- {}", q(&arg)));
        }
        push(4, "networks:");
        push(6, &format!("{}: {{}}", q(&t.network.name)));
        push(4, "labels:");
        push(6, &format!("{LABEL_CLUSTER}: {}", q(name)));
        push(6, &format!("{LABEL_ENGINE}: \"patroni\""));
    }
    for node in &t.nodes {
        let n = node.name();
        let port = *node.port.get_ref();
        push(2, &format!("{}:", q(n)));
        push(4, &format!("image: {}", q(image)));
        push(4, &format!("hostname: {}", q(n)));
        push(4, "user: \"postgres\"");
        push(4, "entrypoint:");
        push(6, "- \"patroni\"");
        push(6, "- \"/etc/patroni/patroni.yml\"");
        push(4, "env_file:");
        push(6, &format!("- {}", q(&format!("{state_ref}/patroni.env"))));
        push(4, "ports:");
        push(6, &format!("- {}", q(&format!("127.0.0.1:{port}:5432"))));
        push(
            6,
            &format!(
                "- {}",
                q(&format!("127.0.0.1:{}:{REST_PORT}", rest_port(port)))
            ),
        );
        push(4, "volumes:");
        push(6, &format!("- {}", mount(state_ref, &node.data, DATA_DIR)));
        push(
            6,
            &format!(
                "- {}",
                q(&format!("{state_ref}/patroni/{n}:/etc/patroni:ro"))
            ),
        );
        push(4, "networks:");
        push(6, &format!("{}: {{}}", q(&t.network.name)));
        push(4, "labels:");
        push(6, &format!("{LABEL_CLUSTER}: {}", q(name)));
        push(6, &format!("{LABEL_NODE}: {}", q(n)));
        push(6, &format!("{LABEL_ENGINE}: \"patroni\""));
        push(4, "shm_size: \"256m\"");
        push(4, "stop_grace_period: \"60s\"");
        push(4, "depends_on:");
        for e in ETCD_SERVICES {
            push(6, &format!("- {}", q(e)));
        }
    }
    push(0, "networks:");
    push(2, &format!("{}:", q(&t.network.name)));
    push(4, "labels:");
    push(6, &format!("{LABEL_CLUSTER}: {}", q(name)));
    if let Some(subnet) = t.subnet() {
        push(4, "ipam:");
        push(6, "config:");
        push(8, &format!("- subnet: {}", q(&subnet.to_string())));
    }
    let volumes: Vec<&str> = t
        .nodes
        .iter()
        .filter_map(|n| match &n.data {
            crate::model::Storage::Volume(v) => Some(v.as_str()),
            crate::model::Storage::Bind(_) => None,
        })
        .collect();
    if !volumes.is_empty() {
        push(0, "volumes:");
        for v in volumes {
            push(2, &format!("{}:", q(v)));
            push(4, "labels:");
            push(6, &format!("{LABEL_CLUSTER}: {}", q(name)));
        }
    }
    y
}

/// One step of putting the exported files to work on a host, as README
/// says it and as the several-hosts test does it: both read this list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStep {
    /// Debian packages to install.
    Install(Vec<String>),
    /// A file of the export copied to a path on the host, with its mode.
    Copy {
        /// Relative to the export folder; `{node}` is the host's node.
        from: String,
        to: String,
        mode: u32,
        /// Only on the etcd members.
        etcd_only: bool,
    },
    /// A service of the Debian packages enabled and started
    /// (`systemctl enable --now`), in this order.
    Start { unit: String, etcd_only: bool },
    /// SQL run once on the leader, once Patroni has bootstrapped it.
    OnLeader(String),
}

/// The steps for a topology of `major` (see [`HostStep`]).
pub fn host_steps(t: &Topology) -> Vec<HostStep> {
    let major = t
        .cluster
        .declared_major()
        .unwrap_or(crate::version::DEFAULT);
    let copy = |from: &str, to: &str, mode: u32, etcd_only: bool| HostStep::Copy {
        from: from.into(),
        to: to.into(),
        mode,
        etcd_only,
    };
    vec![
        // Debian's patroni does not pull in an etcd client library:
        // python3-etcd, or Patroni finds no usable DCS.
        HostStep::Install(vec![
            format!("postgresql-{major}"),
            "patroni".into(),
            "python3-etcd".into(),
            "etcd-server".into(),
            "etcd-client".into(),
        ]),
        copy(
            "{node}/patroni.yml",
            "/etc/patroni/config.yml",
            0o644,
            false,
        ),
        copy("{node}/etcd.env", "/etc/default/etcd", 0o644, true),
        // Debian's patroni.service reads this file (root reads it before
        // the service drops to the postgres user): owner-only.
        copy("secrets.env", "/etc/patroni_env.conf", 0o600, false),
        HostStep::Start {
            unit: "etcd".into(),
            etcd_only: true,
        },
        HostStep::Start {
            unit: "patroni".into(),
            etcd_only: false,
        },
        // Patroni bootstraps the `postgres` database only.
        HostStep::OnLeader(format!(
            "CREATE DATABASE {} OWNER {}",
            sql_ident(t.database.name.get_ref().as_str()),
            sql_ident(t.database.owner.get_ref().as_str())
        )),
    ]
}

/// The steps as README's numbered list (Markdown).
pub fn host_steps_markdown(steps: &[HostStep]) -> String {
    let on = |etcd_only: bool| {
        if etcd_only {
            "on the first three hosts (the etcd members), "
        } else {
            "on every host, "
        }
    };
    let mut out = String::new();
    for (i, s) in steps.iter().enumerate() {
        let n = i + 1;
        let line = match s {
            HostStep::Install(p) => format!("On every host: `apt-get install {}`.", p.join(" ")),
            HostStep::Copy {
                from,
                to,
                mode,
                etcd_only,
            } => format!(
                "{}copy `DIR/{}` to `{to}`, mode `{mode:04o}`{}.",
                capitalise(on(*etcd_only)),
                from.replace("{node}", "<node>"),
                if *mode == 0o600 {
                    ", owned by root (the passwords: never commit it)"
                } else {
                    ""
                }
            ),
            HostStep::Start { unit, etcd_only } => {
                format!("{}`systemctl enable --now {unit}`.", capitalise(on(*etcd_only)))
            }
            HostStep::OnLeader(sql) => format!(
                "Once `patronictl -c /etc/patroni/config.yml list` shows a leader, on it: `psql -U <owner> -d postgres -c '{sql}'`."
            ),
        };
        out.push_str(&format!("{n}. {line}\n"));
    }
    out
}

/// A SQL identifier, quoted.
fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
