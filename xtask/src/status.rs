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
    /// Read the Patroni engine's members (leader, sync state, lag) from its REST API
    #[arg(long, value_enum, default_value_t)]
    pub engine: crate::cli::Engine,
}

pub fn run(args: &StatusArgs, runner: &dyn crate::runner::Runner) -> Result<()> {
    let c = Cluster::open(&args.topology.resolve(), runner)?;
    if args.engine.runs_here()? == crate::cli::Engine::Patroni {
        use crate::ops::patroni::{health, members, table};
        let m = members(&c)?;
        let p = health(&c, &m)?;
        if args.json {
            say!("{}", serde_json::to_string_pretty(&m)?);
        } else {
            say_raw!("{}", table(&m));
            for line in &p {
                say!("problem: {line}");
            }
        }
        if !p.is_empty() {
            bail!("Patroni cluster {} is not healthy", c.name());
        }
        return Ok(());
    }
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
