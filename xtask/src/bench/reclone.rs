//! `basebackup --node` (verified re-clone through the backup folder, then
//! the crash-safe data move) of a database grown with pgbench, against a
//! raw `pg_basebackup` of the same database onto the same disk.

use super::{ensure_up, ratio, secs, BenchArgs, Table};
use crate::cluster::Cluster;
use crate::ops::container::{id_of, network, one_off};
use crate::runner::Runner;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

pub fn bench(topology: &Path, args: &BenchArgs, runner: &dyn Runner) -> Result<Table> {
    ensure_up(topology, runner)?;
    let c = Cluster::open(topology, runner)?;
    let t = c.topology();
    let primary = crate::ops::live::find_primary(&c)?.context("no writable primary")?;
    let node = t
        .nodes
        .iter()
        .map(|n| n.name().to_string())
        .rfind(|n| *n != primary)
        .context("no standby")?;
    say!("reclone: pgbench -i -s {} on {primary}", args.scale);
    let init = Instant::now();
    super::pgbench_init(&c, &primary, Some(args.scale))?;
    let init = init.elapsed();
    let size: u64 = c
        .sql(&primary, "SELECT pg_database_size(current_database())")?
        .trim()
        .parse()
        .context("reading the database size")?;
    let secrets = c.secrets()?;

    // Raw: pg_basebackup into the standby's backup folder (the disk the
    // re-clone writes to), then removed.
    let image = c.image()?.image.clone();
    let id = id_of(&c, &node)?;
    let target = format!("{}/raw-bench", cluster_config::render::BACKUP_DIR);
    let user = crate::docker::run_as_user().unwrap_or_else(|| "postgres".into());
    let started = Instant::now();
    runner.run(
        &c.docker()
            .cmd()
            .args(["run", "--rm", "--volumes-from", &id, "--network"])
            .arg(network(&c))
            .args(["--label"])
            .arg(format!(
                "{}={}",
                cluster_config::compose::LABEL_CLUSTER,
                c.name()
            ))
            .args([
                "-e",
                "PGPASSWORD",
                "-u",
                &user,
                "--entrypoint",
                "pg_basebackup",
            ])
            .arg(&image)
            .args(["-h", &primary, "-p", "5432", "-U"])
            .arg(t.replication.user.get_ref().as_str())
            .args(["-D", &target, "-X", "stream", "-c", "fast", "--no-password"])
            .secret_env("PGPASSWORD", &secrets.replication),
    )?;
    let raw = started.elapsed();
    runner.run(&one_off(&c, &node, "rm")?.args(["-rf", &target]))?;

    let started = Instant::now();
    crate::ops::clone::reclone_standbys(
        &c,
        &[node.parse().map_err(|e| anyhow::anyhow!("{e}"))?],
        std::time::Duration::from_secs(900),
    )?;
    let ours = started.elapsed();

    let gib = size as f64 / 1073741824.0;
    let mut table = Table::new(
        "reclone",
        &format!(
            "Re-clone of {node} from a {gib:.2} GiB database (pgbench scale {})",
            args.scale
        ),
        &["method", "time", "vs raw pg_basebackup"],
    );
    table.row(vec![
        "raw pg_basebackup -X stream -c fast (baseline)".into(),
        secs(raw),
        "1.00x".into(),
    ]);
    table.row(vec![
        format!("basebackup --node {node} (verify, move, restart, streaming)"),
        secs(ours),
        ratio(ours.as_secs_f64(), raw.as_secs_f64()),
    ]);
    table.note(format!(
        "Target: at most 1.2x the raw pg_basebackup. Loading the data (pgbench -i) took {}.",
        secs(init)
    ));
    Ok(table)
}
