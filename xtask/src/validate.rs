//! `validate`: checks topologies and hand-written `postgresql.conf` /
//! `pg_hba.conf` files, reporting every problem at once.

use crate::project;
use anyhow::{bail, Context, Result};
use clap::Args;
use cluster_config::names::RoleName;
use cluster_config::net::Subnet;
use cluster_config::{validate, Location, Report};
use std::path::PathBuf;

/// Check topologies and existing postgresql.conf / pg_hba.conf files; report every problem.
///
/// With no arguments, validates every preset in conf/. Files given with --conf
/// are read as one cluster: a postgresql.conf with primary_conninfo is taken
/// for a standby, one without for the primary; a file whose name contains
/// "hba" (or whose lines look like hba rules) for a pg_hba.conf.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Topology file(s) to validate [default: every conf/*.toml when no --conf is given]
    #[arg(
        long = "topology",
        short = 't',
        value_name = "FILE",
        env = "PGREPL_TOPOLOGY"
    )]
    pub topologies: Vec<PathBuf>,
    /// Hand-written postgresql.conf or pg_hba.conf file(s) to check together
    #[arg(long = "conf", value_name = "FILE")]
    pub confs: Vec<PathBuf>,
    /// Role the standbys replicate as, for checking pg_hba.conf files
    /// [default: the topology's, else the user in primary_conninfo]
    #[arg(long, value_name = "ROLE")]
    pub replication_user: Option<RoleName>,
    /// The cluster network (IPv4, network form), for checking pg_hba.conf files [default: the topology's]
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<Subnet>,
    /// Accept `trust` beyond local sockets and loopback in --conf files
    #[arg(long)]
    pub allow_trust: bool,
    /// Also ask the real server: start each configuration once in a
    /// throwaway container (no network) of the topology's image, or of
    /// --postgres's for --conf files, and report what it refuses. Needs
    /// Docker and the image (never built or pulled here)
    #[arg(long)]
    pub server: bool,
    /// The PostgreSQL major --conf files are written for [default: 17]
    #[arg(long, value_name = "MAJOR")]
    pub postgres: Option<cluster_config::version::Major>,
}

pub fn run(args: &ValidateArgs) -> Result<()> {
    refuse_conf_only_flags(args)?;
    let mut failed = Vec::new();
    let loaded = check_topologies(args, &mut failed)?;
    if !args.confs.is_empty() {
        check_confs(args, loaded.first().map(|l| &l.topology), &mut failed)?;
    }
    if args.server {
        for l in &loaded {
            if let Err(e) = server_topology(l) {
                say!("{}:\n  error[server]: {e:#}", l.path);
                if !failed.contains(&l.path) {
                    failed.push(l.path.clone());
                }
            }
        }
    }
    if !failed.is_empty() {
        bail!("validation failed for {}", failed.join("; "));
    }
    Ok(())
}

/// Flags that only apply to `--conf` files are refused without one.
fn refuse_conf_only_flags(args: &ValidateArgs) -> Result<()> {
    if args.confs.is_empty() {
        let given: Vec<&str> = [
            (args.replication_user.is_some(), "--replication-user"),
            (args.subnet.is_some(), "--subnet"),
            (args.allow_trust, "--allow-trust"),
            (args.postgres.is_some(), "--postgres"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect();
        if !given.is_empty() {
            bail!(
                "{} only apply to hand-written files given with --conf (a topology says its own replication user, subnet and allow_trust); add --conf FILE or drop them",
                given.join(", ")
            );
        }
    }
    Ok(())
}

/// Every topology (the presets when none is named), each report printed;
/// the failed ones join `failed`.
fn check_topologies(
    args: &ValidateArgs,
    failed: &mut Vec<String>,
) -> Result<Vec<cluster_config::Loaded>> {
    let topologies = if args.topologies.is_empty() && args.confs.is_empty() {
        project::presets()?
    } else {
        args.topologies.clone()
    };
    let mut loaded = Vec::new();
    for path in &topologies {
        let l = match project::load(path) {
            Ok(l) => l,
            Err(e) => {
                // Refused while reading (a bad name, TOML syntax): report it
                // and go on with the other files.
                let shown = project::display(path);
                say!("{shown}:");
                for line in format!("{e:#}").lines() {
                    say!("  {line}");
                }
                failed.push(shown);
                continue;
            }
        };
        let report = project::check(&l);
        print_report(&l.path, &report);
        if report.has_errors() {
            failed.push(l.path.clone());
        }
        loaded.push(l);
    }
    Ok(loaded)
}

/// The hand-written files, checked together (and by the server with
/// `--server`), with the first topology's user, subnet and major unless
/// flags say otherwise.
fn check_confs(
    args: &ValidateArgs,
    topo: Option<&cluster_config::Topology>,
    failed: &mut Vec<String>,
) -> Result<()> {
    let mut files = Vec::new();
    for path in &args.confs {
        let bytes = crate::fsx::read_limited(path, crate::fsx::CONF_LIMIT)
            .with_context(|| format!("reading {}", path.display()))?;
        files.push((project::display(path), bytes));
    }
    let user = args
        .replication_user
        .as_ref()
        .map(|u| u.to_string())
        .or_else(|| topo.map(|t| t.replication.user.get_ref().to_string()));
    let subnet = args.subnet.or_else(|| topo.and_then(|t| t.subnet()));
    let major = args
        .postgres
        .or_else(|| topo.and_then(|t| t.cluster.declared_major()))
        .unwrap_or(cluster_config::version::DEFAULT);
    let mut report = validate::validate_files_with(
        &files,
        user.as_deref(),
        subnet.map(|s| s.cidr()),
        args.allow_trust,
        &validate::Options {
            memory: project::local_memory(),
            ..validate::Options::for_major(major)
        },
    );
    if let Some(s) = &args.subnet {
        validate::warn_subnet(s, Location::file("--subnet"), &mut report);
    }
    let label = files
        .iter()
        .map(|f| f.0.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    print_report(&label, &report);
    if report.has_errors() {
        failed.push(label.clone());
    }
    if args.server {
        if let Err(e) = server_files(&files, major) {
            say!("{label}:\n  error[server]: {e:#}");
            if !failed.contains(&label) {
                failed.push(label);
            }
        }
    }
    Ok(())
}

/// A topology's rendered configurations, started by its image's server.
fn server_topology(l: &cluster_config::Loaded) -> Result<()> {
    let runner = crate::runner::for_flags(false)?;
    let docker = crate::docker::Docker::detect(runner.as_ref())?;
    let want = crate::pg_image::Want::of(&l.topology);
    let image = crate::pg_image::resolve(
        &docker,
        runner.as_ref(),
        &want,
        crate::pg_image::Absent::Refuse,
    )?;
    let configs = crate::ops::preflight::rendered_configs(&l.topology, &l.path);
    crate::ops::preflight::ask_server(
        &docker,
        runner.as_ref(),
        &image,
        "io.pgrepl.validate=server",
        &configs,
    )
}

/// Hand-written files, started by the server of `major`: each
/// postgresql.conf with the pg_hba.conf given (or, without one, a
/// pg_hba.conf that only admits local connections).
fn server_files(files: &[(String, Vec<u8>)], major: cluster_config::version::Major) -> Result<()> {
    let runner = crate::runner::for_flags(false)?;
    let docker = crate::docker::Docker::detect(runner.as_ref())?;
    let want = crate::pg_image::Want::of_major(major);
    let image = crate::pg_image::resolve(
        &docker,
        runner.as_ref(),
        &want,
        crate::pg_image::Absent::Refuse,
    )?;
    let text = |b: &[u8]| {
        cluster_config::text::decode("", b)
            .map(|d| d.text)
            .unwrap_or_else(|_| String::from_utf8_lossy(b).into_owned())
    };
    let (hbas, confs): (Vec<_>, Vec<_>) = files
        .iter()
        .partition(|(p, b)| validate::is_hba_file(p, &text(b)));
    let default_hba = (
        "(a pg_hba.conf with `local all all trust` only)".to_string(),
        b"local all all trust\n".to_vec(),
    );
    let hba = hbas.first().copied().unwrap_or(&default_hba);
    let mut configs = Vec::new();
    for (path, bytes) in &confs {
        configs.push(crate::ops::server_check::Config {
            used_by: vec![path.clone()],
            files: format!("with {}", hba.0),
            postgresql_conf: text(bytes),
            pg_hba_conf: text(&hba.1),
            conf_path: Some(path.clone()),
            hba_path: Some(hba.0.clone()),
        });
    }
    if confs.is_empty() {
        for (path, bytes) in &hbas {
            configs.push(crate::ops::server_check::Config {
                used_by: vec![path.clone()],
                files: "with the image's default postgresql.conf settings".into(),
                postgresql_conf: String::new(),
                pg_hba_conf: text(bytes),
                conf_path: None,
                hba_path: Some(path.clone()),
            });
        }
    }
    crate::ops::preflight::ask_server(
        &docker,
        runner.as_ref(),
        &image,
        "io.pgrepl.validate=server",
        &configs,
    )
}

fn print_report(what: &str, report: &Report) {
    say!("{what}:");
    for line in report.to_string().lines() {
        say!("  {line}");
    }
}
