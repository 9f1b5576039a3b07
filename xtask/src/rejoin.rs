//! `rejoin`: a failed former primary, or a standby that lost its upstream,
//! comes back as a standby of the current primary: pg_rewind where its
//! history diverged (re-cloned if that fails), started only with
//! `standby.signal` in place.

use crate::cluster::Cluster;
use crate::ops::{live, standby, sync};
use crate::project;
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use clap::Args;
use cluster_config::names::NodeName;
use std::time::Duration;

/// Bring a failed node back as a standby of the current primary (pg_rewind, or a re-clone).
#[derive(Debug, Args)]
pub struct RejoinArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// The node to bring back
    #[arg(long, value_name = "NODE")]
    pub node: NodeName,
    /// Print the commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for each step, in seconds
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
}

pub fn run(args: &RejoinArgs, runner: &dyn Runner) -> Result<()> {
    let path = args.topology.resolve();
    let loaded = project::load_valid(&path)?;
    project::require_node(&loaded, &args.node)?;
    let c = Cluster::connect(&path, loaded, runner)?;
    // Data folders of another major than the image's are refused before
    // anything changes.
    crate::ops::preflight::majors(&c, c.image()?.major())?;
    let secrets = c.secrets()?;
    let primary = live::find_primary(&c)?
        .context("no writable primary is running: fail over first (`cargo xtask failover`)")?;
    let node = args.node.as_str();
    if primary == node {
        bail!("{node} is the primary; only a standby or a failed node can rejoin");
    }
    let how = standby::rejoin(
        &c,
        node,
        &primary,
        &secrets,
        Duration::from_secs(args.timeout),
    )?;
    sync::restore_sync_names(&c, &primary)?;
    if runner.dry_run() {
        say!("dry run: nothing changed");
        return Ok(());
    }
    say!("{node}: follows {primary} ({how})");
    say_raw!("\n{}", live::table(&live::collect(&c)?));
    Ok(())
}
