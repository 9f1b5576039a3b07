//! What is checked against the image that will run, before anything of a
//! cluster changes: the topology against that major's catalogue of
//! settings (or the image's own) and the Docker host's memory; every node's
//! data folder against the image's major (a data folder of another major
//! cannot be opened, and a standby of another major cannot follow); and
//! each distinct rendered configuration started once by the real server.

use crate::cluster::Cluster;
use crate::ops::server_check::{self, Config};
use crate::pg_image::Resolved;
use anyhow::{bail, Result};
use cluster_config::render::PGDATA;
use cluster_config::validate::{self, Options};
use cluster_config::version::Major;
use cluster_config::Storage;

/// Every check above; stops at the first that fails, nothing changed.
pub fn against_image(c: &Cluster, image: &Resolved) -> Result<()> {
    let catalogue = server_check::catalogue_for(c.docker(), c.runner(), image)?;
    let opts = Options {
        major: image.major(),
        catalogue: &catalogue,
        memory: server_check::host_memory(c.docker(), c.runner()),
        major_assumed: false,
    };
    let report = validate::validate_topology_with(c.loaded(), &opts);
    if report.has_errors() {
        bail!(
            "{} is invalid for {}:\n{report}",
            c.path(),
            image.describe()
        );
    }
    majors(c, image.major())?;
    server(c, image)
}

/// The `PG_VERSION` of a node's data folder, when it holds one.
pub fn data_major(c: &Cluster, node: &str) -> Result<Option<String>> {
    let n = c.node(node)?;
    match &n.data {
        Storage::Bind(dir) => {
            let file = c.bind_path(dir).join("PG_VERSION");
            match std::fs::read_to_string(&file) {
                Ok(t) => return Ok(Some(t.trim().to_string())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                // Owned by the container's user: read it from a container.
                Err(_) => {}
            }
            if c.container(node)?.is_none() {
                return Ok(None);
            }
        }
        Storage::Volume(v) => {
            let volume = format!("{}_{v}", c.name());
            let exists = c.runner().run_unchecked(
                &c.docker()
                    .cmd()
                    .args(["volume", "inspect", "--format", "{{.Name}}", &volume])
                    .read_only(),
            )?;
            if !exists.success {
                return Ok(None);
            }
            let out = c.runner().run_unchecked(
                &c.docker()
                    .cmd()
                    .args(["run", "--rm", "--network", "none", "-v"])
                    .arg(format!("{volume}:/data:ro"))
                    .args([
                        "--entrypoint",
                        "cat",
                        &c.one_off_image()?,
                        "/data/PG_VERSION",
                    ])
                    .read_only(),
            )?;
            return Ok(out
                .success
                .then(|| out.stdout.trim().to_string())
                .filter(|s| !s.is_empty()));
        }
    }
    let out = c.runner().run_unchecked(
        &crate::ops::container::one_off(c, node, "cat")?
            .arg(format!("{PGDATA}/PG_VERSION"))
            .read_only(),
    )?;
    Ok(out
        .success
        .then(|| out.stdout.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// Refuses data folders of another major than the image's.
pub fn majors(c: &Cluster, major: Major) -> Result<()> {
    let mut wrong = Vec::new();
    for n in &c.topology().nodes {
        if let Some(v) = data_major(c, n.name())? {
            if v != major.to_string() {
                wrong.push(format!("{} holds a PostgreSQL {v} data folder", n.name()));
            }
        }
    }
    if !wrong.is_empty() {
        bail!(
            "{}; the cluster's image runs PostgreSQL {major}, which cannot open it (nor can a standby of one major follow a primary of another). \
             Nothing was changed. To start over with PostgreSQL {major}: `cargo xtask down --purge -t {}` (this deletes the data), then set up again; \
             to keep the data, set `postgres` back to its major. A major upgrade (pg_upgrade) is not something this tool does.",
            wrong.join("; "),
            c.path()
        );
    }
    Ok(())
}

/// The distinct configurations a topology renders, with the nodes using
/// each.
pub fn rendered_configs(t: &cluster_config::Topology, source: &str) -> Vec<Config> {
    let subnet = t.subnet().map(|s| s.cidr());
    let mut configs: Vec<(String, Config)> = Vec::new();
    for node in &t.nodes {
        let conf = cluster_config::render::postgresql_conf(t, node);
        let hba = cluster_config::render::pg_hba_conf(t, node, subnet.as_ref());
        // The header names the node: configurations are told apart by
        // everything else.
        let body = |text: &str| -> String {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let key = format!("{}\u{0}{}", body(&conf), body(&hba));
        match configs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, cfg)) => cfg.used_by.push(node.name().to_string()),
            None => configs.push((
                key,
                Config {
                    used_by: vec![node.name().to_string()],
                    files: format!("postgresql.conf and pg_hba.conf rendered from {source}"),
                    postgresql_conf: conf,
                    pg_hba_conf: hba,
                    conf_path: None,
                    hba_path: None,
                },
            )),
        }
    }
    configs.into_iter().map(|(_, c)| c).collect()
}

/// Starts each configuration once in `image` and fails with the server's
/// own words when it refuses one. A dry run says it would.
pub fn ask_server(
    docker: &crate::docker::Docker,
    runner: &dyn crate::runner::Runner,
    image: &Resolved,
    label: &str,
    configs: &[Config],
) -> Result<()> {
    if runner.dry_run() {
        say!(
            "[dry-run] would start each of the {} distinct configuration(s) once in a throwaway container of {} (no network) and stop on the server's own refusal",
            configs.len(),
            image.image
        );
        return Ok(());
    }
    let started = std::time::Instant::now();
    let verdicts = server_check::check(docker, runner, image, label, configs)?;
    server_check::report(configs, &verdicts, &image.describe())?;
    say!(
        "the server accepts every configuration ({} distinct, {:.1}s, {})",
        configs.len(),
        started.elapsed().as_secs_f64(),
        image.describe()
    );
    Ok(())
}

/// Each distinct rendered node configuration of the cluster, started once.
pub fn server(c: &Cluster, image: &Resolved) -> Result<()> {
    let configs = rendered_configs(c.topology(), c.path());
    let label = format!("{}={}", cluster_config::compose::LABEL_CLUSTER, c.name());
    ask_server(c.docker(), c.runner(), image, &label, &configs)
}
