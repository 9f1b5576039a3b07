//! The Patroni engine on Docker Compose: the same topology run by Patroni
//! 4.1 (Debian forky's 4.1.5, with PostgreSQL 18) and a three-member etcd,
//! set up and read by the tool, which then only watches (Patroni detects
//! failures and promotes).
//!
//! Members are read from Patroni's REST API (`GET /cluster`) on each node's
//! published REST port (see `cluster_config::patroni::rest_port`).

use crate::cluster::Cluster;
use crate::ops::container::one_off_as;
use crate::project;
use crate::runner::Runner;
use crate::secrets::write_private;
use anyhow::{bail, Context, Result};
use cluster_config::compose::LABEL_CLUSTER;
use cluster_config::patroni::{self, Host, Layout, Timings};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub const IMAGE: &str = crate::debian_image::PATRONI_TAG;

/// One member as Patroni's REST API reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub name: String,
    pub role: MemberRole,
    pub state: MemberState,
    pub timeline: Option<u64>,
    /// Bytes behind the leader, as Patroni reports it.
    #[serde(default, deserialize_with = "lag")]
    pub lag: Option<i64>,
}

/// A member's role in `GET /cluster`; a role this tool does not know is
/// kept with its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Leader,
    SyncStandby,
    QuorumStandby,
    Replica,
    StandbyLeader,
    #[serde(untagged)]
    Other(String),
}

/// A member's state in `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    Running,
    Streaming,
    Starting,
    Stopped,
    #[serde(untagged)]
    Other(String),
}

impl std::fmt::Display for MemberRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        f.write_str(v.as_str().unwrap_or("?"))
    }
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        f.write_str(v.as_str().unwrap_or("?"))
    }
}

/// Patroni reports lag as bytes, or as `"unknown"` for a member it cannot
/// place: that is no lag to show.
fn lag<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(v.and_then(|v| v.as_i64()))
}

/// The Compose file of the Patroni engine of a cluster.
pub fn compose_file(c: &Cluster) -> PathBuf {
    c.state_dir().join("compose-patroni.yml")
}

/// The same cluster, with Compose commands going to its Patroni file.
/// The cluster run by Patroni. The Patroni image holds one major (see
/// [`crate::debian_image::PATRONI_WHAT`]): a topology of another major is
/// refused, never run on that one behind the user's back.
pub fn engine<'r>(c: Cluster<'r>) -> Result<Cluster<'r>> {
    let major = crate::debian_image::PATRONI_MAJOR;
    match c.topology().cluster.declared_major() {
        Some(m) if m.get() == major => {}
        other => bail!(
            "the Patroni engine runs PostgreSQL {major} ({} in {IMAGE}), but {} asks for {}: \
             set `postgres = {major}` in its [cluster] to run it under Patroni",
            crate::debian_image::PATRONI_WHAT,
            c.path(),
            other
                .map(|m| format!("PostgreSQL {m}"))
                .unwrap_or_else(|| "an image of its own".into())
        ),
    }
    let file = compose_file(&c);
    Ok(c.with_compose_file(file, IMAGE))
}

/// An HTTP request to Patroni's REST API on 127.0.0.1:`port` (ureq), with
/// a deadline and no proxy (traffic stays on loopback); returns the status
/// code and body.
pub fn http(port: u32, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let port = u16::try_from(port).with_context(|| format!("REST port {port} is out of range"))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}{path}");
    let answer = match (method, body) {
        ("GET", _) => agent.get(&url).call(),
        ("PATCH", Some(b)) => agent
            .patch(&url)
            .header("Content-Type", "application/json")
            .send(b),
        ("POST", Some(b)) => agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(b),
        _ => anyhow::bail!("no {method} with this body to Patroni's REST API"),
    };
    let mut resp = answer.with_context(|| format!("{method} {url}"))?;
    let code = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer to {method} {url}"))?;
    Ok((code, text))
}

/// Parses `GET /cluster`.
pub fn parse_cluster(body: &str) -> Result<Vec<Member>> {
    #[derive(Deserialize)]
    struct ClusterAnswer {
        members: Vec<Member>,
    }
    let v: ClusterAnswer = serde_json::from_str(body).context("reading Patroni's /cluster")?;
    Ok(v.members)
}

/// The members, from the first node whose REST API answers.
pub fn members(c: &Cluster) -> Result<Vec<Member>> {
    let mut last = None;
    for n in &c.topology().nodes {
        match http(
            patroni::rest_port(*n.port.get_ref()),
            "GET",
            "/cluster",
            None,
        ) {
            Ok((200, body)) => return parse_cluster(&body),
            Ok((code, _)) => last = Some(anyhow::anyhow!("{} answered {code}", n.name())),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no node"))).context("no Patroni REST API answers")
}

/// What keeps a Patroni cluster from being healthy: Patroni's own view
/// first, then, when that looks right, whether every replica really streams.
pub fn health(c: &Cluster, members: &[Member]) -> Result<Vec<String>> {
    let p = problems(c, members);
    if !p.is_empty() {
        return Ok(p);
    }
    streaming_problems(c, members)
}

/// What makes a Patroni cluster healthy here: one running leader, every
/// other node a replica that streams, and with synchronous mode as many
/// `sync_standby` members as the topology asks.
fn problems(c: &Cluster, members: &[Member]) -> Vec<String> {
    let mut out = Vec::new();
    let leaders: Vec<&Member> = members
        .iter()
        .filter(|m| m.role == MemberRole::Leader)
        .collect();
    if leaders.len() != 1 {
        out.push(format!("{} leaders", leaders.len()));
    }
    for n in &c.topology().nodes {
        match members.iter().find(|m| m.name == n.name()) {
            None => out.push(format!("{} is not a member", n.name())),
            Some(m) if m.role == MemberRole::Leader && m.state != MemberState::Running => {
                out.push(format!("leader {} is {}", m.name, m.state))
            }
            Some(m)
                if m.role != MemberRole::Leader
                    && !matches!(m.state, MemberState::Streaming | MemberState::Running) =>
            {
                out.push(format!("{} is {}", m.name, m.state))
            }
            _ => {}
        }
    }
    // FIRST n: n sync_standby members; ANY n: at least n quorum_standby
    // members (Patroni 4.1's quorum mode).
    let (want, role) = match crate::ops::live::configured_sync_names(c.topology()) {
        Some(s) if s.method == cluster_config::syncrep::Method::Any => {
            (s.num_sync, MemberRole::QuorumStandby)
        }
        Some(s) => (s.num_sync, MemberRole::SyncStandby),
        None => (0, MemberRole::SyncStandby),
    };
    let have = members.iter().filter(|m| m.role == role).count();
    if have < want as usize {
        out.push(format!("{have} {role} member(s), {want} wanted"));
    }
    out
}

fn sync_count(c: &Cluster) -> u32 {
    crate::ops::live::configured_sync_names(c.topology())
        .map(|s| s.num_sync)
        .unwrap_or(0)
}

pub fn table(members: &[Member]) -> String {
    let mut out = format!(
        "{:<18} {:<13} {:<10} {:>4} {:>10}\n",
        "MEMBER", "ROLE", "STATE", "TL", "LAG"
    );
    for m in members {
        out.push_str(&format!(
            "{:<18} {:<13} {:<10} {:>4} {:>10}\n",
            m.name,
            m.role,
            m.state,
            m.timeline.map(|t| t.to_string()).unwrap_or("-".into()),
            m.lag.map(|l| l.to_string()).unwrap_or("-".into()),
        ));
    }
    out
}

/// The leader's name, when there is exactly one running leader.
pub fn leader(members: &[Member]) -> Option<String> {
    let l: Vec<&Member> = members
        .iter()
        .filter(|m| m.role == MemberRole::Leader && m.state == MemberState::Running)
        .collect();
    (l.len() == 1).then(|| l[0].name.clone())
}

/// From nothing to a Patroni cluster of the topology, verified.
pub fn setup(c: &Cluster, runner: &dyn Runner, timings: Timings, timeout: Duration) -> Result<()> {
    preflight(c, runner)?;
    ensure_image(c, runner)?;
    let mut layout = refuse_what_patroni_cannot_express(c, timings)?;
    let secrets = c.secrets()?;
    if !runner.dry_run() {
        write_cluster_files(c, &secrets)?;
    }
    runner.run(&c.compose()?.args(["up", "--no-start"]))?;
    // Replication may come from the cluster network only.
    let subnet = match crate::ops::container::subnet(c)? {
        Some(cidr) => cidr.to_string(),
        None if runner.dry_run() => "<subnet>".into(),
        None => bail!("the cluster network has no IPv4 subnet"),
    };
    layout.replication_from = Some(vec![subnet]);
    let t = c.topology();
    let files = patroni::render(t, &layout).map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    if !runner.dry_run() {
        for (node, yml) in &files.nodes {
            let dir = c.state_dir().join("patroni").join(node);
            std::fs::create_dir_all(&dir)?;
            project::write_if_changed(&dir.join("patroni.yml"), yml)?;
        }
    }
    for n in &t.nodes {
        runner.run(&one_off_as(c, n.name(), "install", Some("0"), &[])?.args([
            "-d",
            "-m",
            "0700",
            "-o",
            "postgres",
            "-g",
            "postgres",
            patroni::DATA_DIR,
        ]))?;
    }
    runner.run(&c.compose()?.args(["up", "-d"]))?;
    if runner.dry_run() {
        say!("dry run: nothing changed");
        return Ok(());
    }
    let members = wait_healthy(c, timeout)?;
    let leader = leader(&members).context("no leader")?;
    create_database(c, &leader)?;
    if sync_count(c) > 0 {
        crate::ops::sync::prove_sync_commit(c, &leader, Duration::from_secs(30))?;
    }
    say!("\n{}", table(&members));
    say!("{}: Patroni cluster up; leader {leader}", c.name());
    Ok(())
}

/// What is refused before anything changes: a node named like an etcd
/// service, ports out of range, shared or in use, and a cluster the tool's
/// own engine runs.
fn preflight(c: &Cluster, runner: &dyn Runner) -> Result<()> {
    let t = c.topology();
    for n in &t.nodes {
        if patroni::ETCD_SERVICES.contains(&n.name()) {
            bail!(
                "node {} has the name of one of the Patroni engine's etcd services ({}); rename it in {}",
                n.name(),
                patroni::ETCD_SERVICES.join(", "),
                c.path()
            );
        }
    }
    check_ports(c)?;
    // The tool's own engine must not be running this cluster.
    let other = runner.run(
        &c.docker()
            .cmd()
            .args(["ps", "-a", "--filter"])
            .arg(format!("label={LABEL_CLUSTER}={}", c.name()))
            .args(["--format", "{{.Label \"io.pgrepl.engine\"}}"])
            .read_only(),
    )?;
    if other.stdout.lines().any(|l| l.trim() != "patroni") {
        bail!(
            "cluster {} already runs with this tool's own engine; `cargo xtask down -t {}` first (add --purge to start from empty data)",
            c.name(),
            c.path()
        );
    }
    Ok(())
}

/// Ports, as the tool's own engine checks them: every PostgreSQL port and
/// every REST port (PostgreSQL's + 1000) in range, distinct from each
/// other, and free unless the node already runs.
fn check_ports(c: &Cluster) -> Result<()> {
    let mut taken: BTreeMap<u32, String> = BTreeMap::new();
    for n in &c.topology().nodes {
        let pg = u32::from(*n.port.get_ref());
        let rest = patroni::rest_port(*n.port.get_ref());
        if rest > u32::from(u16::MAX) {
            bail!(
                "node {} publishes PostgreSQL on {pg}: its Patroni REST API would be on {rest} (port + 1000), beyond 65535; \
                 give it a port of at most 64535 in {}",
                n.name(),
                c.path()
            );
        }
        for (port, what) in [(pg, "PostgreSQL"), (rest, "Patroni REST API")] {
            let this = format!("{}'s {what}", n.name());
            if let Some(other) = taken.insert(port, this.clone()) {
                bail!(
                    "port {port} would serve both {other} and {this} (REST ports are PostgreSQL's + 1000); change a node's `port` in {}",
                    c.path()
                );
            }
            if !c.is_running(n.name())? && crate::docker::port_in_use(port as u16) {
                bail!(
                    "port {port} on 127.0.0.1, for {this}, is already in use. Stop what listens there or change the node's `port` in {}.",
                    c.path()
                );
            }
        }
    }
    Ok(())
}

/// The Patroni image, built from Debian packages when absent.
fn ensure_image(c: &Cluster, runner: &dyn Runner) -> Result<()> {
    if c.docker().has_image(runner, IMAGE)? {
        return Ok(());
    }
    say!(
        "image {IMAGE} is not in the Docker engine: building it from Debian packages ({})",
        crate::debian_image::PATRONI_WHAT
    );
    crate::debian_image::build(
        &crate::debian_image::Spec {
            tag: IMAGE.into(),
            major: cluster_config::version::Major::new(crate::debian_image::PATRONI_MAJOR)
                .map_err(anyhow::Error::msg)?,
            mirror: None,
            suite: crate::debian_image::PATRONI_SUITE.into(),
            force: false,
            patroni: true,
        },
        runner,
    )
}

/// The cluster's Patroni layout (every node and etcd member on the Compose
/// network), refused with every reason when Patroni cannot express the
/// topology, before anything is written.
fn refuse_what_patroni_cannot_express(c: &Cluster, timings: Timings) -> Result<Layout> {
    let t = c.topology();
    let host = |name: &str| name.parse::<Host>().map_err(anyhow::Error::msg);
    let hosts: BTreeMap<String, Host> = t
        .nodes
        .iter()
        .map(|n| Ok((n.name().to_string(), host(n.name())?)))
        .collect::<Result<_>>()?;
    let etcd: Vec<(String, Host)> = patroni::ETCD_SERVICES
        .iter()
        .map(|e| Ok((e.to_string(), host(e)?)))
        .collect::<Result<_>>()?;
    let layout = Layout {
        hosts,
        etcd,
        replication_from: Some(vec![]),
        timings,
    };
    if let Err(errors) = patroni::render(t, &layout) {
        bail!(
            "{} cannot run on Patroni:\n  {}",
            c.path(),
            errors.join("\n  ")
        );
    }
    Ok(layout)
}

/// The passwords (owner-only), the Compose file and the data folders.
fn write_cluster_files(c: &Cluster, secrets: &crate::secrets::Secrets) -> Result<()> {
    write_private(
        &c.state_dir().join("patroni.env"),
        &format!(
            "PATRONI_SUPERUSER_PASSWORD={o}\nPATRONI_REWIND_PASSWORD={o}\nPATRONI_REPLICATION_PASSWORD={r}\n",
            o = secrets.owner.expose(),
            r = secrets.replication.expose()
        ),
    )?;
    let t = c.topology();
    project::write_if_changed(&compose_file(c), &patroni::compose(t, ".", IMAGE))?;
    for n in &t.nodes {
        if let cluster_config::Storage::Bind(dir) = &n.data {
            std::fs::create_dir_all(c.bind_path(dir))?;
        }
    }
    Ok(())
}

/// The topology's database: Patroni bootstraps `postgres` only.
fn create_database(c: &Cluster, leader: &str) -> Result<()> {
    let t = c.topology();
    let db = t.database.name.get_ref().as_str();
    let owner = t.database.owner.get_ref().as_str();
    let exists = c.sql_in(
        leader,
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = {}",
            crate::pg::sql::literal(db)
        ),
    )?;
    if exists.trim() == "0" {
        c.sql_in(
            leader,
            "postgres",
            &format!(
                "CREATE DATABASE {} OWNER {}",
                crate::pg::sql::ident(db),
                crate::pg::sql::ident(owner)
            ),
        )?;
    }
    Ok(())
}

/// What the leader's `pg_stat_replication` says Patroni's member list does
/// not: every other node streams from it (a member list read at the wrong
/// moment still shows a replica that has not connected yet as `running`).
fn streaming_problems(c: &Cluster, members: &[Member]) -> Result<Vec<String>> {
    let Some(leader) = leader(members) else {
        return Ok(vec!["no leader".into()]);
    };
    // In `postgres`: Patroni creates the topology's database only once the
    // cluster is up.
    let repl = c.sql_in(
        &leader,
        "postgres",
        "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
    )?;
    Ok(c.topology()
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| *n != leader)
        .filter(|n| !repl.lines().any(|r| r.trim() == *n))
        .map(|n| format!("{n} does not stream from {leader}"))
        .collect())
}

/// Polls until the members are healthy; returns them.
pub fn wait_healthy(c: &Cluster, timeout: Duration) -> Result<Vec<Member>> {
    let mut last = String::new();
    c.poll(
        "the Patroni cluster to have a leader and streaming replicas",
        timeout,
        || {
            let m = members(c)?;
            let p = health(c, &m)?;
            last = p.join("; ");
            Ok(p.is_empty().then_some(m))
        },
    )
    .map_err(|e| e.context(format!("last seen: {last}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_members_are_read_from_the_rest_api_answer() {
        let body = r#"{"members": [
            {"name": "master-db", "role": "leader", "state": "running", "api_url": "http://master-db:8008/patroni", "host": "master-db", "port": 5432, "timeline": 1},
            {"name": "slave1-db", "role": "sync_standby", "state": "streaming", "host": "slave1-db", "port": 5432, "timeline": 1, "lag": 0},
            {"name": "slave2-db", "role": "replica", "state": "streaming", "host": "slave2-db", "port": 5432, "timeline": 1, "lag": 16}
        ], "scope": "semi-sync"}"#;
        let m = parse_cluster(body).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(leader(&m).as_deref(), Some("master-db"));
        assert_eq!(m[2].lag, Some(16));
        assert_eq!(m[0].lag, None);
        let t = table(&m);
        assert!(t.contains("sync_standby"), "{t}");
        assert!(parse_cluster("not json").is_err());
        let two = [
            m[0].clone(),
            Member {
                name: "x".into(),
                ..m[0].clone()
            },
        ];
        assert_eq!(leader(&two), None);
        // Roles and states this tool does not know, and lag Patroni cannot
        // place, are kept as they come, never mistaken for a leader.
        let odd = r#"{"members": [
            {"name": "a", "role": "quorum_standby", "state": "streaming", "lag": "unknown"},
            {"name": "b", "role": "standby_leader", "state": "in archive recovery"},
            {"name": "c", "role": "master", "state": "running"}
        ]}"#;
        let m = parse_cluster(odd).unwrap();
        assert_eq!(m[0].role, MemberRole::QuorumStandby);
        assert_eq!(m[0].lag, None);
        assert_eq!(m[1].state, MemberState::Other("in archive recovery".into()));
        assert_eq!(m[2].role, MemberRole::Other("master".into()));
        assert_eq!(leader(&m), None);
        assert_eq!(m[1].state.to_string(), "in archive recovery");
    }
}
