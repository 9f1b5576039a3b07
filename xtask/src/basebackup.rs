//! `basebackup`: re-clones standbys the runbook's way (steps 6-8), made safe:
//! `pg_basebackup` into the node's own backup folder while it keeps serving,
//! `pg_verifybackup`, then stop, replace the data folder with the verified
//! copy (old data removed only after the new is complete), start, and wait
//! until it streams and has caught up. A killed run is finished by a re-run.

use crate::cluster::Cluster;
use crate::project;
use crate::runner::Runner;
use anyhow::{bail, Result};
use clap::Args;
use std::time::Duration;

/// Re-clone standbys from the live primary through their backup folders, verified and resumable.
#[derive(Debug, Args)]
pub struct BasebackupArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// Standby to re-clone (repeatable) [default: every standby]
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<cluster_config::names::NodeName>,
    /// Print the commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the standby to stream and catch up, in seconds
    #[arg(long, default_value_t = 180)]
    pub timeout: u64,
}

pub fn run(args: &BasebackupArgs, runner: &dyn Runner) -> Result<()> {
    let path = args.topology.resolve();
    let loaded = project::load_valid(&path)?;
    // Named nodes are checked against the topology before Docker is asked.
    for (i, n) in args.nodes.iter().enumerate() {
        if args.nodes[..i].contains(n) {
            bail!("--node {n} is given twice: name each standby once");
        }
        project::require_node(&loaded, n)?;
    }
    let c = Cluster::connect(&path, loaded, runner)?;
    // Data folders of another major than the image's are refused before
    // anything changes.
    crate::ops::preflight::majors(&c, c.image()?.major())?;
    crate::ops::clone::reclone_standbys(&c, &args.nodes, Duration::from_secs(args.timeout))
}
