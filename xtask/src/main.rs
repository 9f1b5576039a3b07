//! `cargo xtask`: turns the replication runbooks into verified commands.
//!
//! `main` only parses the command line and dispatches; each task lives in its
//! own module.

#[macro_use]
mod out;

mod basebackup;
mod bench;
mod catalogue;
mod cli;
mod cluster;
mod debian_image;
mod docker;
mod down;
mod drill;
mod drill_report;
mod export;
mod failover;
mod fsx;
mod image;
mod ops;
#[cfg(windows)]
mod owner_only;
mod pg;
mod pg_image;
mod project;
#[cfg(test)]
mod readme;
mod rejoin;
mod render;
mod runner;
mod secrets;
mod setup;
mod status;
mod steps;
mod switchover;
#[cfg(test)]
mod testing;
mod validate;
mod wait;

use clap::{Parser, Subcommand};

/// Render, validate and run replicated PostgreSQL clusters on Docker Compose.
///
/// Topologies are TOML files (presets in `conf/`); generated Compose files
/// live in `compose/`; runtime state (data, backups, secrets) in `state/`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Render(render::RenderArgs),
    Validate(validate::ValidateArgs),
    Image(image::ImageArgs),
    Catalogue(catalogue::CatalogueArgs),
    /// From nothing to a verified semi-synchronous cluster (runbook 000, steps 1-8).
    SetupSync(setup::SetupArgs),
    /// From nothing to a verified asynchronous cluster with slots (runbook 003).
    SetupAsync(setup::SetupArgs),
    Basebackup(basebackup::BasebackupArgs),
    Failover(failover::FailoverArgs),
    Switchover(switchover::SwitchoverArgs),
    Rejoin(rejoin::RejoinArgs),
    FailoverDrill(drill::DrillArgs),
    DrillReport(drill_report::DrillReportArgs),
    Status(status::StatusArgs),
    Down(down::DownArgs),
    Bench(bench::BenchArgs),
    Export(export::ExportArgs),
}

fn main() {
    if let Err(e) = check_environment() {
        warn!("error: {e:#}");
        std::process::exit(2);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Catalogue(args) => {
            runner::for_flags(false).and_then(|r| catalogue::run(&args, r.as_ref()))
        }
        Command::Image(args) => {
            runner::for_flags(args.dry_run).and_then(|r| image::run(&args, r.as_ref()))
        }
        Command::SetupSync(args) => runner::for_flags(args.run.dry_run)
            .and_then(|r| setup::run(&args, cluster_config::Mode::Sync, r.as_ref())),
        Command::SetupAsync(args) => runner::for_flags(args.run.dry_run)
            .and_then(|r| setup::run(&args, cluster_config::Mode::Async, r.as_ref())),
        Command::Basebackup(args) => {
            runner::for_flags(args.dry_run).and_then(|r| basebackup::run(&args, r.as_ref()))
        }
        Command::Failover(args) => {
            runner::for_flags(args.dry_run).and_then(|r| failover::run(&args, r.as_ref()))
        }
        Command::Switchover(args) => {
            runner::for_flags(args.dry_run).and_then(|r| switchover::run(&args, r.as_ref()))
        }
        Command::Rejoin(args) => {
            runner::for_flags(args.dry_run).and_then(|r| rejoin::run(&args, r.as_ref()))
        }
        Command::FailoverDrill(args) => {
            runner::for_flags(false).and_then(|r| drill::run(&args, r.as_ref()))
        }
        Command::DrillReport(args) => drill_report::run(&args),
        Command::Status(args) => {
            runner::for_flags(false).and_then(|r| status::run(&args, r.as_ref()))
        }
        Command::Export(args) => export::run(&args),
        Command::Bench(args) => {
            runner::for_flags(false).and_then(|r| bench::run(&args, r.as_ref()))
        }
        Command::Down(args) => {
            runner::for_flags(args.dry_run).and_then(|r| down::run(&args, r.as_ref()))
        }
    };
    if let Err(e) = result {
        warn!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The longest command-line argument accepted (PATH_MAX on Linux).
const MAX_ARG: usize = 4096;

/// The tool's environment variables, checked before anything else reads
/// them: an empty or malformed one is named, never mistaken for a flag.
fn check_environment() -> anyhow::Result<()> {
    use anyhow::bail;
    // No argument is echoed back at length: one longer than any path or
    // value the tool takes is refused here, by its position and size.
    for (i, arg) in std::env::args_os().enumerate().skip(1) {
        let len = arg.len();
        if len > MAX_ARG {
            bail!("argument {i} is {len} bytes long; the longest the tool takes is {MAX_ARG} bytes (a path or a value)");
        }
    }
    runner::verbose()?;
    if let Ok(v) = std::env::var(docker::COMPOSE_ENV) {
        if !matches!(
            v.trim(),
            "" | "v1" | "1" | "docker-compose" | "v2" | "2" | "plugin" | "docker compose"
        ) {
            bail!(
                "{} is `{}`: use v2 (`docker compose`) or v1 (`docker-compose`), or unset it",
                docker::COMPOSE_ENV,
                cluster_config::names::shown(&v)
            );
        }
    }
    for (var, what) in [
        ("PGREPL_TOPOLOGY", "a topology file"),
        (
            "PGREPL_DEBIAN_MIRROR",
            "a Debian mirror URL (http://, https:// or file:/)",
        ),
        (
            cluster_config::compose::IMAGE_ENV,
            "an image such as pgrepl/postgres:15",
        ),
        (cluster_config::compose::USER_ENV, "uid:gid"),
    ] {
        let Some(value) = std::env::var_os(var) else {
            continue;
        };
        let Some(value) = value.to_str() else {
            bail!("{var} is not valid Unicode; set it to {what} or unset it");
        };
        if value.trim().is_empty() {
            bail!("{var} is set but empty; set it to {what} or unset it");
        }
        if var == cluster_config::compose::IMAGE_ENV {
            if let Err(e) = value.parse::<cluster_config::names::ImageRef>() {
                bail!("{var}: {e}");
            }
        }
        if var == "PGREPL_DEBIAN_MIRROR" {
            if let Err(e) = crate::debian_image::parse_mirror(value) {
                bail!("{var}: {e}");
            }
        }
        if var == cluster_config::compose::USER_ENV {
            let ok = value.split_once(':').is_some_and(|(u, g)| {
                [u, g].iter().all(|p| {
                    !p.is_empty() && p.len() <= 10 && p.chars().all(|c| c.is_ascii_digit())
                })
            });
            if !ok {
                bail!(
                    "{var} is `{}`: it must be numeric uid:gid, such as 1000:1000",
                    cluster_config::names::shown(value)
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_explains_itself() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            assert!(
                sub.get_about().is_some(),
                "`{}` has no help text",
                sub.get_name()
            );
        }
    }
}
