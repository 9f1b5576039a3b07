//! `image`: builds the project's PostgreSQL image from Debian packages
//! (debootstrap of bookworm with postgresql-15) and loads it into the engine,
//! with no registry involved.

use crate::ops::image::{build, Spec, DEFAULT_TAG, PATRONI_TAG};
use crate::runner::Runner;
use anyhow::Result;
use clap::Args;

/// Build a PostgreSQL 15 image from Debian packages and load it into Docker.
///
/// As root with debootstrap; as another user with mmdebstrap in unshare
/// mode (user namespaces, a subordinate id range). The Debian mirror comes
/// from --mirror, else from this machine's apt sources.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Image name and tag to create
    #[arg(long, default_value = DEFAULT_TAG)]
    pub tag: String,
    /// Debian mirror URL [default: the one in this machine's apt sources]
    #[arg(long, env = "PGREPL_DEBIAN_MIRROR")]
    pub mirror: Option<String>,
    /// Debian suite
    #[arg(long, default_value = "bookworm")]
    pub suite: String,
    /// Rebuild even when the image is present
    #[arg(long)]
    pub force: bool,
    /// Also install Patroni and etcd (for `export --engine patroni` checks);
    /// the tag then defaults to pgrepl/patroni:15
    #[arg(long)]
    pub patroni: bool,
    /// Print the commands instead of running them
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &ImageArgs, runner: &dyn Runner) -> Result<()> {
    build(
        &Spec {
            tag: if args.patroni && args.tag == DEFAULT_TAG {
                PATRONI_TAG.to_string()
            } else {
                args.tag.clone()
            },
            mirror: args.mirror.clone(),
            suite: args.suite.clone(),
            force: args.force,
            patroni: args.patroni,
        },
        runner,
    )
}
