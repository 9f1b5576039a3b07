//! Failover RTO (crash of the primary's container to the first acknowledged
//! synchronous commit on the new primary) and the old primary's rejoin,
//! over several rounds of the drill, with promotion alone (`pg_promote` to
//! writable) beside it: the floor no failover can go under. With
//! `--compare patroni`, the same topology, writer, ledger and crash under
//! Patroni, with its default timings and with the tightest it accepts.

use super::{down, fresh, median, BenchArgs, Table};
use crate::cli::{Engine, TimingsArg};
use crate::ops::drill::fault::Fault;
use crate::ops::drill::{self, DrillReport, Plan};
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The rounds on each major's two bench topologies (two and three standbys).
pub fn bench(
    per_major: &[(cluster_config::version::Major, PathBuf, PathBuf)],
    args: &BenchArgs,
    runner: &dyn Runner,
) -> Result<Vec<Table>> {
    let mut tables = Vec::new();
    let mut commands = Table::new(
        "failover-commands",
        &format!(
            "The commands a user types, timed: `docker kill` of the primary, then `xtask failover` and `xtask rejoin` as \
             separate processes, {} rounds, beside the drill's in-process RTO on the same cluster (the baseline)",
            args.rounds
        ),
        &[
            "PostgreSQL",
            "standbys",
            "rounds",
            "acknowledged",
            "lost",
            "xtask failover median",
            "xtask failover worst",
            "RTO median (commands)",
            "xtask rejoin median",
            "xtask rejoin worst",
            "RTO median (drill, baseline)",
        ],
    );
    let mut table = Table::new(
        "failover",
        &format!(
            "Failover under synchronous write load: {} crash rounds per engine, timing and topology",
            args.rounds
        ),
        &[
            "engine",
            "PostgreSQL",
            "standbys",
            "rounds",
            "acknowledged",
            "lost",
            "uncertain",
            "RTO median",
            "RTO worst",
            "promotion alone / new leader seen (median)",
            "rejoin median",
            "rejoin worst",
            "promoted, and why",
        ],
    );
    for (major, three, four) in per_major {
        for topology in [three, four] {
            fresh(topology, runner)?;
            let report = drill_on(
                topology,
                Engine::Pgrepl,
                TimingsArg::Default,
                args.rounds,
                args,
                runner,
            )?;
            row(&mut table, "this tool", &major.to_string(), &report, |r| {
                r.promote_ms
            });
            user_rows(&mut commands, topology, major, &report, args, runner)?;
        }
    }
    commands.note(
        "The command rows include each process's start, its reading of the topology and secrets and its own checks; \
         the drill's rows do not. RTO (commands) runs from `docker kill` to the writer's first acknowledged commit on \
         the new primary, the same clock as the drill's.",
    );
    tables.push(commands);
    if args.compare == Some(Engine::Patroni) {
        patroni_rows(&mut table, per_major, args, runner)?;
    }
    table.note(
        "Targets for this tool: RTO median at most 1.0 s with two standbys and 1.2 s with three; rejoin at most 3 s. \
         RTO runs from just before `docker kill` of the primary to the first commit the new primary acknowledged with \
         synchronous_commit = on. This tool is told of the crash at once (no detection: it is a drill, not an HA daemon); \
         Patroni must detect it (its leader key expires in etcd), so its RTO contains detection. The writer under Patroni \
         keeps its connection address until the tool sees the new leader in Patroni's REST API.",
    );
    tables.insert(0, table);
    Ok(tables)
}

/// The same rounds under Patroni, on the major its image holds, with its
/// default and its tightest timings: one row each.
fn patroni_rows(
    table: &mut Table,
    per_major: &[(cluster_config::version::Major, PathBuf, PathBuf)],
    args: &BenchArgs,
    runner: &dyn Runner,
) -> Result<()> {
    // Patroni's image holds one major: the side by side runs on it.
    let first = per_major
        .iter()
        .find(|(m, _, _)| m.get() == crate::debian_image::PATRONI_MAJOR)
        .map(|(_, three, _)| three.clone())
        .with_context(|| {
            format!(
                "--compare patroni runs on PostgreSQL {} (the Patroni image's): include it in --postgres",
                crate::debian_image::PATRONI_MAJOR
            )
        })?;
    let major = crate::debian_image::PATRONI_MAJOR.to_string();
    // The same cluster with ANY 1 instead of FIRST 1: this tool on it
    // first, then Patroni's quorum mode.
    let any = super::quorum_variant(&first)?;
    // The variant publishes the same ports as the cluster it copies.
    down(&first, runner)?;
    fresh(&any, runner)?;
    let report = drill_on(
        &any,
        Engine::Pgrepl,
        TimingsArg::Default,
        args.rounds,
        args,
        runner,
    )?;
    row(table, "this tool, ANY 1", &major, &report, |r| r.promote_ms);
    down(&any, runner)?;
    for (topology, list) in [(&first, "FIRST 1"), (&any, "ANY 1")] {
        down(topology, runner)?;
        let c = crate::ops::patroni::engine(crate::cluster::Cluster::open(topology, runner)?)?;
        crate::ops::patroni::setup(
            &c,
            runner,
            TimingsArg::Default.timings(),
            std::time::Duration::from_secs(300),
        )?;
        for (timings, which) in [
            (
                TimingsArg::Default,
                "defaults (ttl 30, loop_wait 10, retry_timeout 10)",
            ),
            (
                TimingsArg::Tightest,
                "tightest (ttl 20, loop_wait 1, retry_timeout 3)",
            ),
        ] {
            let report = drill_on(
                topology,
                Engine::Patroni,
                timings,
                args.rounds,
                args,
                runner,
            )?;
            row(
                table,
                &format!("Patroni 4.1.5, {list}, {which}"),
                &major,
                &report,
                |r| r.crash_to_promoted_ms,
            );
        }
        down(topology, runner)?;
    }
    Ok(())
}

/// `args.rounds` incidents as a user runs them on `topology`: one row.
fn user_rows(
    table: &mut Table,
    topology: &Path,
    major: &cluster_config::version::Major,
    drill: &DrillReport,
    args: &BenchArgs,
    runner: &dyn Runner,
) -> Result<()> {
    let exe = std::env::current_exe().context("finding the tool's own binary")?;
    let c = crate::cluster::Cluster::open(topology, runner)?;
    let run_id = format!("user-{}", &crate::secrets::generate_password()?[..8]);
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        say!(
            "\n== the commands as a user runs them, round {round} of {}",
            args.rounds
        );
        let r = drill::user_round(
            &c,
            topology,
            &exe,
            &run_id,
            round,
            std::time::Duration::from_secs(180),
        )?;
        say!(
            "failover {} ms, rejoin {} ms, RTO {} ms, acknowledged {}, lost {}",
            r.failover_ms,
            r.rejoin_ms,
            r.rto_ms,
            r.acknowledged,
            r.lost
        );
        if r.lost > 0 {
            bail!(
                "the commands lost {} acknowledged commit(s) in round {round}",
                r.lost
            );
        }
        rounds.push(r);
    }
    let sorted = |f: fn(&drill::UserRound) -> u64| {
        let mut v: Vec<u64> = rounds.iter().map(f).collect();
        v.sort_unstable();
        v
    };
    let (fo, rj, rto) = (
        sorted(|r| r.failover_ms),
        sorted(|r| r.rejoin_ms),
        sorted(|r| r.rto_ms),
    );
    table.row(vec![
        major.to_string(),
        drill.final_status.len().saturating_sub(1).to_string(),
        rounds.len().to_string(),
        rounds
            .iter()
            .map(|r| r.acknowledged)
            .sum::<usize>()
            .to_string(),
        rounds.iter().map(|r| r.lost).sum::<usize>().to_string(),
        format!("{} ms", median(fo.clone())),
        format!("{} ms", fo.last().copied().unwrap_or(0)),
        format!("{} ms", median(rto)),
        format!("{} ms", median(rj.clone())),
        format!("{} ms", rj.last().copied().unwrap_or(0)),
        format!("{} ms", drill.rto_median_ms),
    ]);
    Ok(())
}

fn drill_on(
    topology: &Path,
    engine: Engine,
    timings: TimingsArg,
    rounds: u32,
    args: &BenchArgs,
    runner: &dyn Runner,
) -> Result<DrillReport> {
    let stem = topology
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("bench");
    let report = drill::execute(
        topology,
        &Plan {
            fault: vec![Fault::Crash],
            rounds,
            no_rejoin: false,
            report: None,
            warmup: 3.0,
            engine,
            patroni_timings: timings,
            plot: args.plot.as_ref().map(|dir| {
                let tag = match engine {
                    Engine::Patroni => format!("-patroni-{timings:?}").to_lowercase(),
                    _ => String::new(),
                };
                dir.join(format!("failover-{stem}{tag}.svg"))
            }),
            plot_rounds: vec![],
            history: None,
            timeout: 180,
        },
        runner,
    )?;
    if report.lost_total > 0 {
        // A finding to report, with the ids in the drill's output.
        bail!(
            "the drill ({engine:?}) lost {} acknowledged commit(s)",
            report.lost_total
        );
    }
    Ok(report)
}

fn row(
    table: &mut Table,
    engine: &str,
    major: &str,
    report: &DrillReport,
    floor: impl Fn(&drill::RoundReport) -> u64,
) {
    let r = &report.rounds;
    let standbys = report.final_status.len().saturating_sub(1);
    let rejoins: Vec<u64> = r.iter().filter_map(|x| x.rejoin_ms).collect();
    let mut promoted: Vec<String> = r
        .iter()
        .map(|x| {
            let why = x.promoted_because.split(" (").next().unwrap_or_default();
            why.to_string()
        })
        .collect();
    promoted.sort();
    promoted.dedup();
    table.row(vec![
        engine.into(),
        major.into(),
        standbys.to_string(),
        r.len().to_string(),
        report.acknowledged_total.to_string(),
        report.lost_total.to_string(),
        r.iter().map(|x| x.uncertain).sum::<usize>().to_string(),
        format!("{} ms", report.rto_median_ms),
        format!("{} ms", report.rto_worst_ms),
        format!("{} ms", median(r.iter().map(&floor).collect())),
        format!("{} ms", median(rejoins.clone())),
        format!("{} ms", rejoins.iter().max().copied().unwrap_or(0)),
        promoted.join("; "),
    ]);
}
