//! `image`: builds the project's PostgreSQL image from Debian packages
//! (debootstrap of bookworm with postgresql-15) and loads it into the engine,
//! with no registry involved.

use crate::ops::image::{build, Spec, DEFAULT_TAG};
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
    /// Print the commands instead of running them
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &ImageArgs, runner: &dyn Runner) -> Result<()> {
    build(
        &Spec {
            tag: args.tag.clone(),
            mirror: args.mirror.clone(),
            suite: args.suite.clone(),
            force: args.force,
        },
        runner,
    )
}
