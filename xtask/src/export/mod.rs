//! `export`: the cluster a topology describes, as the files to run it with
//! Patroni on several hosts (one `patroni.yml` per node, each etcd member's
//! settings, and the passwords in an owner-only file of their own).

mod cnpg;

use crate::secrets::generate_password;
use crate::{fsx, project};
use anyhow::{bail, Result};
use clap::Args;
use cluster_config::compose::{SECRETS_FILE, STATE_DIR};
use cluster_config::names::NodeName;
use cluster_config::patroni::{self, Host};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Write the files that run this topology with Patroni on several hosts.
///
/// Every node needs the host (name or address) it will run on. The files
/// hold no password: `secrets.env` (owner-only) carries them, for
/// Patroni's PATRONI_SUPERUSER_PASSWORD and PATRONI_REPLICATION_PASSWORD.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// What the files are for: patroni (Patroni 4.1 with etcd, one folder
    /// per host) or cloudnative-pg (a Cluster and a Secret manifest)
    #[arg(long, value_enum)]
    pub engine: crate::cli::Engine,
    /// Patroni's DCS timings in the exported files (--engine patroni)
    #[arg(long, value_enum, default_value_t)]
    pub patroni_timings: crate::cli::TimingsArg,
    /// Folder to write into (one sub-folder per node)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Where a node runs, as NODE=HOST (repeat for every node): an address
    /// or a host name other machines reach it at (IPv6 as fd00::1 or [fd00::1])
    #[arg(long = "host", value_name = "NODE=HOST", value_parser = parse_host)]
    pub hosts: Vec<(NodeName, Host)>,
    /// Replace the files of an earlier export in DIR, its passwords included
    /// (without it, a DIR holding a secrets.env is refused: those passwords
    /// may belong to a deployed cluster)
    #[arg(long)]
    pub force: bool,
}

fn parse_host(v: &str) -> Result<(NodeName, Host), String> {
    let (node, host) = v
        .split_once('=')
        .ok_or_else(|| format!("`{v}` is not NODE=HOST"))?;
    let node: NodeName = node.parse().map_err(|e| format!("{e}"))?;
    Ok((
        node,
        host.parse()
            .map_err(|e: cluster_config::patroni::HostError| e.to_string())?,
    ))
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let loaded = project::load_valid(&args.topology.resolve())?;
    match args.engine {
        crate::cli::Engine::Patroni => patroni_files(args, &loaded),
        crate::cli::Engine::CloudnativePg => cnpg::run(args, &loaded),
        crate::cli::Engine::Pgrepl => bail!(
            "the tool's own engine needs no export: `cargo xtask render` writes its Compose file and configurations"
        ),
    }
}

/// One folder per host: `patroni.yml`, `etcd.env` on the etcd members,
/// `secrets.env`, and `STEPS.md` with what to do on each host.
fn patroni_files(args: &ExportArgs, loaded: &cluster_config::Loaded) -> Result<()> {
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
    let layout = patroni::Layout {
        timings: args.patroni_timings.timings(),
        ..patroni::Layout::hosts(t, hosts)
    };
    let files = match patroni::render(t, &layout) {
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
    let existing = cluster_secrets(t)?;
    let superuser = or_new(&existing, crate::secrets::OWNER)?;
    let replication = or_new(&existing, crate::secrets::REPLICATION)?;
    let secrets_text = format!(
        "# Passwords of cluster {}: copy to each host privately, never commit.\n\
         PATRONI_SUPERUSER_PASSWORD={superuser}\nPATRONI_REWIND_PASSWORD={superuser}\nPATRONI_REPLICATION_PASSWORD={replication}\n",
        t.name()
    );
    // Everything is built; now the folder. An earlier export's passwords
    // are never replaced silently.
    let secrets_path = args.out.join("secrets.env");
    if std::fs::symlink_metadata(&secrets_path).is_ok() && !args.force {
        bail!(
            "{} already exists: its passwords may be those of a deployed cluster. Export into an empty folder, \
             or pass --force to replace every file of the earlier export; nothing was written",
            secrets_path.display()
        );
    }
    let mut writes: Vec<(PathBuf, &str, fsx::Access)> = Vec::new();
    for (node, yml) in &files.nodes {
        writes.push((
            args.out.join(node).join("patroni.yml"),
            yml,
            fsx::Access::Public,
        ));
    }
    for (node, env) in &files.etcd {
        writes.push((
            args.out.join(node).join("etcd.env"),
            env,
            fsx::Access::Public,
        ));
    }
    writes.push((secrets_path, &secrets_text, fsx::Access::Private));
    let steps = steps_text(t, &files);
    writes.push((args.out.join("STEPS.md"), &steps, fsx::Access::Public));
    // Every target is checked before the first is written: a planted link
    // at any of them stops the export with nothing written.
    fsx::create_dir(&args.out)?;
    for (path, _, _) in &writes {
        if let Some(dir) = path.parent() {
            if std::fs::symlink_metadata(dir).is_ok() {
                fsx::create_dir(dir)?;
            }
        }
        fsx::check_target(path)?;
    }
    for (path, text, access) in &writes {
        fsx::write(path, text.as_bytes(), *access)?;
    }
    say!(
        "{}: Patroni files for {} node(s) and {} etcd member(s) in {} (passwords in secrets.env, owner-only)",
        t.name(),
        files.nodes.len(),
        files.etcd.len(),
        args.out.display()
    );
    Ok(())
}

/// `STEPS.md`: README's steps with this export's nodes.
fn steps_text(t: &cluster_config::Topology, files: &patroni::Files) -> String {
    let members: Vec<&str> = files.etcd.iter().map(|(n, _)| n.as_str()).collect();
    format!(
        "# Running cluster {} with Patroni\n\nNodes (one per host): {}. etcd members: {}.\n\n{}",
        t.name(),
        files
            .nodes
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        members.join(", "),
        patroni::host_steps_markdown(&patroni::host_steps(t))
            .replace(
                "the first three hosts (the etcd members)",
                &format!("the etcd members ({})", members.join(", "))
            )
            .replace("DIR/", "")
    )
}

/// The cluster's own secrets file (`state/<cluster>/secrets.env`), empty
/// when it has none: an export reuses a deployed cluster's passwords.
fn cluster_secrets(t: &cluster_config::Topology) -> Result<String> {
    Ok(crate::secrets::read(
        &project::root()
            .join(STATE_DIR)
            .join(t.name())
            .join(SECRETS_FILE),
    )?
    .unwrap_or_default())
}

/// The password under `key` in `existing`, or a new one.
fn or_new(existing: &str, key: &str) -> Result<String> {
    match crate::secrets::get(existing, key) {
        Some(p) => Ok(p),
        None => generate_password(),
    }
}
