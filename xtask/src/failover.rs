//! `failover`: the primary is gone or must be abandoned. Fence it, promote
//! the standby that holds every acknowledged commit (or refuse, unless
//! `--allow-data-loss`), re-point the others, make the new primary
//! synchronous with the standbys connected now, prove one synchronous
//! commit, and show the cluster.

use crate::cluster::Cluster;
use crate::ops::live;
use crate::project;
use crate::runner::Runner;
use anyhow::Result;
use clap::Args;
use cluster_config::names::NodeName;
use std::time::Duration;

/// Promote a standby now: the primary is down, or must be abandoned (it is fenced first).
#[derive(Debug, Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// The standby to promote [default: the one guaranteed to hold every acknowledged commit, furthest ahead]
    #[arg(long, value_name = "NODE")]
    pub to: Option<NodeName>,
    /// Promote even when no reachable standby is guaranteed to hold every acknowledged commit
    #[arg(long)]
    pub allow_data_loss: bool,
    /// The primary is reachable and accepts writes, and must be abandoned all
    /// the same (clients cannot reach it, or it misbehaves): name it to
    /// confirm. Without it, a reachable primary is left alone.
    #[arg(long, value_name = "NODE")]
    pub abandon: Option<NodeName>,
    /// Print the commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for each step, in seconds
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub fn run(args: &FailoverArgs, runner: &dyn Runner) -> Result<()> {
    let path = args.topology.resolve();
    let loaded = project::load_valid(&path)?;
    for n in [&args.to, &args.abandon].into_iter().flatten() {
        project::require_node(&loaded, n)?;
    }
    let c = Cluster::connect(&path, loaded, runner)?;
    let Some((old, done)) = crate::ops::failover::incident(
        &c,
        args.to.as_ref(),
        args.abandon.as_ref(),
        args.allow_data_loss,
        Duration::from_secs(args.timeout),
    )?
    else {
        return Ok(());
    };
    if runner.dry_run() {
        say!("dry run: nothing changed");
        return Ok(());
    }
    say!(
        "{} is the primary (timeline {}){}; {old} is fenced: bring it back with `cargo xtask rejoin --node {old}`",
        done.choice.node,
        done.timeline,
        if done.choice.guaranteed {
            ""
        } else {
            ", promoted with --allow-data-loss"
        }
    );
    if !done.recloned.is_empty() {
        say!(
            "re-cloned because they could not follow {}: {}",
            done.choice.node,
            done.recloned.join(", ")
        );
    }
    say_raw!("\n{}", live::table(&live::collect(&c)?));
    Ok(())
}
