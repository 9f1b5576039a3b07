//! Failover RTO (crash of the primary's container to the first acknowledged
//! synchronous commit on the new primary) and the old primary's rejoin,
//! over several rounds of the drill, with promotion alone (`pg_promote` to
//! writable) beside it: the floor no failover can go under.

use super::{fresh, median, BenchArgs, Table};
use crate::drill::fault::Fault;
use crate::drill::{self, DrillArgs};
use crate::runner::Runner;
use anyhow::{bail, Result};
use std::path::Path;

pub fn bench(topologies: &[&Path], args: &BenchArgs, runner: &dyn Runner) -> Result<Table> {
    let mut table = Table::new(
        "failover",
        &format!(
            "Failover under synchronous write load, {} crash rounds per topology",
            args.rounds
        ),
        &[
            "standbys",
            "rounds",
            "acknowledged",
            "lost",
            "RTO median",
            "RTO worst",
            "promotion alone (median)",
            "rejoin median",
            "rejoin worst",
            "rejoined by",
        ],
    );
    for topology in topologies {
        fresh(topology, runner)?;
        let report = drill::execute(
            &DrillArgs {
                topology: super::topology_arg(topology),
                fault: vec![Fault::Crash],
                rounds: args.rounds,
                no_rejoin: false,
                report: None,
                warmup: 3.0,
                plot: args.plot.as_ref().map(|dir| {
                    dir.join(format!(
                        "failover-{}.svg",
                        topology
                            .file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or("bench")
                    ))
                }),
                timeout: 120,
            },
            runner,
        )?;
        if report.lost_total > 0 {
            bail!(
                "the drill lost {} acknowledged commit(s)",
                report.lost_total
            );
        }
        let r = &report.rounds;
        let standbys = report.final_status.len().saturating_sub(1);
        let rejoins: Vec<u64> = r.iter().filter_map(|x| x.rejoin_ms).collect();
        let mut how: Vec<String> = r
            .iter()
            .filter_map(|x| x.rejoined_by.as_ref())
            .map(|h| {
                h.split_once(": ")
                    .map(|(_, w)| w.to_string())
                    .unwrap_or(h.clone())
            })
            .collect();
        how.sort();
        how.dedup();
        table.row(vec![
            standbys.to_string(),
            r.len().to_string(),
            report.acknowledged_total.to_string(),
            report.lost_total.to_string(),
            format!("{} ms", report.rto_median_ms),
            format!("{} ms", report.rto_worst_ms),
            format!("{} ms", median(r.iter().map(|x| x.promote_ms).collect())),
            format!("{} ms", median(rejoins.clone())),
            format!("{} ms", rejoins.iter().max().copied().unwrap_or(0)),
            how.join(", "),
        ]);
    }
    table.note(
        "Targets: RTO median at most 1.0 s with two standbys and 1.2 s with three; rejoin at most 3 s. \
         RTO runs from just before `docker kill` of the primary to the first commit the new primary \
         acknowledged with synchronous_commit = on; the tool knows of the crash at once (no detection time).",
    );
    Ok(table)
}
