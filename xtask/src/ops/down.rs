//! Removing a cluster, written once (the `down` task, the bench, the
//! tests' teardown): exactly the containers and networks that carry the
//! cluster's label, and with `purge` its volumes and state folder.

use crate::cluster::Cluster;
use crate::project;
use anyhow::{Context, Result};

/// The ids of a cluster's objects of one kind (`container`, `network`,
/// `volume`), found by the project's label alone.
fn labelled(c: &Cluster, kind: &str) -> Result<Vec<String>> {
    let filter = format!(
        "label={}={}",
        cluster_config::compose::LABEL_CLUSTER,
        c.name()
    );
    let mut cmd = c.docker().cmd();
    cmd = match kind {
        "container" => cmd.args(["ps", "-a", "-q", "--filter", &filter]),
        other => cmd.args([other, "ls", "-q", "--filter", &filter]),
    };
    let out = c.runner().run(&cmd.read_only())?;
    Ok(out.stdout.split_whitespace().map(str::to_string).collect())
}

/// Removes a cluster by its label; with `purge` its volumes and state
/// folder too. The topology gives the cluster's name; everything else is
/// found by the label every object of the cluster carries, so it works
/// without a Compose file or secrets file and never creates either.
pub fn run(c: &Cluster, purge: bool) -> Result<()> {
    let runner = c.runner();
    let c = &c;
    let containers = labelled(c, "container")?;
    if !containers.is_empty() {
        // A clean shutdown first (the containers' stop signal, SIGINT, and
        // the same grace period Compose gives them).
        runner.run(
            &c.docker()
                .cmd()
                .args(["stop", "-t", "60"])
                .args(&containers),
        )?;
        runner.run(&c.docker().cmd().args(["rm", "-f", "-v"]).args(&containers))?;
    }
    let networks = labelled(c, "network")?;
    if !networks.is_empty() {
        runner.run(&c.docker().cmd().args(["network", "rm"]).args(&networks))?;
    }
    if purge {
        let volumes = labelled(c, "volume")?;
        if !volumes.is_empty() {
            runner.run(&c.docker().cmd().args(["volume", "rm"]).args(&volumes))?;
        }
    }
    if purge {
        let dir = c.state_dir();
        if runner.dry_run() {
            runner.file(&crate::runner::FileOp::RemoveAll { path: dir.clone() })?;
        } else if dir.exists() {
            // Bind-mounted data may belong to the container's user: clear it
            // from inside a one-off container first when the host cannot.
            // Bind-mounted data may belong to the container's user: when the
            // host user cannot delete it, a one-off container does.
            if data_move::remove_all(&dir).is_err() && dir.exists() {
                let image = c
                    .image()
                    .context("the state folder holds files this user cannot delete, and a container to delete them needs the cluster's image")?
                    .image
                    .clone();
                runner.run(
                    &c.docker()
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
                    say!(
                        "emptied {} but cannot remove the folder itself ({e}): its parent is not writable by this user",
                        project::display(&dir)
                    );
                }
            }
            if !dir.exists() {
                say!("removed {}", project::display(&dir));
            }
        }
    }
    say!(
        "{}: down{}",
        c.name(),
        if purge { " (purged)" } else { " (data kept)" }
    );
    Ok(())
}
