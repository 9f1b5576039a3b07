//! `down`: removes exactly the containers and networks of a cluster's Compose
//! project (and with `--purge` its volumes and state folder).

use crate::cluster::Cluster;
use crate::project;
use crate::runner::Runner;
use anyhow::{Context, Result};
use clap::Args;

/// Remove a cluster's containers and network; data is kept unless --purge.
#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub topology: project::TopologyArg,
    /// Also remove the cluster's named volumes and its state folder (data, backups, configs, secrets)
    #[arg(long)]
    pub purge: bool,
    /// Print the commands, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &DownArgs, runner: &dyn Runner) -> Result<()> {
    let c = Cluster::open(&args.topology.resolve(), runner)?;
    let mut cmd = c.compose().args(["down", "--remove-orphans"]);
    if args.purge {
        cmd = cmd.arg("--volumes");
    }
    // Compose needs the env file to exist to parse the project.
    let secrets = c.state_dir().join(cluster_config::compose::SECRETS_FILE);
    if !secrets.exists() && !runner.dry_run() {
        crate::cluster::write_private(&secrets, "")?;
    }
    runner.run(&cmd)?;
    if args.purge {
        let dir = c.state_dir();
        if runner.dry_run() {
            println!("[dry-run] remove {}", project::display(&dir));
        } else if dir.exists() {
            // Bind-mounted data may belong to the container's user: clear it
            // from inside a one-off container first when the host cannot.
            // Bind-mounted data may belong to the container's user: when the
            // host user cannot delete it, a one-off container does.
            if data_move::remove_all(&dir).is_err() && dir.exists() {
                let image = crate::docker::image_for(&c.topology().cluster.image);
                runner.run(
                    &c.docker
                        .cmd()
                        .args(["run", "--rm", "--label"])
                        .arg(format!(
                            "{}={}",
                            cluster_config::compose::LABEL_CLUSTER,
                            c.name()
                        ))
                        .args(["-u", "0", "-v"])
                        .arg(format!("{}:/state", dir.display()))
                        .args([
                            "--entrypoint",
                            "find",
                            &image,
                            "/state",
                            "-mindepth",
                            "1",
                            "-delete",
                        ]),
                )?;
                if let Err(e) = std::fs::remove_dir(&dir) {
                    let empty = std::fs::read_dir(&dir)
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(false);
                    if !empty {
                        return Err(e).with_context(|| format!("removing {}", dir.display()));
                    }
                    println!(
                        "emptied {} but cannot remove the folder itself ({e}): its parent is not writable by this user",
                        project::display(&dir)
                    );
                }
            }
            if !dir.exists() {
                println!("removed {}", project::display(&dir));
            }
        }
    }
    println!(
        "{}: down{}",
        c.name(),
        if args.purge {
            " (purged)"
        } else {
            " (data kept)"
        }
    );
    Ok(())
}
