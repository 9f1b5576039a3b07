//! The data move (what `basebackup` does with a verified copy) against
//! `cp -a` followed by `sync` of the same tree on the same disk, and what a
//! rename would cost where the copy need not be kept.

use super::{ratio, secs, BenchArgs, Table};
use crate::project;
use crate::runner::{Cmd, Runner};
use anyhow::{bail, Context, Result};
use std::time::Instant;

pub fn bench(args: &BenchArgs, runner: &dyn Runner) -> Result<Table> {
    let dir = project::root().join("target").join("bench-move");
    data_move::remove_all(&dir)?;
    let (src, dest, cp_dest) = (dir.join("backup"), dir.join("data"), dir.join("cp-copy"));
    say!("move: writing a {} MiB tree", args.move_mib);
    data_move::sample_tree(&src, args.move_mib)?;
    data_move::sample_tree(&dest, 16)?;
    let (files, bytes) = data_move::totals(&src)?;
    let mib = bytes as f64 / 1048576.0;
    // Nothing of the tree's writing is left to flush into the timings.
    sync(runner)?;

    let t = Instant::now();
    runner
        .run(
            &Cmd::new("cp")
                .args(["-a"])
                .arg(src.to_string_lossy())
                .arg(cp_dest.to_string_lossy()),
        )
        .context("cp -a (the baseline) failed")?;
    let cp = t.elapsed();
    sync(runner)?;
    let cp_sync = t.elapsed();
    data_move::remove_all(&cp_dest)?;
    sync(runner)?;

    let t = Instant::now();
    data_move::replace_dir(&src, &dest, None, &mut |_, _, _, _| {})?;
    let ours = t.elapsed();
    if data_move::totals(&dest)? != (files, bytes) {
        bail!("the moved tree differs from its source");
    }
    // A rename on the same file system, where the copy need not be kept.
    let renamed = dir.join("renamed");
    let t = Instant::now();
    std::fs::rename(&dest, &renamed)?;
    let rename = t.elapsed();
    data_move::remove_all(&dir)?;

    let mut table = Table::new(
        "move",
        &format!("Data move of a {mib:.0} MiB data folder ({files} files) on the same disk"),
        &["method", "time", "MiB/s", "throughput vs cp -a + sync"],
    );
    let tput = |d: std::time::Duration| mib / d.as_secs_f64().max(1e-9);
    for (name, d) in [
        ("cp -a", cp),
        ("cp -a + sync (baseline)", cp_sync),
        ("data-move (parallel copy, batched fsync, verified)", ours),
    ] {
        table.row(vec![
            name.into(),
            secs(d),
            format!("{:.0}", tput(d)),
            ratio(tput(d), tput(cp_sync)),
        ]);
    }
    table.row(vec![
        "rename (same file system, copy not kept)".into(),
        format!("{:.3} ms", rename.as_secs_f64() * 1000.0),
        "-".into(),
        "-".into(),
    ]);
    table.note(
        "Target: data-move at least 0.9x the throughput of cp -a + sync. data-move keeps its guarantees: \
         the old folder is removed only after every new file and folder is synced and the totals match.",
    );
    Ok(table)
}

fn sync(runner: &dyn Runner) -> Result<()> {
    runner.run(&Cmd::new("sync"))?;
    Ok(())
}
