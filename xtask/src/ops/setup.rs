//! Setting a cluster up, written once (the `setup-sync` and `setup-async`
//! tasks and the bench use it): from nothing (or a half-built cluster) to
//! a verified streaming cluster, in phases. Every step checks the live
//! state first, so a re-run on a healthy cluster changes nothing and
//! verifies again, and a re-run after an interruption finishes the job.

use crate::cluster::Cluster;
use crate::docker::port_in_use;
use crate::fsx::Access;
use crate::ops::clone::clone_standby;
use crate::ops::container::{data_initialized, own_mounts};
use crate::ops::live as status;
use crate::pg_image::{Absent, Resolved};
use crate::runner::FileOp;
use crate::secrets::Secrets;
use anyhow::{bail, Context, Result};
use cluster_config::compose;
use cluster_config::net::Cidr;
use cluster_config::render;
use cluster_config::{Mode, Storage};
use std::time::{Duration, Instant};

/// What a setup is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The mode the topology must have (`setup-sync` or `setup-async`).
    pub mode: Mode,
    /// How long to wait for each server or condition.
    pub timeout: Duration,
    /// What to do about an absent image.
    pub absent: Absent,
}

/// Each phase's duration, printed at the end.
struct Phases(Vec<(&'static str, Duration)>, Instant);

impl Phases {
    fn done(&mut self, name: &'static str) {
        let now = Instant::now();
        self.0.push((name, now - self.1));
        self.1 = now;
    }
}

/// The whole setup: preflight, files, primary, role, standbys, verify.
pub fn run(c: &Cluster, plan: &Plan) -> Result<()> {
    // An interrupted failover, switchover or rejoin is finished first:
    // setup starts every node, and would start a half-moved one.
    crate::ops::journal::refuse_if_unfinished(c)?;
    let started = Instant::now();
    let mut phases = Phases(vec![], started);
    let image = preflight(c, plan)?;
    phases.done("preflight");
    let (secrets, subnet, primary, fresh) = prepare(c, &image)?;
    phases.done("prepare");
    start_primary(c, &primary, subnet.as_ref(), fresh, plan.timeout)?;
    phases.done("primary");
    replication_role(c, &primary, &secrets)?;
    phases.done("role");
    standbys(c, &primary, &secrets, plan.timeout)?;
    phases.done("standbys");
    if c.runner().dry_run() {
        say!("dry run: nothing changed");
        return Ok(());
    }
    verify(c, &primary, plan.timeout)?;
    phases.done("verify");
    say!(
        "\n{} is up and verified ({:.1}s):",
        c.name(),
        started.elapsed().as_secs_f64()
    );
    for (name, d) in &phases.0 {
        say!("  {name:<10} {:>6.1}s", d.as_secs_f64());
    }
    let rows = status::collect(c)?;
    say!("\n{}", status::table(&rows));
    Ok(())
}

/// Nothing changes before all of these pass (the topology was validated
/// when the cluster was opened, before Docker was asked anything): the
/// mode, the image, the ports, and everything checked against the image.
fn preflight(c: &Cluster, plan: &Plan) -> Result<Resolved> {
    let t = c.topology();
    if t.replication.mode != plan.mode {
        let other = if plan.mode == Mode::Sync {
            "setup-async"
        } else {
            "setup-sync"
        };
        bail!(
            "{} has mode = \"{:?}\"; use `cargo xtask {other}`",
            c.path(),
            t.replication.mode
        );
    }
    let resolved = c.ensure_image(plan.absent)?.clone();
    for node in &t.nodes {
        let port = *node.port.get_ref();
        if !c.is_running(node.name())? && port_in_use(port) {
            bail!("port {port} on 127.0.0.1, published by node {}, is already in use. Stop what listens there or change the node's `port` in {}.", node.name(), c.path());
        }
    }
    // The topology against what the image's server accepts, the data
    // folders against its major.
    crate::ops::preflight::against_image(c, &resolved)?;
    say!(
        "{}: {} nodes, image {}, {}",
        t.name(),
        t.nodes.len(),
        resolved.describe(),
        c.docker().describe(c.runner())
    );
    Ok(resolved)
}

/// Files (the Compose file, state folders, secrets, the image record),
/// networks and containers (none started), the node configurations, and
/// the mounts given to the servers' user. Returns the secrets, the
/// network's subnet, the primary, and whether its data is still to be made.
fn prepare(c: &Cluster, image: &Resolved) -> Result<(Secrets, Option<Cidr>, String, bool)> {
    let t = c.topology();
    let runner = c.runner();
    let rendered = compose::render(t, c.path(), c.state_ref());
    runner.file(&FileOp::Write {
        path: c.compose_file().to_path_buf(),
        contents: rendered.into_bytes(),
        access: Access::Public,
    })?;
    for node in &t.nodes {
        for st in [&node.data, &node.backup] {
            if let Storage::Bind(dir) = st {
                runner.file(&FileOp::CreateDir {
                    path: c.bind_path(dir),
                    private: true,
                })?;
            }
        }
        runner.file(&FileOp::CreateDir {
            path: c.state_dir().join("conf").join(node.name()),
            private: false,
        })?;
    }
    let secrets = c.secrets()?;
    crate::pg_image::record(&c.state_dir(), &image.image, runner)?;
    runner.run(&c.compose()?.args(["up", "--no-start"]))?;
    let subnet = crate::ops::container::subnet(c)?;
    if let (Some(want), Some(got)) = (t.subnet().map(|s| s.cidr()), subnet) {
        if want != got {
            bail!("network of {} has subnet {got}, but the topology says {want}; `cargo xtask down` and re-run", t.name());
        }
    }
    let configured = t
        .initial_primary()
        .context("no primary")?
        .name()
        .to_string();
    // Roles move after a failover: the live primary, when there is one.
    let live_primary = status::find_primary(c)?;
    let primary = live_primary.clone().unwrap_or(configured);
    // A first start that a killed run left under way is still fresh: the
    // image's init may be running now, and must commit without waiting
    // for standbys that do not exist yet.
    let first_start_under_way = crate::fsx::read_own(&first_start_marker(c), 1024)?.is_some();
    let fresh =
        live_primary.is_none() && (first_start_under_way || !data_initialized(c, &primary)?);
    for node in &t.nodes {
        write_node_conf(
            c,
            node.name(),
            subnet.as_ref(),
            fresh && node.name() == primary,
        )?;
    }
    // Mount ownership, one container per stopped node, side by side.
    let mut stopped = Vec::new();
    for node in &t.nodes {
        if !c.is_running(node.name())? {
            stopped.push(node.name());
        }
    }
    if runner.dry_run() {
        for name in &stopped {
            own_mounts(c, name)?;
        }
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = stopped
                .iter()
                .map(|name| scope.spawn(|| own_mounts(c, name)))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|_| bail!("a step panicked")))
        })?;
    }
    Ok((secrets, subnet, primary, fresh))
}

/// Starts the primary; a fresh one first ran with an empty
/// `synchronous_standby_names` so the image's init could commit, and gets
/// the real one now.
fn start_primary(
    c: &Cluster,
    primary: &str,
    subnet: Option<&Cidr>,
    fresh: bool,
    timeout: Duration,
) -> Result<()> {
    if fresh {
        c.runner().file(&FileOp::Write {
            path: first_start_marker(c),
            contents: format!("{primary}\n").into_bytes(),
            access: Access::Public,
        })?;
    }
    c.runner()
        .run(&c.compose()?.args(["up", "-d", "--no-deps", primary]))?;
    c.wait_ready(primary, timeout)?;
    if fresh {
        // Writing the changed file reloads the running primary.
        write_node_conf(c, primary, subnet, false)?;
        c.runner().file(&FileOp::RemoveFile {
            path: first_start_marker(c),
        })?;
    }
    Ok(())
}

/// Present from just before a fresh primary's first start until it runs
/// with its real configuration: the image's init, which a killed run may
/// leave under way, needs an empty `synchronous_standby_names`.
fn first_start_marker(c: &Cluster) -> std::path::PathBuf {
    c.state_dir().join("first-start")
}

/// The replication role with the generated password (sent on standard
/// input), and the slots.
fn replication_role(c: &Cluster, primary: &str, secrets: &Secrets) -> Result<()> {
    let user = c.topology().replication.user.get_ref();
    let role_sql = format!(
        "SET synchronous_commit = local;\n\
         SELECT format('CREATE ROLE %I WITH REPLICATION LOGIN', {lit}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit})\\gexec\n\
         ALTER ROLE {ident} WITH REPLICATION LOGIN PASSWORD {pw};\n",
        lit = crate::pg::sql::literal(user),
        ident = crate::pg::sql::ident(user),
        pw = crate::pg::sql::literal(secrets.replication.expose()),
    );
    c.sql_mut(primary, &role_sql)?;
    for slot in render::slots(c.topology()) {
        c.sql_mut(primary, &crate::pg::sql::create_slot(&slot))?;
    }
    Ok(())
}

/// Standbys: cloned side by side (each clone is one container), then
/// started together. A running standby is left as it is.
fn standbys(c: &Cluster, primary: &str, secrets: &Secrets, timeout: Duration) -> Result<()> {
    let runner = c.runner();
    let mut to_clone = Vec::new();
    for node in c.topology().nodes.iter().filter(|n| n.name() != primary) {
        let name = node.name();
        if c.is_running(name)? {
            if c.ready(name) && c.sql(name, "SELECT pg_is_in_recovery()")? == "t" {
                say!("{name}: already a running standby");
                continue;
            }
            runner.run(&c.compose()?.args(["stop", name]))?;
        }
        to_clone.push(name);
    }
    let clone = |name: &str| {
        clone_standby(c, name, primary, &secrets.replication)
            .with_context(|| format!("cloning {name} from {primary}"))
    };
    if runner.dry_run() || to_clone.len() < 2 {
        for name in &to_clone {
            clone(name)?;
        }
    } else {
        say!(
            "cloning {} from {primary} side by side",
            to_clone.join(", ")
        );
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = to_clone
                .iter()
                .map(|name| scope.spawn(|| clone(name)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("a clone panicked")))
                .collect()
        });
        // Every clone ran to its end; report each failure.
        let errors: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err().map(|e| format!("{e:#}")))
            .collect();
        if !errors.is_empty() {
            bail!("{}", errors.join("\n"));
        }
    }
    if !to_clone.is_empty() {
        runner.run(
            &c.compose()?
                .args(["up", "-d", "--no-deps"])
                .args(to_clone.iter().copied()),
        )?;
        for name in &to_clone {
            c.wait_ready(name, timeout)?;
        }
    }
    Ok(())
}

fn write_node_conf(c: &Cluster, node: &str, subnet: Option<&Cidr>, bootstrap: bool) -> Result<()> {
    let t = c.topology();
    let n = c.node(node)?;
    let mut conf = render::postgresql_conf(t, n);
    if bootstrap {
        conf.push_str("\n# Bootstrap: the image's first start commits before any standby exists.\nsynchronous_standby_names = ''\n");
    }
    let hba = render::pg_hba_conf(t, n, subnet);
    let dir = c.state_dir().join("conf").join(node);
    let old_conf = std::fs::read_to_string(dir.join("postgresql.conf")).unwrap_or_default();
    let mut changed = false;
    for (file, text) in [("postgresql.conf", &conf), ("pg_hba.conf", &hba)] {
        changed |= c.runner().file(&FileOp::Write {
            path: dir.join(file),
            contents: text.clone().into_bytes(),
            access: Access::Public,
        })?;
    }
    // A running server is reloaded even when the file did not change: a run
    // killed between writing it and the reload left the server on the old
    // settings, and the file alone cannot tell.
    if c.is_running(node)? && c.ready(node) {
        c.sql_mut(node, "SELECT pg_reload_conf()")?;
        if !changed {
            return Ok(());
        }
        // PostgreSQL's catalogue says which changes a reload cannot apply.
        let restart: Vec<String> = cluster_config::pgconf::changed_settings(&old_conf, &conf)
            .into_iter()
            .filter(|(_, restart)| *restart)
            .map(|(name, _)| name)
            .collect();
        if restart.is_empty() {
            say!("{node}: configuration changed and reloaded");
        } else {
            say!(
                "{node}: configuration reloaded; {} take effect only after a restart \
                 (docker restart $(docker ps -q --filter label={}={} --filter label={}={node}))",
                restart.join(", "),
                compose::LABEL_CLUSTER,
                t.name(),
                compose::LABEL_NODE
            );
        }
    }
    Ok(())
}

/// Every standby streams with the sync state the configuration implies, and
/// a synchronously committed row is read back from each.
fn verify(c: &Cluster, primary: &str, timeout: Duration) -> Result<()> {
    let t = c.topology();
    // A failover narrows synchronous_standby_names with ALTER SYSTEM; with
    // every node back, return to the configured value.
    let overridden = c.sql(
        primary,
        "SELECT count(*) FROM pg_settings WHERE name = 'synchronous_standby_names' AND sourcefile LIKE '%postgresql.auto.conf'",
    )?;
    if overridden != "0" {
        crate::ops::sync::set_sync_names(c, primary, &crate::ops::sync::SyncNames::Configured)?;
    }
    let standbys: Vec<&str> = t
        .nodes
        .iter()
        .filter(|n| n.name() != primary)
        .map(|n| n.name())
        .collect();
    let expected = status::expected_sync_states(t, primary);
    c.poll(
        "every standby to stream with the expected sync_state",
        timeout,
        || {
            let rows = status::replication(c, primary)?;
            let ok = standbys.iter().all(|s| {
                rows.iter().any(|r| {
                    r.name == *s
                        && r.state == "streaming"
                        && expected.get(*s).is_none_or(|e| Some(*e) == r.sync_state)
                })
            });
            Ok(ok.then_some(()))
        },
    )?;
    let token = crate::secrets::generate_password()?;
    c.sql_mut(
        primary,
        &format!(
            "SET synchronous_commit = on;\n{}",
            crate::pg::sql::insert_check(&token)
        ),
    )?;
    for s in &standbys {
        c.poll(&format!("the check row on {s}"), timeout, || {
            Ok((c
                .sql(s, &crate::pg::sql::count_check(&token))
                .ok()
                .as_deref()
                == Some("1"))
            .then_some(()))
        })?;
    }
    let how = match t.replication.mode {
        cluster_config::Mode::Sync => "a synchronous commit",
        cluster_config::Mode::Async => "a commit",
    };
    say!(
        "verified: {} standby(s) streaming; {how} on {primary} was read back from each",
        standbys.len()
    );
    Ok(())
}
