//! The incident as a user runs it, timed: the drill's writer and ledger,
//! `docker kill` of the primary, then the tool's own `failover` and
//! `rejoin` commands as separate processes (the failover bench's second
//! table).

use super::fault::Fault;
use super::round::{observe_new_primary, warm_writer, Marks};
use super::{Plan, RoundReport};
use crate::cluster::Cluster;
use crate::ops::live;
use crate::wait::ms;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// One round of the incident as a user runs it: the drill's writer on the
/// primary, `docker kill` of the primary, then the `failover` command
/// (`exe`, the tool's own binary, as a separate process), the writer moved
/// to the new primary once it returns, then the `rejoin` command. Each
/// command's wall time is what the user waits for, process start included.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UserRound {
    pub failover_ms: u64,
    pub rejoin_ms: u64,
    /// Fault to the first acknowledged write on the new primary.
    pub rto_ms: u64,
    pub acknowledged: usize,
    pub lost: usize,
}

/// Runs one [`UserRound`] on the cluster of `topology`.
pub fn user_round(
    c: &Cluster,
    topology: &Path,
    exe: &Path,
    run_id: &str,
    round: u32,
    timeout: Duration,
) -> Result<UserRound> {
    let secrets = c.secrets()?;
    let rows = live::collect(c)?;
    if !live::healthy(&rows) {
        bail!("the cluster is not healthy:\n{}", live::table(&rows));
    }
    let old = live::find_primary(c)?.context("no writable primary")?;
    let plan = Plan {
        fault: vec![Fault::Crash],
        rounds: 1,
        no_rejoin: false,
        report: None,
        warmup: 2.0,
        engine: crate::cli::Engine::Pgrepl,
        patroni_timings: crate::cli::TimingsArg::Default,
        plot: None,
        plot_rounds: vec![],
        history: None,
        timeout: timeout.as_secs(),
    };
    let (writer, _) = warm_writer(c, &secrets, &plan, run_id, round, &old)?;
    let t = topology.to_string_lossy().into_owned();
    let crashed_at = Instant::now();
    crate::ops::container::kill(c, &old)?;
    let started = Instant::now();
    c.runner()
        .run(&crate::runner::Cmd::new(exe).args(["failover", "-t", &t]))?;
    let failover_ms = ms(started.elapsed());
    let promoted = Instant::now();
    let new = live::find_primary(c)?.context("no primary after the failover command")?;
    let mut report = RoundReport {
        round,
        ..RoundReport::default()
    };
    observe_new_primary(
        c,
        &mut report,
        writer,
        &new,
        run_id,
        Marks {
            fault: crashed_at,
            promoted,
            repointed: promoted,
        },
        timeout,
    )?;
    let started = Instant::now();
    c.runner()
        .run(&crate::runner::Cmd::new(exe).args(["rejoin", "--node", &old, "-t", &t]))?;
    let rejoin_ms = ms(started.elapsed());
    c.poll("a healthy cluster after the rejoin", timeout, || {
        Ok(live::healthy(&live::collect(c)?).then_some(()))
    })?;
    Ok(UserRound {
        failover_ms,
        rejoin_ms,
        rto_ms: report.rto_ms,
        acknowledged: report.acknowledged,
        lost: report.lost,
    })
}
