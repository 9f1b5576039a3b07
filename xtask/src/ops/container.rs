//! Containers of a cluster's nodes: one-off containers of a node's service
//! (its volumes, no ports), ownership of its mounts, what its data folder
//! holds, and starting, stopping, killing and fencing a node.

use crate::cluster::Cluster;
use crate::runner::{Cmd, FileOp};
use anyhow::{bail, Context, Result};
use cluster_config::net::Cidr;
use cluster_config::render::{BACKUP_DIR, PGDATA};
use cluster_config::Storage;

/// A one-off container of the node's service (its volumes, no ports, no
/// entrypoint), running as the server's user.
pub fn one_off(c: &Cluster, node: &str, program: &str) -> Result<Cmd> {
    one_off_as(c, node, program, None, &[])
}

/// A one-off container with the node's mounts, on the cluster network, as
/// `user` (default: the server's), with the named variables passed from
/// this process's environment (`Cmd::secret_env` sets them).
///
/// Once the node's container exists, a plain `docker run --volumes-from`
/// of it: the same mounts and network as `compose run`, without Compose's
/// start-up cost (about half a second) on every step. Before that, `compose
/// run` of the node's service.
pub fn one_off_as(
    c: &Cluster,
    node: &str,
    program: &str,
    user: Option<&str>,
    env: &[&str],
) -> Result<Cmd> {
    let user = user
        .map(str::to_string)
        .or_else(crate::docker::run_as_user)
        .unwrap_or_else(|| "postgres".into());
    let env_args = env.iter().flat_map(|v| ["-e", v]);
    Ok(match c.container(node).ok().flatten() {
        Some(id) => c
            .docker()
            .cmd()
            .args(["run", "--rm", "-i", "--volumes-from", &id, "--network"])
            .arg(network(c))
            .arg("--label")
            .arg(format!(
                "{}={}",
                cluster_config::compose::LABEL_CLUSTER,
                c.name()
            ))
            .args(env_args)
            .args(["-u", &user, "--entrypoint", program])
            .arg(c.one_off_image()?),
        None => c
            .compose()?
            .args(["run", "--rm", "--no-deps", "-T"])
            .args(env_args)
            .args(["-u", &user, "--entrypoint", program, node]),
    })
}

/// Gives the node's data and backup mounts to the server's user, mode 0700:
/// bind folders made by a root host user, and fresh named volumes, belong to
/// root; the server (and the one-off containers) run as `postgres` or as the
/// invoking user.
pub fn own_mounts(c: &Cluster, node: &str) -> Result<()> {
    let (owner, group) = match crate::docker::run_as_user() {
        Some(ug) => {
            let (u, g) = ug.split_once(':').unwrap_or((ug.as_str(), ug.as_str()));
            (u.to_string(), g.to_string())
        }
        None => ("postgres".to_string(), "postgres".to_string()),
    };
    c.runner().run(
        &one_off_as(c, node, "install", Some("0"), &[])?
            .args(["-d", "-m", "0700", "-o"])
            .arg(owner)
            .arg("-g")
            .arg(group)
            .args([PGDATA, BACKUP_DIR]),
    )?;
    Ok(())
}

pub fn data_initialized(c: &Cluster, node: &str) -> Result<bool> {
    let out = c.runner().run_unchecked(
        &one_off(c, node, "test")?
            .args(["-s", &format!("{PGDATA}/PG_VERSION")])
            .read_only(),
    )?;
    Ok(out.success)
}

pub fn port_of(c: &Cluster, node: &str) -> Result<u16> {
    Ok(*c.node(node)?.port.get_ref())
}

/// A node's container id; an error when setup has not created it.
pub fn id_of(c: &Cluster, node: &str) -> Result<String> {
    c.container(node)?
        .with_context(|| format!("{node} has no container"))
}

/// Starts a node's container (created by setup).
pub fn start(c: &Cluster, node: &str) -> Result<()> {
    c.runner()
        .run(&c.compose()?.args(["up", "-d", "--no-deps", node]))?;
    Ok(())
}

/// A clean stop: the server's fast shutdown (SIGINT), which sends all of a
/// primary's WAL to its connected standbys before it exits.
pub fn stop(c: &Cluster, node: &str) -> Result<()> {
    c.runner().run(&c.compose()?.args(["stop", node]))?;
    Ok(())
}

/// SIGKILL: a crash, no shutdown at all.
pub fn kill(c: &Cluster, node: &str) -> Result<()> {
    let id = id_of(c, node)?;
    c.runner()
        .run(&c.docker().cmd().args(["kill", "--signal", "KILL", &id]))?;
    Ok(())
}

/// Marker beside `standby.signal` saying the node was fenced as a failed
/// primary: its data must be rewound before it follows anyone.
pub const FENCE_MARKER: &str = "pgrepl.fenced";

/// Fences a failed or abandoned primary so that it can never take a write
/// again: its container is killed (a partitioned primary is alive), and
/// `standby.signal` is put into its data folder, so that a supervisor or a
/// person starting it again gets a read-only server. `FENCE_MARKER` tells
/// `rejoin` that it still needs pg_rewind.
pub fn fence(c: &Cluster, node: &str) -> Result<()> {
    if c.is_running(node)? {
        kill(c, node)?;
    }
    match &c.node(node)?.data {
        // A bind-mounted folder is written from the host at once (the host
        // user owns it, or is root); a volume through a one-off container.
        Storage::Bind(dir) => {
            let data = c.bind_path(dir);
            for f in ["standby.signal", FENCE_MARKER] {
                c.runner()
                    .file(&FileOp::Write {
                        path: data.join(f),
                        contents: vec![],
                        access: crate::fsx::Access::Private,
                    })
                    .with_context(|| {
                        format!("fencing {node}: writing {f} into {}", data.display())
                    })?;
            }
        }
        _ => {
            c.runner().run(&one_off(c, node, "touch")?.args([
                format!("{PGDATA}/standby.signal"),
                format!("{PGDATA}/{FENCE_MARKER}"),
            ]))?;
        }
    }
    say!("{node}: fenced (container stopped; standby.signal in place, so a restart is read-only)");
    Ok(())
}

/// The cluster network's Docker name.
pub fn network(c: &Cluster) -> String {
    format!("{}_{}", c.name(), c.topology().network.name)
}

/// The IPv4 subnet Docker gave the cluster network (in a dry run before
/// the network exists: the topology's, if it names one).
pub fn subnet(c: &Cluster) -> Result<Option<Cidr>> {
    let net = format!("{}_{}", c.name(), c.topology().network.name);
    let out = c.runner().run_unchecked(
        &c.docker()
            .cmd()
            .args([
                "network",
                "inspect",
                "--format",
                "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
                &net,
            ])
            .read_only(),
    )?;
    if !out.success {
        if c.runner().dry_run() {
            return Ok(c.topology().subnet().map(|s| s.cidr()));
        }
        bail!(
            "network {net} not found after `up --no-start`: {}",
            out.stderr.trim()
        );
    }
    let first = out
        .stdout
        .split_whitespace()
        .find(|s| s.contains('.'))
        .or(out.stdout.split_whitespace().next());
    first
        .map(|s| s.parse::<Cidr>().map_err(anyhow::Error::msg))
        .transpose()
}

/// Cuts a node off the cluster network; it stays alive.
pub fn disconnect(c: &Cluster, node: &str) -> Result<()> {
    let id = id_of(c, node)?;
    c.runner().run(&c.docker().cmd().args([
        "network",
        "disconnect",
        "--force",
        &network(c),
        &id,
    ]))?;
    Ok(())
}

/// Puts a node back on the cluster network under its host name.
pub fn reconnect(c: &Cluster, node: &str) -> Result<()> {
    let id = id_of(c, node)?;
    let out = c.runner().run_unchecked(&c.docker().cmd().args([
        "network",
        "connect",
        "--alias",
        node,
        &network(c),
        &id,
    ]))?;
    if !out.success && !out.stderr.contains("already exists") {
        bail!("reconnecting {node}: {}", out.stderr.trim());
    }
    Ok(())
}

/// Freezes or thaws a node's processes (`docker pause`): its TCP connections
/// stay open but nothing answers. The kernel's freezer gives up ("unable to
/// freeze") while a process sits in an uninterruptible wait, such as an
/// fsync on a busy disk, and leaves the container running: that is retried
/// for a few seconds; any other failure is not.
pub fn pause(c: &Cluster, node: &str, paused: bool) -> Result<()> {
    let id = id_of(c, node)?;
    let verb = if paused { "pause" } else { "unpause" };
    let cmd = c.docker().cmd().args([verb, &id]);
    c.poll(
        &format!("`docker {verb}` of {node}"),
        std::time::Duration::from_secs(15),
        || {
            let out = c.runner().run_unchecked(&cmd)?;
            if out.success {
                return Ok(Some(()));
            }
            let err = out.stderr.trim();
            if err.contains("unable to freeze") {
                bail!("{err}");
            }
            Err(crate::wait::Stop(format!("`docker {verb}` of {node} failed: {err}")).into())
        },
    )
}
