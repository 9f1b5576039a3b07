//! `cargo xtask`: turns the replication runbooks into verified commands.
//!
//! `main` only parses the command line and dispatches; each task lives in its
//! own module.

mod basebackup;
mod cluster;
mod docker;
mod down;
mod failover;
mod image;
mod project;
mod render;
mod runner;
mod setup;
mod status;
mod validate;

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
    /// From nothing to a verified semi-synchronous cluster (runbook 000, steps 1-8).
    SetupSync(setup::SetupArgs),
    /// From nothing to a verified asynchronous cluster with slots (runbook 003).
    SetupAsync(setup::SetupArgs),
    Basebackup(basebackup::BasebackupArgs),
    FailoverDrill(failover::DrillArgs),
    Status(status::StatusArgs),
    Down(down::DownArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Image(args) => {
            runner::for_flags(args.dry_run).and_then(|r| image::run(&args, r.as_ref()))
        }
        Command::SetupSync(args) => runner::for_flags(args.dry_run)
            .and_then(|r| setup::run(&args, cluster_config::Mode::Sync, r.as_ref())),
        Command::SetupAsync(args) => runner::for_flags(args.dry_run)
            .and_then(|r| setup::run(&args, cluster_config::Mode::Async, r.as_ref())),
        Command::Basebackup(args) => {
            runner::for_flags(args.dry_run).and_then(|r| basebackup::run(&args, r.as_ref()))
        }
        Command::FailoverDrill(args) => {
            runner::for_flags(false).and_then(|r| failover::run(&args, r.as_ref()))
        }
        Command::Status(args) => {
            runner::for_flags(false).and_then(|r| status::run(&args, r.as_ref()))
        }
        Command::Down(args) => {
            runner::for_flags(args.dry_run).and_then(|r| down::run(&args, r.as_ref()))
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
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
