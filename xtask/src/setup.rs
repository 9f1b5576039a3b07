//! `setup-sync` / `setup-async`: from nothing (or a half-built cluster) to a
//! verified streaming cluster. Every step checks the live state first, so a
//! re-run on a healthy cluster changes nothing and verifies again, and a
//! re-run after an interruption finishes the job.

use crate::cluster::Cluster;
use crate::docker::port_in_use;
use crate::fsx::Access;
use crate::ops::clone::clone_standby;
use crate::ops::container::{data_initialized, own_mounts};
use crate::ops::live as status;
use crate::project;
use crate::runner::{FileOp, Runner};
use anyhow::{bail, Context, Result};
use clap::Args;
use cluster_config::compose;
use cluster_config::net::Cidr;
use cluster_config::render::{self};
use cluster_config::{Mode, Storage};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Topology file [default: conf/semi-sync.toml for setup-sync, conf/async-slots.toml for setup-async]
    #[arg(long, short = 't', value_name = "FILE", env = "PGREPL_TOPOLOGY")]
    pub topology: Option<PathBuf>,
    /// Print the docker / psql / pg_basebackup commands in order, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for each server or condition, in seconds
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
    /// Who runs the cluster: this tool, or Patroni with etcd (same topology)
    #[arg(long, value_enum, default_value_t)]
    pub engine: crate::ops::patroni::Engine,
    /// Patroni's DCS timings (--engine patroni)
    #[arg(long, value_enum, default_value_t)]
    pub patroni_timings: crate::ops::patroni::TimingsArg,
    /// When the image is absent and cannot be built here, `docker pull` it
    /// (bounded: at most 10 minutes). Without it nothing is ever pulled
    #[arg(long)]
    pub pull: bool,
}

impl SetupArgs {
    /// What setup does about an absent image.
    pub fn absent(&self) -> crate::pg_image::Absent {
        if self.pull {
            crate::pg_image::Absent::Pull(Duration::from_secs(600))
        } else {
            crate::pg_image::Absent::Build
        }
    }
}

struct Phases(Vec<(&'static str, Duration)>, Instant);

impl Phases {
    fn done(&mut self, name: &'static str) {
        let now = Instant::now();
        self.0.push((name, now - self.1));
        self.1 = now;
    }
}

pub fn run(args: &SetupArgs, mode: Mode, runner: &dyn Runner) -> Result<()> {
    let default = match mode {
        Mode::Sync => "conf/semi-sync.toml",
        Mode::Async => "conf/async-slots.toml",
    };
    let topo_path = args
        .topology
        .as_deref()
        .map(project::resolve)
        .unwrap_or_else(|| project::root().join(default));
    let c = Cluster::open(&topo_path, runner)?;
    let timeout = Duration::from_secs(args.timeout);
    if args.engine == crate::ops::patroni::Engine::Patroni {
        if mode != Mode::Sync && c.topology().replication.mode == Mode::Sync {
            bail!(
                "{} has mode = \"Sync\"; use `cargo xtask setup-sync`",
                c.path()
            );
        }
        let c = crate::ops::patroni::engine(c)?;
        return crate::ops::patroni::setup(&c, runner, args.patroni_timings.timings(), timeout);
    }
    let started = Instant::now();
    let mut phases = Phases(vec![], started);
    let t = c.topology().clone();

    // Preflight: nothing changes before all of these pass (the topology was
    // validated by Cluster::open, before Docker was asked anything).
    if t.replication.mode != mode {
        let other = if mode == Mode::Sync {
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
    let resolved = c.ensure_image(args.absent())?.clone();
    let image = resolved.describe();
    for node in &t.nodes {
        let port = *node.port.get_ref();
        if !c.is_running(node.name())? && port_in_use(port) {
            bail!("port {port} on 127.0.0.1, published by node {}, is already in use. Stop what listens there or change the node's `port` in {}.", node.name(), c.path());
        }
    }
    // The topology against what the image's server accepts, the data
    // folders against its major: before anything changes.
    crate::ops::preflight::against_image(&c, &resolved)?;
    say!(
        "{}: {} nodes, image {image}, {}",
        t.name(),
        t.nodes.len(),
        c.docker().describe(runner)
    );
    phases.done("preflight");

    // Files: compose file, state folders, secrets.
    let rendered = compose::render(&t, c.path(), c.state_ref());
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
    crate::pg_image::record(&c.state_dir(), &resolved.image, runner)?;
    // Networks and containers, none started yet.
    runner.run(&c.compose()?.args(["up", "--no-start"]))?;
    let subnet = crate::ops::container::subnet(&c)?;
    if let (Some(want), Some(got)) = (t.subnet().map(|s| s.cidr()), subnet) {
        if want != got {
            bail!("network of {} has subnet {got}, but the topology says {want}; `cargo xtask down` and re-run", t.name());
        }
    }
    let primary = t
        .initial_primary()
        .context("no primary")?
        .name()
        .to_string();
    let live_primary = status::find_primary(&c)?;
    let primary_name = live_primary.clone().unwrap_or(primary.clone());
    let fresh = live_primary.is_none() && !data_initialized(&c, &primary_name)?;
    for node in &t.nodes {
        write_node_conf(
            &c,
            node.name(),
            subnet.as_ref(),
            fresh && node.name() == primary_name,
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
            own_mounts(&c, name)?;
        }
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = stopped
                .iter()
                .map(|name| scope.spawn(|| own_mounts(&c, name)))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().unwrap_or_else(|_| bail!("a step panicked")))
        })?;
    }
    phases.done("prepare");

    // Primary.
    runner.run(&c.compose()?.args(["up", "-d", "--no-deps", &primary_name]))?;
    c.wait_ready(&primary_name, timeout)?;
    if fresh {
        // First start used an empty synchronous_standby_names so the image's
        // init could commit; now the real one.
        let node = c.node(&primary_name)?;
        // Writing the changed file reloads the running primary.
        write_node_conf(&c, node.name(), subnet.as_ref(), false)?;
    }
    phases.done("primary");

    // Replication role with the generated password (sent on stdin), slots.
    let user = t.replication.user.get_ref();
    let role_sql = format!(
        "SET synchronous_commit = local;\n\
         SELECT format('CREATE ROLE %I WITH REPLICATION LOGIN', {lit}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit})\\gexec\n\
         ALTER ROLE {ident} WITH REPLICATION LOGIN PASSWORD {pw};\n",
        lit = crate::pg::sql::literal(user),
        ident = crate::pg::sql::ident(user),
        pw = crate::pg::sql::literal(secrets.replication.expose()),
    );
    c.sql_mut(&primary_name, &role_sql)?;
    for slot in render::slots(&t) {
        c.sql_mut(&primary_name, &crate::pg::sql::create_slot(&slot))?;
    }
    phases.done("role");

    // Standbys: cloned side by side (each clone is one container), then
    // started together.
    let mut to_clone = Vec::new();
    for node in t.nodes.iter().filter(|n| n.name() != primary_name) {
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
        clone_standby(&c, name, &primary_name, &secrets.replication)
            .with_context(|| format!("cloning {name} from {primary_name}"))
    };
    if runner.dry_run() || to_clone.len() < 2 {
        for name in &to_clone {
            clone(name)?;
        }
    } else {
        say!(
            "cloning {} from {primary_name} side by side",
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
    phases.done("standbys");

    if runner.dry_run() {
        say!("dry run: nothing changed");
        return Ok(());
    }
    verify(&c, &primary_name, timeout)?;
    phases.done("verify");

    say!(
        "\n{} is up and verified ({:.1}s):",
        t.name(),
        started.elapsed().as_secs_f64()
    );
    for (name, d) in &phases.0 {
        say!("  {name:<10} {:>6.1}s", d.as_secs_f64());
    }
    let rows = status::collect(&c)?;
    say!("\n{}", status::table(&rows));
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
    if changed && c.is_running(node)? && c.ready(node) {
        c.sql_mut(node, "SELECT pg_reload_conf()")?;
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
        crate::ops::sync::set_sync_names(c, primary, None)?;
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
