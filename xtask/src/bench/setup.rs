//! `setup-sync` from an empty engine against the sum of its irreducible
//! parts, each measured alone in the same run: the primary's initdb and
//! start in a plain `docker run`, each standby's `pg_basebackup`, and each
//! standby's start until it streams.

use super::{fresh, ratio, secs, Table};
use crate::cluster::Cluster;
use crate::ops::container::{id_of, network};
use crate::ops::live::is_streaming;
use crate::runner::{Runner, Secret};
use anyhow::{Context, Result};
use cluster_config::compose::LABEL_CLUSTER;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn bench(topology: &Path, runner: &dyn Runner) -> Result<Table> {
    say!("setup: {} from an empty engine", topology.display());
    let setup = fresh(topology, runner)?;
    let c = Cluster::open(topology, runner)?;
    let t = c.topology();
    let primary = t
        .initial_primary()
        .context("no primary")?
        .name()
        .to_string();
    let standbys: Vec<String> = t
        .nodes
        .iter()
        .map(|n| n.name().to_string())
        .filter(|n| *n != primary)
        .collect();
    let init = plain_primary(&c)?;
    let clones = raw_clones(&c, &primary, &standbys)?;
    let starts = standby_starts(&c, &primary, &standbys)?;
    Ok(table(&c, setup, init, &clones, &starts))
}

const TIMEOUT: Duration = Duration::from_secs(180);

/// initdb and start of a primary, in a plain container.
fn plain_primary(c: &Cluster) -> Result<Duration> {
    let (runner, t) = (c.runner(), c.topology());
    let image = c.image()?.image.clone();
    let label = format!("{LABEL_CLUSTER}={}", c.name());
    let pw = Secret::new(crate::secrets::generate_password()?);
    let started = Instant::now();
    let out = runner.run(
        &c.docker()
            .cmd()
            .args([
                "run",
                "-d",
                "--label",
                &label,
                "-e",
                "POSTGRES_PASSWORD",
                "-e",
            ])
            .arg(format!(
                "POSTGRES_USER={}",
                t.database.owner.get_ref().as_str()
            ))
            .arg(&image)
            .secret_env("POSTGRES_PASSWORD", &pw),
    )?;
    let id = out.stdout.trim().to_string();
    let ready = c.poll("the plain primary to accept connections", TIMEOUT, || {
        let r = runner.run_unchecked(
            &c.docker()
                .cmd()
                .args(["exec", &id, "pg_isready", "-q", "-h", "127.0.0.1"])
                .read_only(),
        )?;
        Ok(r.success.then_some(()))
    });
    let init = started.elapsed();
    runner.run(&c.docker().cmd().args(["rm", "-f", "-v", &id]))?;
    ready?;
    Ok(init)
}

/// pg_basebackup of the primary, one standby's worth at a time.
fn raw_clones(c: &Cluster, primary: &str, standbys: &[String]) -> Result<Vec<(String, Duration)>> {
    let (runner, t) = (c.runner(), c.topology());
    let image = c.image()?.image.clone();
    let label = format!("{LABEL_CLUSTER}={}", c.name());
    let secrets = c.secrets()?;
    let mut clones = Vec::new();
    for s in standbys {
        let started = Instant::now();
        runner
            .run(
                &c.docker()
                    .cmd()
                    .args(["run", "--rm", "--label", &label, "--network"])
                    .arg(network(c))
                    .args([
                        "-e",
                        "PGPASSWORD",
                        "-u",
                        "postgres",
                        "--entrypoint",
                        "pg_basebackup",
                    ])
                    .arg(&image)
                    .args(["-h", primary, "-p", "5432", "-U"])
                    .arg(t.replication.user.get_ref().as_str())
                    .args([
                        "-D",
                        "/tmp/clone",
                        "-X",
                        "stream",
                        "-c",
                        "fast",
                        "--no-password",
                    ])
                    .secret_env("PGPASSWORD", &secrets.replication),
            )
            .with_context(|| format!("the raw pg_basebackup for {s}"))?;
        clones.push((s.clone(), started.elapsed()));
    }
    Ok(clones)
}

/// Each standby's start until it streams.
fn standby_starts(
    c: &Cluster,
    primary: &str,
    standbys: &[String],
) -> Result<Vec<(String, Duration)>> {
    let runner = c.runner();
    let mut starts = Vec::new();
    for s in standbys {
        let id = id_of(c, s)?;
        runner.run(&c.docker().cmd().args(["stop", "-t", "60", &id]))?;
        c.poll(&format!("{s} to leave {primary}"), TIMEOUT, || {
            Ok((!is_streaming(c, primary, s)?).then_some(()))
        })?;
        let started = Instant::now();
        runner.run(&c.docker().cmd().args(["start", &id]))?;
        c.poll(&format!("{s} to stream again"), TIMEOUT, || {
            Ok(is_streaming(c, primary, s)?.then_some(()))
        })?;
        starts.push((s.clone(), started.elapsed()));
    }
    Ok(starts)
}

/// The table: setup-sync beside the sum of its parts.
fn table(
    c: &Cluster,
    setup: Duration,
    init: Duration,
    clones: &[(String, Duration)],
    starts: &[(String, Duration)],
) -> Table {
    let t = c.topology();
    let parts: Duration = init
        + clones.iter().map(|(_, d)| *d).sum::<Duration>()
        + starts.iter().map(|(_, d)| *d).sum::<Duration>();
    let mut table = Table::new(
        "setup",
        &format!(
            "setup-sync from an empty engine, {} nodes, against its irreducible parts",
            t.nodes.len()
        ),
        &["step", "time", "vs sum of parts"],
    );
    table.row(vec![
        "setup-sync (standbys cloned side by side, verified)".into(),
        secs(setup),
        ratio(setup.as_secs_f64(), parts.as_secs_f64()),
    ]);
    table.row(vec![
        "part: primary initdb + start (plain docker run)".into(),
        secs(init),
        "".into(),
    ]);
    for (s, d) in clones {
        table.row(vec![
            format!("part: pg_basebackup for {s} (plain docker run)"),
            secs(*d),
            "".into(),
        ]);
    }
    for (s, d) in starts {
        table.row(vec![
            format!("part: {s} start until streaming"),
            secs(*d),
            "".into(),
        ]);
    }
    table.row(vec![
        "sum of parts (one after another)".into(),
        secs(parts),
        "1.00x".into(),
    ]);
    table.note(
        "Target: setup-sync at most 1.3x the sum of its parts. setup-sync also renders and writes the files, \
         creates the network, gives the mounts to the server's user, creates the replication role and \
         verifies a synchronous commit on every standby; the parts overlap where standbys are cloned side by side.",
    );
    table
}
