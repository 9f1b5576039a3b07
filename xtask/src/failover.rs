//! `failover`: the primary is gone or must be abandoned. Fence it, promote
//! the standby that holds every acknowledged commit (or refuse, unless
//! `--allow-data-loss`), re-point the others, make the new primary
//! synchronous with the standbys connected now, prove one synchronous
//! commit, and show the cluster.

use crate::cluster::Cluster;
use crate::ops::failover::{self, Request};
use crate::ops::live;
use crate::project;
use crate::runner::Runner;
use anyhow::{bail, Result};
use clap::Args;
use cluster_config::live::LiveRole;
use cluster_config::names::NodeName;
use std::collections::BTreeSet;
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
    if let Some(to) = &args.to {
        project::require_node(&loaded, to)?;
    }
    let c = Cluster::connect(&path, loaded, runner)?;
    let secrets = c.secrets()?;
    let rows = live::collect(&c)?;
    let primaries: Vec<&str> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Primary)
        .map(|r| r.node.as_str())
        .collect();
    let down: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Down)
        .map(|r| r.node.clone())
        .collect();
    let (old, states, enforced) = match primaries.as_slice() {
        [p] => {
            // Reachable but to be abandoned: what it enforces now is known.
            let p = p.to_string();
            let states = live::sync_states(&rows);
            let enforced = live::enforced_sync_names(&c, &p)?;
            say!("{p} is reachable and writable: it will be fenced and abandoned");
            (p, Some(states), enforced)
        }
        [] => {
            let old = former_primary(&c, &rows, &down)?;
            say!(
                "{old} is down; the standbys' states when it failed are unknown, so the worst case is assumed"
            );
            (old, None, live::configured_sync_names(c.topology()))
        }
        many => bail!(
            "{} nodes accept writes ({}): stop all but one before anything else",
            many.len(),
            many.join(", ")
        ),
    };
    if args.to.as_deref() == Some(old.as_str()) {
        bail!("--to {old}: it is the primary being failed over from; name a standby");
    }
    let mut all_down = down.clone();
    all_down.insert(old.clone());
    let done = failover::run(
        &c,
        &secrets,
        &Request {
            fence: vec![old.clone()],
            down: all_down,
            states,
            enforced,
            to: args.to.as_ref(),
            allow_data_loss: args.allow_data_loss,
            on_promoted: None,
            timeout: Duration::from_secs(args.timeout),
        },
    )?;
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
    say_raw!("\n{}", live::table(&live::collect(&c)?));
    Ok(())
}

/// The primary that failed: the node the reachable standbys were following,
/// when it is down.
fn former_primary(
    c: &Cluster,
    rows: &[live::NodeStatus],
    down: &BTreeSet<String>,
) -> Result<String> {
    let mut upstreams: BTreeSet<String> = BTreeSet::new();
    for r in rows.iter().filter(|r| r.role == LiveRole::Standby) {
        let ci = c.sql(&r.node, "SHOW primary_conninfo")?;
        if let Ok(pairs) = cluster_config::validate::parse_conninfo(&ci) {
            if let Some((_, host)) = pairs.into_iter().find(|(k, _)| k == "host") {
                upstreams.insert(host);
            }
        }
    }
    let failed: Vec<&String> = upstreams.iter().filter(|u| down.contains(*u)).collect();
    match failed.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!(
            "no primary is reachable, and the standbys follow no node that is down (they follow: {}); nothing to fail over from",
            upstreams.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        many => bail!(
            "the standbys follow different nodes that are down ({}); fail over by hand with --to after checking them",
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}
