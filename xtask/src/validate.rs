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
}

pub fn run(args: &ValidateArgs) -> Result<()> {
    let mut failed = Vec::new();
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
        let report = validate::validate_topology(&l);
        print_report(&l.path, &report);
        if report.has_errors() {
            failed.push(l.path.clone());
        }
        loaded.push(l);
    }
    if !args.confs.is_empty() {
        let mut files = Vec::new();
        for path in &args.confs {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            files.push((project::display(path), bytes));
        }
        let topo = loaded.first().map(|l| &l.topology);
        let user = args
            .replication_user
            .as_ref()
            .map(|u| u.to_string())
            .or_else(|| topo.map(|t| t.replication.user.get_ref().to_string()));
        let subnet = args.subnet.or_else(|| topo.and_then(|t| t.subnet()));
        let mut report = validate::validate_files(
            &files,
            user.as_deref(),
            subnet.map(|s| s.cidr()),
            args.allow_trust,
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
            failed.push(label);
        }
    }
    if !failed.is_empty() {
        bail!("validation failed for {}", failed.join("; "));
    }
    Ok(())
}

fn print_report(what: &str, report: &Report) {
    say!("{what}:");
    for line in report.to_string().lines() {
        say!("  {line}");
    }
}
