//! `drill-report`: one or more `failover-drill --report` files as README's
//! fault-matrix table (the table is [`crate::ops::drill::summary`]).

use crate::ops::drill::{summary, RoundReport};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;

/// Summarize drill reports per fault, as README's soak table: several reports (runs side by side on separate clusters) count as one run.
#[derive(Debug, Args)]
pub struct DrillReportArgs {
    /// `failover-drill --report` files
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
}

/// What is read from a report: its cluster and rounds (the rest is
/// recomputed over every report).
#[derive(Deserialize)]
struct Report {
    cluster: String,
    rounds: Vec<RoundReport>,
}

/// A report of a few thousand rounds is a few MB.
const LIMIT: u64 = 256 << 20;

pub fn run(args: &DrillReportArgs) -> Result<()> {
    let mut rounds = Vec::new();
    let mut clusters = Vec::new();
    for path in &args.reports {
        let bytes = crate::fsx::read_limited(path, LIMIT)?;
        let report: Report = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a failover-drill report (written by `failover-drill --report`)",
                path.display()
            )
        })?;
        if report.rounds.is_empty() {
            bail!("{} holds no round", path.display());
        }
        clusters.push(format!(
            "{} ({} rounds)",
            report.cluster,
            report.rounds.len()
        ));
        rounds.extend(report.rounds);
    }
    say!("clusters: {}\n", clusters.join(", "));
    say_raw!("{}", summary::table(&rounds));
    say!("\n{}", summary::totals(&rounds, args.reports.len()));
    let lost: usize = rounds.iter().map(|r| r.lost).sum();
    if lost > 0 {
        bail!("{lost} acknowledged commit(s) lost (the reports name every id)");
    }
    Ok(())
}
