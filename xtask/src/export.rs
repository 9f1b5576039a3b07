//! `export`: the cluster a topology describes, as the files to run it with
//! Patroni on several hosts (one `patroni.yml` per node, each etcd member's
//! settings, and the passwords in an owner-only file of their own).

use crate::cluster::{generate_password, write_private};
use crate::project;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use cluster_config::compose::{SECRETS_FILE, STATE_DIR};
use cluster_config::names::NodeName;
use cluster_config::patroni::{self, Host};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Patroni 3.0 with etcd (Debian's `patroni` and `etcd-server`)
    Patroni,
}

/// Write the files that run this topology with Patroni on several hosts.
///
/// Every node needs the host (name or address) it will run on. The files
/// hold no password: `secrets.env` (owner-only) carries them, for
/// Patroni's PATRONI_SUPERUSER_PASSWORD and PATRONI_REPLICATION_PASSWORD.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// What the files are for
    #[arg(long, value_enum)]
    pub engine: Engine,
    /// Folder to write into (one sub-folder per node)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where a node runs, as NODE=HOST (repeat for every node)
    #[arg(long = "host", value_name = "NODE=HOST", value_parser = parse_host)]
    pub hosts: Vec<(NodeName, Host)>,
}

fn parse_host(v: &str) -> Result<(NodeName, Host), String> {
    let (node, host) = v
        .split_once('=')
        .ok_or_else(|| format!("`{v}` is not NODE=HOST"))?;
    let node: NodeName = node.parse().map_err(|e| format!("{e}"))?;
    Ok((node, host.parse()?))
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let loaded = project::load_valid(&args.topology.resolve())?;
    let t = &loaded.topology;
    let mut hosts = BTreeMap::new();
    for (node, host) in &args.hosts {
        if hosts
            .insert(node.as_str().to_string(), host.clone())
            .is_some()
        {
            bail!("--host {node} is given twice");
        }
    }
    let files = match patroni::render(t, &patroni::Layout::hosts(t, hosts)) {
        Ok(f) => f,
        Err(errors) => bail!(
            "{} cannot be exported for Patroni; nothing was written:\n{}",
            loaded.path,
            errors
                .iter()
                .map(|e| format!("  error: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    for w in &files.warnings {
        say!("warning: {w}");
    }
    // The cluster's own passwords when it has them; new ones otherwise.
    let existing = std::fs::read_to_string(
        project::root()
            .join(STATE_DIR)
            .join(t.name())
            .join(SECRETS_FILE),
    )
    .unwrap_or_default();
    let get = |k: &str| {
        existing
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let superuser = match get("POSTGRES_PASSWORD") {
        Some(p) => p,
        None => generate_password()?,
    };
    let replication = match get("PGREPL_REPLICATION_PASSWORD") {
        Some(p) => p,
        None => generate_password()?,
    };
    for (node, yml) in &files.nodes {
        let dir = args.out.join(node);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        project::write_if_changed(&dir.join("patroni.yml"), yml)?;
    }
    for (node, env) in &files.etcd {
        project::write_if_changed(&args.out.join(node).join("etcd.env"), env)?;
    }
    write_private(
        &args.out.join("secrets.env"),
        &format!(
            "# Passwords of cluster {}: copy to each host privately, never commit.\n\
             PATRONI_SUPERUSER_PASSWORD={superuser}\nPATRONI_REWIND_PASSWORD={superuser}\nPATRONI_REPLICATION_PASSWORD={replication}\n",
            t.name()
        ),
    )?;
    say!(
        "{}: Patroni files for {} node(s) and {} etcd member(s) in {} (passwords in secrets.env, owner-only)",
        t.name(),
        files.nodes.len(),
        files.etcd.len(),
        args.out.display()
    );
    Ok(())
}
