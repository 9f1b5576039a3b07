//! `cargo xtask`: turns the replication runbooks into verified commands.
//!
//! `main` only parses the command line and dispatches; each task lives in its
//! own module.

mod project;
mod render;
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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Validate(args) => validate::run(&args),
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
