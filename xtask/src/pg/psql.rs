//! `psql` inside a node's container (`docker exec`), over its local
//! socket: the way that always reaches a running server, whatever its
//! published port or pg_hba.conf say, and the one a dry run prints.

use super::Transport;
use crate::docker::Docker;
use crate::runner::Runner;
use anyhow::{bail, Result};
use cluster_config::compose::{LABEL_CLUSTER, LABEL_NODE};

/// `psql` in the containers of one cluster, as the database owner.
pub struct Psql<'r> {
    pub docker: Docker,
    pub runner: &'r dyn Runner,
    pub cluster: String,
    pub owner: String,
    pub database: String,
}

/// The container of a cluster's node, if it exists (running or not),
/// found by label: one-off `compose run` containers carry the labels too
/// and are skipped.
pub fn container(
    docker: &Docker,
    runner: &dyn Runner,
    cluster: &str,
    node: &str,
) -> Result<Option<String>> {
    let out = runner.run(
        &docker
            .cmd()
            .args(["ps", "-a", "-q", "--filter"])
            .arg(format!("label={LABEL_CLUSTER}={cluster}"))
            .arg("--filter")
            .arg(format!("label={LABEL_NODE}={node}"))
            .args(["--filter", "label=com.docker.compose.oneoff=False"])
            .read_only(),
    )?;
    Ok(out
        .stdout
        .lines()
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}

impl Transport for Psql<'_> {
    fn commit_within(
        &self,
        node: &str,
        sql: &str,
        bound: std::time::Duration,
    ) -> Result<Option<std::time::Duration>> {
        let Some(id) = container(&self.docker, self.runner, &self.cluster, node)? else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let out = self.runner.run_unchecked(
            &self
                .docker
                .cmd()
                .args([
                    "exec",
                    "-i",
                    &id,
                    "psql",
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                ])
                .arg(&self.owner)
                .args(["-d", &self.database])
                .stdin(sql)
                .timeout(bound),
        )?;
        if !out.success {
            bail!(
                "a commit on {node} failed or did not return within {bound:?}: {}",
                out.stderr.trim()
            );
        }
        Ok(Some(started.elapsed()))
    }

    fn run(
        &self,
        node: &str,
        database: Option<&str>,
        sql: &str,
        mutating: bool,
    ) -> Result<Option<String>> {
        let id = match container(&self.docker, self.runner, &self.cluster, node)? {
            Some(id) => id,
            None if self.runner.dry_run() => format!("<{node}>"),
            None => bail!("{node} has no container; is the cluster set up?"),
        };
        let mut cmd = self
            .docker
            .cmd()
            .args([
                "exec",
                "-i",
                &id,
                "psql",
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
            ])
            .arg(&self.owner)
            .args(["-d", database.unwrap_or(&self.database)])
            .stdin(sql);
        if !mutating {
            cmd = cmd.read_only();
        }
        let out = self.runner.run_unchecked(&cmd)?;
        if !out.success {
            bail!("SQL on {node} failed: {}", out.stderr.trim());
        }
        Ok(Some(out.stdout.trim().to_string()))
    }
}
