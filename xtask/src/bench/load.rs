//! The runbook's read load (000, steps 9-10) and the price of synchronous
//! commit: pgbench on the primary at each `synchronous_commit` level, and
//! select-only pgbench on every node while the primary takes writes.

use super::{ensure_up, pgbench, pgbench_init, ratio, BenchArgs, Pgbench, Table};
use crate::cluster::Cluster;
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use std::path::Path;

const LEVELS: [&str; 5] = ["off", "local", "remote_write", "on", "remote_apply"];

pub fn commit(topology: &Path, args: &BenchArgs, runner: &dyn Runner) -> Result<Table> {
    ensure_up(topology, runner)?;
    let c = Cluster::open(topology, runner)?;
    let primary = crate::ops::live::find_primary(&c)?.context("no writable primary")?;
    pgbench_init(&c, &primary, None)?;
    let mut results: Vec<(&str, Pgbench)> = Vec::new();
    for level in LEVELS {
        say!(
            "commit: pgbench on {primary}, synchronous_commit = {level}, {} s",
            args.seconds
        );
        let p = pgbench(
            &c,
            &primary,
            &[format!("PGOPTIONS=-c synchronous_commit={level}")],
            &run_args(args, 4, false),
        )?;
        results.push((level, p));
    }
    let local = results
        .iter()
        .find(|(l, _)| *l == "local")
        .map(|(_, p)| *p)
        .context("no local run")?;
    let mut table = Table::new(
        "commit",
        &format!(
            "The price of synchronous commit: pgbench (TPC-B-like, 4 clients, {} s) on {primary}",
            args.seconds
        ),
        &[
            "synchronous_commit",
            "TPS",
            "latency avg",
            "TPS vs local",
            "latency vs local",
        ],
    );
    for (level, p) in &results {
        table.row(vec![
            level.to_string(),
            format!("{:.0}", p.tps),
            format!("{:.2} ms", p.latency_ms),
            ratio(p.tps, local.tps),
            ratio(p.latency_ms, local.latency_ms),
        ]);
    }
    table.note(
        "`remote_write`, `on` and `remote_apply` wait for the synchronous standby (FIRST 1 of the preset); `local` and `off` \
         do not, and a failover may lose what they acknowledged.",
    );
    Ok(table)
}

pub fn read(topology: &Path, args: &BenchArgs, runner: &dyn Runner) -> Result<Table> {
    ensure_up(topology, runner)?;
    let c = Cluster::open(topology, runner)?;
    let primary = crate::ops::live::find_primary(&c)?.context("no writable primary")?;
    pgbench_init(&c, &primary, None)?;
    let mut nodes: Vec<String> = c
        .topology()
        .nodes
        .iter()
        .map(|n| n.name().to_string())
        .filter(|n| *n != primary)
        .collect();
    nodes.push(primary.clone());
    // The primary takes writes the whole time the reads run.
    let write_seconds = args.seconds * nodes.len() as u32 + 5;
    let (writes, reads) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            pgbench(
                &c,
                &primary,
                &[],
                &[
                    "-n".into(),
                    "-c".into(),
                    "2".into(),
                    "-j".into(),
                    "1".into(),
                    "-T".into(),
                    write_seconds.to_string(),
                ],
            )
        });
        let mut reads = Vec::new();
        for n in &nodes {
            say!("read: select-only pgbench on {n}, {} s", args.seconds);
            reads.push((n.clone(), pgbench(&c, n, &[], &run_args(args, 4, true))));
        }
        (writer.join(), reads)
    });
    let writes = writes.map_err(|_| anyhow::anyhow!("the write load panicked"))??;
    let mut table = Table::new(
        "read",
        &format!(
            "Reads on every node (select-only pgbench, 4 clients, {} s each) while {primary} takes writes",
            args.seconds
        ),
        &["node", "role", "select TPS", "latency avg", "TPS vs primary"],
    );
    let mut figures = Vec::new();
    for (n, r) in reads {
        let p = r.with_context(|| format!("{n} stopped answering reads under the write load"))?;
        figures.push((n, p));
    }
    let on_primary = figures
        .iter()
        .find(|(n, _)| *n == primary)
        .map(|(_, p)| *p)
        .context("no run on the primary")?;
    for (n, p) in &figures {
        if p.tps <= 0.0 {
            bail!("{n} answered no reads while the primary took writes");
        }
        table.row(vec![
            n.clone(),
            if *n == primary { "primary" } else { "standby" }.into(),
            format!("{:.0}", p.tps),
            format!("{:.2} ms", p.latency_ms),
            ratio(p.tps, on_primary.tps),
        ]);
    }
    table.note(format!(
        "Meanwhile the primary committed {:.0} TPS (TPC-B-like, 2 clients, synchronous_commit = on). \
         All nodes share this machine's cores, so a read on one node competes with the others.",
        writes.tps
    ));
    Ok(table)
}

fn run_args(args: &BenchArgs, clients: u32, select_only: bool) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "-n".into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        args.seconds.to_string(),
    ];
    if select_only {
        v.push("-S".into());
    }
    v
}
