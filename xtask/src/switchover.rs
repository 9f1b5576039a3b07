//! `switchover`: a planned, lossless move of the primary (the operation is
//! [`crate::ops::switchover`]).

use crate::cluster::Cluster;
use crate::project;
use crate::runner::Runner;
use anyhow::Result;
use clap::Args;
use cluster_config::names::NodeName;
use std::time::Duration;

/// Move the primary to a standby, planned and lossless; print the write downtime.
#[derive(Debug, Args)]
pub struct SwitchoverArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// The standby that becomes the primary
    #[arg(long, value_name = "NODE")]
    pub to: NodeName,
    /// Print the commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for each step, in seconds
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub fn run(args: &SwitchoverArgs, runner: &dyn Runner) -> Result<()> {
    let path = args.topology.resolve();
    let loaded = project::load_valid(&path)?;
    project::require_node(&loaded, &args.to)?;
    let c = Cluster::connect(&path, loaded, runner)?;
    // Data folders of another major than the image's are refused before
    // anything changes.
    crate::ops::preflight::majors(&c, c.image()?.major())?;
    crate::ops::switchover::run(&c, &args.to, Duration::from_secs(args.timeout))
}
