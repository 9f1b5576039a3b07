//! `image`: builds the project's PostgreSQL image of a major from Debian
//! packages (bookworm for 15, trixie for 17, forky for 18) and loads it into
//! the engine, with no registry involved.

use crate::debian_image::{build, Spec, PATRONI_MAJOR, PATRONI_TAG};
use crate::runner::Runner;
use anyhow::{bail, Result};
use clap::Args;
use cluster_config::names::ImageRef;
use cluster_config::version::{self, Major};

/// Build a PostgreSQL image from Debian packages and load it into Docker.
///
/// As root with debootstrap; as another user with mmdebstrap in unshare
/// mode (user namespaces, a subordinate id range). The Debian mirror comes
/// from --mirror, else from this machine's apt sources.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The PostgreSQL major: 15 (Debian bookworm), 17 (trixie) or 18 (forky)
    #[arg(long, value_name = "MAJOR", default_value_t = version::DEFAULT)]
    pub postgres: Major,
    /// Image name and tag to create [default: pgrepl/postgres:<MAJOR>]
    #[arg(long)]
    pub tag: Option<ImageRef>,
    /// Debian mirror URL [default: the one in this machine's apt sources]
    #[arg(long, env = "PGREPL_DEBIAN_MIRROR", value_parser = crate::debian_image::parse_mirror)]
    pub mirror: Option<String>,
    /// Debian suite [default: the one that packages MAJOR]
    #[arg(long, value_parser = crate::debian_image::parse_suite)]
    pub suite: Option<String>,
    /// Rebuild even when the image is present
    #[arg(long)]
    pub force: bool,
    /// Also install Patroni and etcd (Debian forky's patroni 4.1.5, its etcd
    /// client and etcd, with PostgreSQL 18); the tag then defaults to pgrepl/patroni:18
    #[arg(long)]
    pub patroni: bool,
    /// Print the commands instead of running them
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &ImageArgs, runner: &dyn Runner) -> Result<()> {
    let major = if args.patroni {
        let m = Major::new(PATRONI_MAJOR).map_err(anyhow::Error::msg)?;
        if args.postgres != version::DEFAULT && args.postgres != m {
            bail!(
                "--patroni builds {}; drop --postgres",
                crate::debian_image::PATRONI_WHAT
            );
        }
        m
    } else {
        args.postgres
    };
    let mut spec = Spec::own(major)?;
    if args.patroni {
        spec.tag = PATRONI_TAG.to_string();
        spec.suite = crate::debian_image::PATRONI_SUITE.to_string();
        spec.patroni = true;
    }
    if let Some(t) = &args.tag {
        spec.tag = t.to_string();
    }
    if let Some(s) = &args.suite {
        spec.suite = s.clone();
    }
    spec.mirror = args.mirror.clone();
    spec.force = args.force;
    build(&spec, runner)
}
