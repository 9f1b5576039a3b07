//! Option groups the subcommands share (flattened into each), and the
//! command-line enums: which engine runs a cluster, and Patroni's timings.
//! Below every task and operation, so each can take them.

use clap::{Args, ValueEnum};
use cluster_config::patroni::Timings;
use std::time::Duration;

/// `--dry-run` and `--timeout`, for the subcommands that change a cluster.
#[derive(Debug, Clone, Copy, Args)]
pub struct RunOpts {
    /// Print the docker / psql / pg_basebackup commands and file changes in
    /// order, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for each server or condition, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub timeout: u64,
}

impl RunOpts {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

/// Which engine runs a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Engine {
    /// This tool: it fails over when told to (or in the drill)
    #[default]
    Pgrepl,
    /// Patroni 4.1 with etcd: it detects failures and fails over by itself
    Patroni,
    /// CloudNativePG on Kubernetes: `export` writes its manifests; nothing
    /// runs it here
    #[value(name = "cloudnative-pg")]
    CloudnativePg,
}

impl Engine {
    /// Refuses an engine that cannot run a cluster on this machine.
    pub fn runs_here(self) -> anyhow::Result<Self> {
        if self == Engine::CloudnativePg {
            anyhow::bail!(
                "CloudNativePG runs on Kubernetes, not on this Docker engine: `cargo xtask export --engine cloudnative-pg --out DIR` writes its manifests"
            );
        }
        Ok(self)
    }
}

/// Patroni's DCS timings for a cluster or a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TimingsArg {
    /// ttl 30, loop_wait 10, retry_timeout 10 (Patroni's defaults)
    #[default]
    Default,
    /// ttl 20, loop_wait 1, retry_timeout 3 (the least Patroni accepts)
    Tightest,
}

impl TimingsArg {
    pub fn timings(self) -> Timings {
        match self {
            TimingsArg::Default => Timings::DEFAULT,
            TimingsArg::Tightest => Timings::TIGHTEST,
        }
    }
}

/// `--engine` and `--patroni-timings`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct EngineOpts {
    /// Who runs the cluster: this tool, or Patroni with etcd (same topology)
    #[arg(long, value_enum, default_value_t)]
    pub engine: Engine,
    /// Patroni's DCS timings (--engine patroni)
    #[arg(long, value_enum, default_value_t)]
    pub patroni_timings: TimingsArg,
}

impl EngineOpts {
    /// Whether Patroni runs the cluster; an engine that cannot run here is
    /// refused.
    pub fn is_patroni(&self) -> anyhow::Result<bool> {
        Ok(self.engine.runs_here()? == Engine::Patroni)
    }

    pub fn timings(&self) -> Timings {
        self.patroni_timings.timings()
    }
}

/// `--fault`: how the primary fails in a drill round (see
/// [`crate::ops::drill::fault::Fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FaultArg {
    /// `docker kill`: no shutdown at all
    Crash,
    /// A clean shutdown: it sends its WAL first
    Stop,
    /// The synchronous standby is killed first; the potential one takes over; then the primary
    SyncStandbyFirst,
    /// The primary is cut off the cluster network and stays alive; the failover fences it
    Partition,
    /// The killed primary is started again right after the promotion, as a supervisor would
    RestartOldPrimary,
    /// The writer's synchronous waits are cancelled while the standbys are paused
    CancelWait,
    /// The primary's container is frozen (docker pause); the failover fences it
    Freeze,
    /// The synchronous standby is cut off the network, the primary stays up: the write stall is measured
    SyncStandbyPartition,
}
