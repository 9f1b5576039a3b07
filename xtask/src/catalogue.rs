//! `catalogue`: regenerates a major's settings catalogue
//! (`crates/cluster-config/src/pg-settings-<N>.tsv`) from that major's
//! image, or with `--check` fails when the committed one differs from what
//! the image's PostgreSQL says. Also reads the catalogue of any image (an
//! official 14 or 16) for setup to check a topology against its own server.

use crate::docker::Docker;
use crate::project;
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use clap::Args;
use cluster_config::settings::Catalogue;
use cluster_config::version::{self, Major};

/// Regenerate a major's settings catalogue from its image's PostgreSQL (names, contexts, types, units, ranges, enum values).
#[derive(Debug, Args)]
pub struct CatalogueArgs {
    /// The major whose catalogue to write or check: 15, 17 or 18
    #[arg(long, value_name = "MAJOR", default_value_t = version::DEFAULT)]
    pub postgres: Major,
    /// Change nothing; fail if the committed catalogue differs from the image's
    #[arg(long)]
    pub check: bool,
    /// Image to read PostgreSQL from [default: PGREPL_IMAGE, else postgres:<MAJOR>, else pgrepl/postgres:<MAJOR>]
    #[arg(long)]
    pub image: Option<cluster_config::names::ImageRef>,
}

/// Where a major's committed catalogue lives.
pub fn path(major: Major) -> std::path::PathBuf {
    project::root()
        .join("crates")
        .join("cluster-config")
        .join("src")
        .join(format!("pg-settings-{major}.tsv"))
}

pub fn run(args: &CatalogueArgs, runner: &dyn Runner) -> Result<()> {
    let docker = Docker::detect(runner)?;
    let major = args.postgres;
    if major.debian_suite().is_none() {
        bail!(
            "the project commits catalogues of {} only (the majors it builds)",
            crate::debian_image::buildable_list()
        );
    }
    let want = match &args.image {
        Some(i) => crate::pg_image::Want::Image(i.to_string(), Some(major)),
        None => crate::pg_image::Want::of_major(major),
    };
    let image = crate::pg_image::resolve(&docker, runner, &want, crate::pg_image::Absent::Refuse)?;
    let text = crate::ops::server_check::read_catalogue(&docker, runner, &image.image)?;
    let parsed = Catalogue::parse(&text).map_err(anyhow::Error::msg)?;
    if parsed.major() != major {
        bail!(
            "{} holds PostgreSQL {}, not {major}",
            image.image,
            parsed.major()
        );
    }
    let target = path(major);
    let committed = std::fs::read_to_string(&target).unwrap_or_default();
    if args.check {
        if committed != text {
            let old: Vec<&str> = committed.lines().collect();
            let new: Vec<&str> = text.lines().collect();
            let gone: Vec<&&str> = old.iter().filter(|l| !new.contains(l)).take(5).collect();
            let added: Vec<&&str> = new.iter().filter(|l| !old.contains(l)).take(5).collect();
            bail!(
                "{} is stale against {}: lines only in the committed file {gone:?}, only in the image's {added:?}; run `cargo xtask catalogue --postgres {major}` and commit the result",
                project::display(&target),
                image.image
            );
        }
        say!(
            "catalogue --check: {} settings of PostgreSQL {} up to date with {}",
            parsed.len(),
            image.version.version,
            image.image
        );
        return Ok(());
    }
    let changed = project::write_if_changed(&target, &text)
        .with_context(|| format!("writing {}", target.display()))?;
    say!(
        "{} {} ({} settings from {})",
        if changed { "wrote" } else { "unchanged" },
        project::display(&target),
        parsed.len(),
        image.describe()
    );
    Ok(())
}
