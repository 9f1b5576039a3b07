//! `bench`: each figure measured beside its baseline in the same run, on
//! clusters of the bench's own (named `bench-*`, on their own ports), and
//! printed as a table with the ratio that counts. Nothing here asserts a
//! speed: the tables are what a person reads.

mod datamove;
mod failover;
mod load;
mod reclone;
mod setup;

use crate::cluster::Cluster;
use crate::project;
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// setup-sync from an empty engine against its irreducible parts
    Setup,
    /// Failover RTO and rejoin over several rounds, 2 and 3 standbys
    Failover,
    /// The data move of a 1 GiB folder against `cp -a` + `sync`
    Move,
    /// `basebackup --node` of a grown database against a raw pg_basebackup
    Reclone,
    /// pgbench on the primary for each synchronous_commit level
    Commit,
    /// select-only pgbench on every node while the primary takes writes
    Read,
    /// Every bench above, in that order
    All,
}

/// Measure speed against its floor, in one run: setup, failover, data move, re-clone, commit, read.
///
/// The bench sets up its own clusters (`bench-3`: the semi-sync preset;
/// `bench-4`: the same with a third standby) on ports from --port-base, and
/// removes them at the end unless --keep.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which bench to run
    #[arg(value_enum, default_value = "all")]
    pub which: Which,
    /// Also write every table, with the machine, as JSON here
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Failover rounds per topology (at least 10 for a median worth quoting)
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// First host port of the bench clusters (they take the next 20: bench-3
    /// from it, bench-4 from it + 10, the Patroni engine's REST APIs 1000 above)
    #[arg(long, default_value_t = 25432, env = "PGREPL_BENCH_PORT",
          value_parser = clap::value_parser!(u16).range(1024..=PORT_BASE_MAX as i64))]
    pub port_base: u16,
    /// Size of the data-move tree, in MiB
    #[arg(long, default_value_t = 1024)]
    pub move_mib: u64,
    /// pgbench scale for the re-clone (70: about 1.05 GiB)
    #[arg(long, default_value_t = 70)]
    pub scale: u32,
    /// Seconds per pgbench run
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Failover bench: also run as many rounds under Patroni (its default
    /// timings, then the tightest) on bench-3, for one table. Patroni's
    /// rounds take 30 s or more each
    #[arg(long, value_enum)]
    pub compare: Option<crate::cli::Engine>,
    /// Draw the failover rounds into this folder (failover-bench-N.svg)
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Leave the bench clusters running at the end
    #[arg(long)]
    pub keep: bool,
    /// PostgreSQL major(s) of the bench clusters, comma-separated: the
    /// failover bench runs its rounds on each (a row per major), the others
    /// on the first
    #[arg(
        long,
        value_name = "MAJOR[,MAJOR...]",
        value_delimiter = ',',
        default_value = "17"
    )]
    pub postgres: Vec<cluster_config::version::Major>,
}

/// One table of figures.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub bench: String,
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
}

impl Table {
    fn new(bench: &str, title: &str, columns: &[&str]) -> Table {
        Table {
            bench: bench.into(),
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: vec![],
            notes: vec![],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Columns aligned, as a Markdown table (the README quotes it).
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.len()).collect();
        for r in &self.rows {
            for (i, cell) in r.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.len());
                }
            }
        }
        let line = |cells: &[String]| {
            let cells: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
                .collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = format!("\n### {}\n\n", self.title);
        out.push_str(&line(&self.columns));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        for n in &self.notes {
            out.push_str(&format!("\n{n}\n"));
        }
        out
    }
}

#[derive(Debug, Serialize)]
struct Output {
    machine: String,
    tables: Vec<Table>,
}

/// The highest `--port-base`: the bench's ports (20 from the base) and the
/// Patroni engine's REST ports (1000 above each) stay below 65536.
pub const PORT_BASE_MAX: u16 = 65535 - 1000 - 20;

pub fn run(args: &BenchArgs, runner: &dyn Runner) -> Result<()> {
    if let Some(e) = args.compare {
        if e.runs_here()? != crate::cli::Engine::Patroni {
            anyhow::bail!("--compare takes patroni: the tool's own engine is always measured");
        }
    }
    if let Some(p) = &args.json {
        crate::fsx::check_writable(p, "--json")?;
    }
    let docker = crate::docker::Docker::detect(runner)?;
    let machine = machine(&docker, runner);
    say!("bench on {machine}");
    let all = args.which == Which::All;
    let wants = |w: Which| all || args.which == w;
    let mut tables = Vec::new();
    let mut show = |t: Table| {
        say!("{}", t.render());
        tables.push(t);
    };
    if let Some(dir) = &args.plot {
        crate::fsx::create_dir(dir)?;
    }
    let first = *args
        .postgres
        .first()
        .context("--postgres needs at least one major")?;
    let three = bench_topology(2, args.port_base, first)?;
    claim(&docker, runner, &three)?;
    let four = bench_topology(3, args.port_base + 10, first)?;
    if wants(Which::Failover) {
        claim(&docker, runner, &four)?;
    }
    let result = (|| -> Result<()> {
        if wants(Which::Move) {
            show(datamove::bench(args, runner)?);
        }
        if wants(Which::Setup) {
            show(setup::bench(&three, runner)?);
        }
        if wants(Which::Failover) {
            let mut per_major = Vec::new();
            for major in &args.postgres {
                per_major.push((
                    *major,
                    bench_topology(2, args.port_base, *major)?,
                    bench_topology(3, args.port_base + 10, *major)?,
                ));
            }
            let t = failover::bench(&per_major, args, runner);
            // The other benches run on the first major again.
            bench_topology(2, args.port_base, first)?;
            bench_topology(3, args.port_base + 10, first)?;
            if !args.keep {
                down(&four, runner)?;
            }
            for table in t? {
                show(table);
            }
        }
        if wants(Which::Reclone) {
            show(reclone::bench(&three, args, runner)?);
        }
        if wants(Which::Commit) {
            show(load::commit(&three, args, runner)?);
        }
        if wants(Which::Read) {
            show(load::read(&three, args, runner)?);
        }
        Ok(())
    })();
    if !args.keep && args.which != Which::Move {
        if let Err(e) = down(&three, runner) {
            warn!("warning: removing the bench cluster: {e:#}");
        }
    }
    result?;
    if let Some(path) = &args.json {
        let out = Output { machine, tables };
        project::write_if_changed(path, &serde_json::to_string_pretty(&out)?)?;
        say!("figures written to {}", path.display());
    }
    Ok(())
}

/// What the figures were measured on.
fn machine(docker: &crate::docker::Docker, runner: &dyn Runner) -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| format!("{:.0} GiB RAM", kb as f64 / 1048576.0))
        .unwrap_or_else(|| "RAM unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_string());
    let engine = runner
        .run_unchecked(
            &docker
                .cmd()
                .args(["version", "--format", "{{.Server.Version}}"])
                .read_only(),
        )
        .ok()
        .filter(|o| o.success)
        .map(|o| format!("Docker Engine {}", o.stdout.trim()))
        .unwrap_or_else(|| "Docker Engine ?".into());
    format!(
        "{cores} cores, {mem}, {kernel}, {engine}, {}",
        docker.describe(runner)
    )
}

/// A bench topology: the semi-sync preset with `standbys` standbys, named
/// `bench-<nodes>`, on ports from `port_base`, with no fixed subnet (Docker
/// picks a free one), written under `state/.bench/`.
fn bench_topology_text(
    standbys: usize,
    port_base: u16,
    major: cluster_config::version::Major,
) -> Result<(String, String)> {
    let preset = project::root().join("conf").join("semi-sync.toml");
    let text = std::fs::read_to_string(&preset)
        .with_context(|| format!("reading {}", preset.display()))?;
    let mut v: toml::Table = text.parse().context("parsing the semi-sync preset")?;
    let nodes = standbys + 1;
    let name = format!("bench-{nodes}");
    let set = |v: &mut toml::Table, table: &str, key: &str, value: toml::Value| -> Result<()> {
        v.get_mut(table)
            .and_then(|t| t.as_table_mut())
            .with_context(|| format!("the preset has no [{table}]"))?
            .insert(key.into(), value);
        Ok(())
    };
    set(&mut v, "cluster", "name", name.clone().into())?;
    set(&mut v, "cluster", "postgres", i64::from(major.get()).into())?;
    v.get_mut("network")
        .and_then(|t| t.as_table_mut())
        .context("the preset has no [network]")?
        .remove("subnet");
    let template = v
        .get("node")
        .and_then(|n| n.as_array())
        .and_then(|n| n.last())
        .cloned()
        .context("the preset has no [[node]]")?;
    let mut list = v
        .get("node")
        .and_then(|n| n.as_array())
        .cloned()
        .unwrap_or_default();
    list.truncate(nodes);
    while list.len() < nodes {
        let i = list.len();
        let mut n = template.clone();
        if let Some(t) = n.as_table_mut() {
            t.insert("name".into(), format!("slave{i}-db").into());
            let mut data = toml::Table::new();
            data.insert("bind".into(), format!("postgres_data_slave{i}").into());
            let mut backup = toml::Table::new();
            backup.insert("bind".into(), format!("postgres_backup_slave{i}").into());
            t.insert("data".into(), data.into());
            t.insert("backup".into(), backup.into());
        }
        list.push(n);
    }
    let mut names = Vec::new();
    for (i, n) in list.iter_mut().enumerate() {
        let t = n.as_table_mut().context("a [[node]] is not a table")?;
        t.insert(
            "port".into(),
            toml::Value::Integer(i64::from(port_base) + i as i64),
        );
        names.push(format!(
            "\"{}\"",
            t.get("name").and_then(|n| n.as_str()).unwrap_or_default()
        ));
    }
    v.insert("node".into(), list.into());
    set(
        &mut v,
        "replication",
        "synchronous_standby_names",
        format!("FIRST 1 ({})", names.join(", ")).into(),
    )?;
    let body = format!(
        "# Written by `cargo xtask bench` from conf/semi-sync.toml; rewritten on every run.\n{}",
        toml::to_string(&v)?
    );
    Ok((name, body))
}

/// The bench's own folder for its topologies: `state/.bench/` (a cluster
/// name cannot start with a dot, so no cluster's state folder is this one).
fn bench_dir() -> PathBuf {
    project::root()
        .join(cluster_config::compose::STATE_DIR)
        .join(".bench")
}

/// The file in a bench cluster's state folder that says the bench made it.
const MARK: &str = ".pgrepl-bench";

/// Makes sure a bench cluster's name is the bench's to purge: a cluster of
/// that name that the bench did not make (its state folder without the
/// bench's mark, or its containers with no state at all) is refused, never
/// purged.
fn claim(docker: &crate::docker::Docker, runner: &dyn Runner, topology: &Path) -> Result<()> {
    let loaded = project::load_valid(topology)?;
    let name = loaded.topology.name();
    let state = project::root()
        .join(cluster_config::compose::STATE_DIR)
        .join(name);
    let marked = std::fs::symlink_metadata(state.join(MARK)).is_ok();
    let state_exists = std::fs::symlink_metadata(&state).is_ok();
    let containers = runner
        .run(
            &docker
                .cmd()
                .args(["ps", "-a", "-q", "--filter"])
                .arg(format!(
                    "label={}={name}",
                    cluster_config::compose::LABEL_CLUSTER
                ))
                .read_only(),
        )?
        .stdout;
    if (state_exists || !containers.trim().is_empty()) && !marked {
        bail!(
            "a cluster named `{name}` exists that the bench did not make (state/{name}/ or containers labelled {}={name}); \
             the bench purges its clusters, so it stops here. Remove that cluster yourself (`cargo xtask down -t <its topology>`), \
             or run the bench on another machine",
            cluster_config::compose::LABEL_CLUSTER
        );
    }
    mark(name)
}

/// Leaves the bench's mark in a bench cluster's state folder.
fn mark(name: &str) -> Result<()> {
    let state = project::root()
        .join(cluster_config::compose::STATE_DIR)
        .join(name);
    crate::fsx::create_private_dir(&state)?;
    crate::project::write_if_changed(
        &state.join(MARK),
        "made by `cargo xtask bench`; purged by it\n",
    )?;
    Ok(())
}

fn bench_topology(
    standbys: usize,
    port_base: u16,
    major: cluster_config::version::Major,
) -> Result<PathBuf> {
    let (name, body) = bench_topology_text(standbys, port_base, major)?;
    let path = bench_dir().join(format!("{name}.toml"));
    project::write_if_changed(&path, &body)?;
    // The same checks as every topology.
    project::load_valid(&path)?;
    Ok(path)
}

/// The bench topology at `path` with `ANY 1` instead of `FIRST 1`, as a
/// cluster of its own name (`<name>q`, on the same ports: the two never run
/// at once).
pub fn quorum_variant(path: &Path) -> Result<PathBuf> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let loaded = project::load_valid(path)?;
    let name = loaded.topology.name();
    let q = format!("{name}q");
    let body = text
        .replacen(&format!("name = \"{name}\""), &format!("name = \"{q}\""), 1)
        .replacen("FIRST 1 (", "ANY 1 (", 1);
    let out = bench_dir().join(format!("{q}.toml"));
    project::write_if_changed(&out, &body)?;
    if project::load_valid(&out)?.topology.name() != q {
        anyhow::bail!("the quorum variant of {} kept its name", path.display());
    }
    Ok(out)
}

/// A bench cluster from nothing: removed with its data, then set up.
fn fresh(path: &Path, runner: &dyn Runner) -> Result<Duration> {
    down(path, runner)?;
    mark(project::load_valid(path)?.topology.name())?;
    let started = std::time::Instant::now();
    crate::ops::setup::run(
        &Cluster::open(path, runner)?,
        &crate::ops::setup::Plan {
            mode: cluster_config::Mode::Sync,
            timeout: Duration::from_secs(180),
            absent: crate::pg_image::Absent::Build,
        },
    )?;
    Ok(started.elapsed())
}

/// Running and healthy, or set up now.
fn ensure_up(path: &Path, runner: &dyn Runner) -> Result<()> {
    let c = Cluster::open(path, runner)?;
    let rows = crate::ops::live::collect(&c)?;
    if crate::ops::live::healthy(&rows) {
        return Ok(());
    }
    fresh(path, runner).map(|_| ())
}

fn down(path: &Path, runner: &dyn Runner) -> Result<()> {
    crate::ops::down::run(&Cluster::open(path, runner)?, true)
}

/// One pgbench run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Pgbench {
    pub tps: f64,
    pub latency_ms: f64,
}

/// pgbench inside a node's container over its local socket; `env` as
/// `KEY=value` (PGOPTIONS, for instance).
fn pgbench(c: &Cluster, node: &str, env: &[String], args: &[String]) -> Result<Pgbench> {
    let t = c.topology();
    let id = crate::ops::container::id_of(c, node)?;
    let mut cmd = c.docker().cmd().arg("exec");
    for e in env {
        cmd = cmd.args(["-e", e]);
    }
    let cmd = cmd
        .args([&id, "pgbench", "-U"])
        .arg(t.database.owner.get_ref().as_str())
        .args(args.iter().cloned())
        .arg(t.database.name.get_ref().as_str());
    let out = c.runner().run(&cmd)?;
    parse_pgbench(&out.stdout)
        .with_context(|| format!("reading pgbench's figures on {node}:\n{}", out.stdout))
}

/// pgbench's tables on the primary: at `scale` exactly, or (None) any
/// that exist, else scale 10.
fn pgbench_init(c: &Cluster, primary: &str, scale: Option<u32>) -> Result<()> {
    let exists = c.sql(
        primary,
        "SELECT to_regclass('pgbench_branches') IS NOT NULL",
    )? == "t";
    let have = if exists {
        c.sql(primary, "SELECT count(*) FROM pgbench_branches")?
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
    } else {
        0
    };
    let scale = match scale {
        Some(s) if s == have => return Ok(()),
        None if have > 0 => return Ok(()),
        Some(s) => s,
        None => 10,
    };
    let t = c.topology();
    let id = crate::ops::container::id_of(c, primary)?;
    c.runner().run(
        &c.docker()
            .cmd()
            .args([
                "exec",
                &id,
                "pgbench",
                "-i",
                "-q",
                "-s",
                &scale.to_string(),
                "-U",
            ])
            .arg(t.database.owner.get_ref().as_str())
            .arg(t.database.name.get_ref().as_str()),
    )?;
    Ok(())
}

fn parse_pgbench(text: &str) -> Result<Pgbench> {
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let (Some(tps), Some(latency_ms)) = (find("tps = "), find("latency average = ")) else {
        bail!("no `tps = ` and `latency average = ` lines");
    };
    Ok(Pgbench { tps, latency_ms })
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    match v.len() {
        0 => 0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_figures_are_read_from_its_report() {
        let text = "transaction type: <builtin: select only>\nscaling factor: 10\n\
                    latency average = 0.512 ms\ninitial connection time = 12.3 ms\n\
                    tps = 7801.220315 (without initial connection time)\n";
        let p = parse_pgbench(text).unwrap();
        assert!((p.tps - 7801.220315).abs() < 1e-6 && (p.latency_ms - 0.512).abs() < 1e-9);
        assert!(parse_pgbench("pgbench: error: connection refused").is_err());
    }

    #[test]
    fn bench_topologies_pass_the_same_checks_as_any_other() {
        let (name, body) = bench_topology_text(3, 31000, cluster_config::version::DEFAULT).unwrap();
        let loaded = cluster_config::Loaded::parse(&format!("{name}.toml"), &body).unwrap();
        let report = crate::project::check(&loaded);
        assert!(!report.has_errors(), "{report:?}");
        let t = loaded.topology;
        assert_eq!(t.name(), "bench-4");
        assert_eq!(t.nodes.len(), 4);
        assert!(t.subnet().is_none());
        let ports: Vec<u16> = t.nodes.iter().map(|n| *n.port.get_ref()).collect();
        assert_eq!(ports, [31000, 31001, 31002, 31003]);
    }

    #[test]
    fn the_bench_runs_the_default_major_unless_told() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            b: BenchArgs,
        }
        let cli = Cli::parse_from(["bench"]);
        assert_eq!(cli.b.postgres, [cluster_config::version::DEFAULT]);
        let cli = Cli::parse_from(["bench", "--postgres", "15,17,18"]);
        assert_eq!(cli.b.postgres.len(), 3);
        let (_, body) = bench_topology_text(2, 31000, cli.b.postgres[2]).unwrap();
        assert!(body.contains("postgres = 18"), "{body}");
    }

    #[test]
    fn tables_render_aligned() {
        let mut t = Table::new("x", "T", &["a", "long column"]);
        t.row(vec!["value".into(), "1".into()]);
        let r = t.render();
        assert!(r.contains("| a     | long column |"), "{r}");
        assert!(r.contains("| value | 1           |"), "{r}");
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(median(vec![4, 1]), 2);
    }
}
