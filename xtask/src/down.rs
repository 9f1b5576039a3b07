//! `down`: removes exactly the containers and networks that carry the
//! cluster's label (and with `--purge` its volumes and state folder). It
//! needs neither the Compose file nor the secrets file, and creates nothing
//! (the operation is [`crate::ops::down`]).

use crate::cluster::Cluster;
use crate::project;
use crate::runner::Runner;
use anyhow::Result;
use clap::Args;

/// Remove a cluster's containers and network; data is kept unless --purge.
#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// Also remove the cluster's named volumes and its state folder (data, backups, configs, secrets)
    #[arg(long)]
    pub purge: bool,
    /// Print the commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &DownArgs, runner: &dyn Runner) -> Result<()> {
    let c = Cluster::open(&args.topology.resolve(), runner)?;
    crate::ops::down::run(&c, args.purge)
}
