//! `setup-sync` / `setup-async`: from nothing (or a half-built cluster) to a
//! verified streaming cluster (the operation is [`crate::ops::setup`]; under
//! `--engine patroni`, [`crate::ops::patroni::setup`]).

use crate::cli::{EngineOpts, RunOpts};
use crate::cluster::Cluster;
use crate::ops::setup::Plan;
use crate::project;
use crate::runner::Runner;
use anyhow::{bail, Result};
use clap::Args;
use cluster_config::Mode;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Topology file [default: conf/semi-sync.toml for setup-sync, conf/async-slots.toml for setup-async]
    #[arg(long, short = 't', value_name = "FILE", env = "PGREPL_TOPOLOGY")]
    pub topology: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOpts,
    #[command(flatten)]
    pub engine: EngineOpts,
    /// When the image is absent and cannot be built here, `docker pull` it
    /// (bounded: at most 10 minutes). Without it nothing is ever pulled
    #[arg(long)]
    pub pull: bool,
}

impl SetupArgs {
    /// What setup does about an absent image.
    pub fn absent(&self) -> crate::pg_image::Absent {
        if self.pull {
            crate::pg_image::Absent::Pull(Duration::from_secs(600))
        } else {
            crate::pg_image::Absent::Build
        }
    }
}

pub fn run(args: &SetupArgs, mode: Mode, runner: &dyn Runner) -> Result<()> {
    let default = match mode {
        Mode::Sync => "conf/semi-sync.toml",
        Mode::Async => "conf/async-slots.toml",
    };
    let path = args
        .topology
        .as_deref()
        .map(project::resolve)
        .unwrap_or_else(|| project::root().join(default));
    let c = Cluster::open(&path, runner)?;
    let timeout = args.run.timeout();
    if args.engine.is_patroni()? {
        if mode != Mode::Sync && c.topology().replication.mode == Mode::Sync {
            bail!(
                "{} has mode = \"Sync\"; use `cargo xtask setup-sync`",
                c.path()
            );
        }
        let c = crate::ops::patroni::engine(c)?;
        return crate::ops::patroni::setup(&c, runner, args.engine.timings(), timeout);
    }
    crate::ops::setup::run(
        &c,
        &Plan {
            mode,
            timeout,
            absent: args.absent(),
        },
    )
}
