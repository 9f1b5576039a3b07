//! `status`: one row per node, read from the live servers: role, reachable,
//! timeline, LSNs, lag, sync state, slot. Exits non-zero when unhealthy.

use crate::cluster::Cluster;
use crate::ops::live::{collect, healthy, table};
use crate::project;
use anyhow::{bail, Result};
use clap::Args;

/// Show each node's live role, timeline, LSNs, lag, sync state and slot; fail when unhealthy.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs, runner: &dyn crate::runner::Runner) -> Result<()> {
    let c = Cluster::open(&args.topology.resolve(), runner)?;
    let rows = collect(&c)?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        say_raw!("{}", table(&rows));
    }
    if !healthy(&rows) {
        bail!("cluster {} is not healthy", c.name());
    }
    Ok(())
}
