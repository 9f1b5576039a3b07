//! Which image a cluster runs, and which PostgreSQL major it holds: read
//! from the image itself (`postgres --version` in a throwaway container,
//! cached by image id under `state/.images/`), never guessed from a tag,
//! and never another major than the topology asks for.
//!
//! - `postgres = N` alone: `postgres:N` when present, else the project's
//!   own `pgrepl/postgres:N`, built when absent and buildable here.
//! - `image = "..."` alone (or `PGREPL_IMAGE`): that image, which must be
//!   present (or pulled, when the user asks with `--pull`).
//! - Both: the image's own major must be N.
//!
//! Setup records its choice in `state/<cluster>/image`; later commands on
//! the cluster use the recorded image, so that a Compose command never
//! re-creates a container with another image because a new one appeared in
//! the engine.

use crate::debian_image::{buildable_list, official_tag, own_tag, Spec};
use crate::docker::Docker;
use crate::fsx;
use crate::runner::Runner;
use anyhow::{bail, Context, Result};
use cluster_config::compose::{IMAGE_ENV, STATE_DIR};
use cluster_config::version::{parse_version_line, Major, ServerVersion};
use cluster_config::Topology;
use std::path::PathBuf;
use std::time::Duration;

/// What a topology (and the environment) asks to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// A major, with no image named.
    Major(Major),
    /// An image, its major to be read from it; `Some(m)` when the topology
    /// also names the major it must be.
    Image(String, Option<Major>),
}

impl Want {
    /// A major, or `PGREPL_IMAGE` (which must hold that major) when set.
    pub fn of_major(m: Major) -> Want {
        match std::env::var(IMAGE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(i) => Want::Image(i, Some(m)),
            None => Want::Major(m),
        }
    }

    /// From the topology's `postgres` and `image`, with `PGREPL_IMAGE`
    /// in place of `image` when set.
    pub fn of(t: &Topology) -> Want {
        let major = t.cluster.postgres.as_ref().map(|m| *m.get_ref());
        let image = std::env::var(IMAGE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .or_else(|| t.cluster.image().map(|i| i.to_string()));
        match (image, major) {
            (Some(i), m) => Want::Image(i, m),
            (None, Some(m)) => Want::Major(m),
            (None, None) => Want::Major(cluster_config::version::DEFAULT),
        }
    }
}

/// The image chosen, with the server version it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub image: String,
    pub id: String,
    pub version: ServerVersion,
}

impl Resolved {
    pub fn major(&self) -> Major {
        self.version.major
    }

    /// `pgrepl/postgres:17 (PostgreSQL 17.6)`.
    pub fn describe(&self) -> String {
        format!("{} (PostgreSQL {})", self.image, self.version.version)
    }
}

/// What to do when the wanted image is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// Stop with what to do.
    Refuse,
    /// Build the project's own image of a buildable major (setup).
    Build,
    /// `docker pull`, bounded in time (only when the user asks: `--pull`).
    Pull(Duration),
}

/// Resolves what `want` names in the engine. A dry run never builds or
/// pulls: it says it would, and answers with the image it would use.
pub fn resolve(
    docker: &Docker,
    runner: &dyn Runner,
    want: &Want,
    absent: Absent,
) -> Result<Resolved> {
    match want {
        Want::Image(image, major) => resolve_image(docker, runner, image, *major, absent),
        Want::Major(m) => resolve_major(docker, runner, want, *m, absent),
    }
}

/// A named image: present (or pulled, when asked), and of the major the
/// topology says, when it says one.
fn resolve_image(
    docker: &Docker,
    runner: &dyn Runner,
    image: &str,
    major: Option<Major>,
    absent: Absent,
) -> Result<Resolved> {
    if docker.image_id(runner, image)?.is_none() {
        match absent {
            Absent::Pull(limit) => pull(docker, runner, image, limit)?,
            _ => {
                let own = major
                    .filter(|m| m.debian_suite().is_some())
                    .map(|m| format!(", or drop `image` and keep `postgres = {m}` to use the project's own {}", own_tag(m)))
                    .unwrap_or_default();
                bail!(
                    "image `{image}` is not in the Docker engine, and its PostgreSQL major cannot be known without it (it is read from the image, not its name). \
                     Get it with `docker pull {image}` where a registry is reachable (or re-run with --pull){own}. \
                     The project builds {} from Debian packages here: `postgres = N` in [cluster] with no `image`. Nothing was changed.",
                    buildable_list()
                );
            }
        }
    }
    let found = inspect(docker, runner, image)?
        .with_context(|| format!("image `{image}` is still not in the engine"))?;
    if let Some(m) = major {
        if found.major() != m {
            bail!(
                "image `{image}` holds PostgreSQL {} but the topology says postgres = {m}: they must agree. \
                 Change `postgres` to {}, or name an image of PostgreSQL {m}. Nothing was changed.",
                found.version.version,
                found.major()
            );
        }
    }
    Ok(found)
}

/// A major alone: `postgres:<major>` or the project's own image, built
/// when absent and buildable here.
fn resolve_major(
    docker: &Docker,
    runner: &dyn Runner,
    want: &Want,
    m: Major,
    absent: Absent,
) -> Result<Resolved> {
    for tag in [official_tag(m), own_tag(m)] {
        if let Some(found) = inspect(docker, runner, &tag)? {
            if found.major() != m {
                bail!(
                    "image `{tag}` holds PostgreSQL {}, not {m}: remove or re-tag it (`docker image rm {tag}`), then re-run",
                    found.version.version
                );
            }
            return Ok(found);
        }
    }
    let own = own_tag(m);
    let buildable = m.debian_suite().is_some();
    match absent {
        Absent::Build if buildable => {
            let spec = Spec::own(m)?;
            if runner.dry_run() {
                say!("[dry-run] neither {} nor {own} is in the Docker engine: would build {own} from Debian {} packages (`cargo xtask image --postgres {m}`)", official_tag(m), spec.suite);
                return Ok(Resolved {
                    image: own,
                    id: String::new(),
                    version: ServerVersion {
                        major: m,
                        version: format!("{m}"),
                        build: "to be built".into(),
                    },
                });
            }
            say!(
                "neither {} nor {own} is in the Docker engine, and no registry is used: building {own} from Debian {} packages (postgresql-{m})",
                official_tag(m),
                spec.suite
            );
            crate::debian_image::ensure_builder(runner)?;
            crate::debian_image::build(&spec, runner)?;
            inspect(docker, runner, &own)?
                .with_context(|| format!("{own} was built but is not in the engine"))
        }
        Absent::Pull(limit) => {
            pull(docker, runner, &official_tag(m), limit)?;
            resolve(docker, runner, want, Absent::Refuse)
        }
        _ => {
            let how = if buildable {
                format!("`cargo xtask image --postgres {m}` builds {own} from Debian packages (setup does it by itself)")
            } else {
                format!(
                    "PostgreSQL {m} cannot be built here (the project builds {}): `docker pull {}` where a registry is reachable, or re-run with --pull",
                    buildable_list(),
                    official_tag(m)
                )
            };
            bail!(
                "no image of PostgreSQL {m} is in the Docker engine (neither {} nor {own}): {how}. Nothing was changed.",
                official_tag(m)
            )
        }
    }
}

/// `docker pull`, killed after `limit`.
fn pull(docker: &Docker, runner: &dyn Runner, image: &str, limit: Duration) -> Result<()> {
    say!("pulling {image} (at most {}s; --pull)", limit.as_secs());
    let out = runner.run_unchecked(&docker.cmd().args(["pull", image]).timeout(limit))?;
    if !out.success {
        bail!(
            "`docker pull {image}` failed: {}. Nothing was changed.",
            out.stderr.trim().lines().last().unwrap_or("no output")
        );
    }
    Ok(())
}

/// The image's id and server version when present; the version is read
/// once per image id and cached under `state/.images/`.
pub fn inspect(docker: &Docker, runner: &dyn Runner, image: &str) -> Result<Option<Resolved>> {
    let Some(id) = docker.image_id(runner, image)? else {
        return Ok(None);
    };
    let version = server_version(docker, runner, image, &id)?;
    Ok(Some(Resolved {
        image: image.to_string(),
        id,
        version,
    }))
}

fn cache_path(id: &str) -> PathBuf {
    let file: String = id
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    crate::project::root()
        .join(STATE_DIR)
        .join(".images")
        .join(format!("{file}.version"))
}

/// `postgres --version` of an image (cached by its id).
pub fn server_version(
    docker: &Docker,
    runner: &dyn Runner,
    image: &str,
    id: &str,
) -> Result<ServerVersion> {
    let cache = cache_path(id);
    if let Ok(Some(text)) = fsx::read_own(&cache, 4096) {
        if let Ok(v) = parse_version_line(&text) {
            return Ok(v);
        }
    }
    let out = runner.run_unchecked(
        &docker
            .cmd()
            .args(["run", "--rm", "--network", "none", "--label"])
            .arg(format!(
                "{}=version-probe",
                crate::debian_image::IMAGE_LABEL
            ))
            .args(["--entrypoint", "postgres", id, "--version"])
            .read_only(),
    )?;
    if !out.success {
        bail!(
            "could not read the PostgreSQL version of image `{image}` (`postgres --version` in it failed: {}). Is it a PostgreSQL image?",
            out.stderr.trim()
        );
    }
    let v = parse_version_line(&out.stdout).map_err(|e| anyhow::anyhow!("image `{image}`: {e}"))?;
    if !runner.dry_run() {
        // A cache: a user who may not write it (the repository belongs to
        // another) reads the version again next time.
        let _ = fsx::write(&cache, out.stdout.trim().as_bytes(), fsx::Access::Public);
    }
    Ok(v)
}

/// Where setup records the image a cluster runs.
pub fn record_path(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("image")
}

/// The recorded image of a cluster, when setup recorded one.
pub fn recorded(state_dir: &std::path::Path) -> Option<String> {
    fsx::read_own(&record_path(state_dir), 4096)
        .ok()
        .flatten()
        .map(|t| t.trim().to_string())
        .filter(|t| t.parse::<cluster_config::names::ImageRef>().is_ok())
}

/// Records the image a cluster runs.
pub fn record(state_dir: &std::path::Path, image: &str, runner: &dyn Runner) -> Result<()> {
    runner.file(&crate::runner::FileOp::Write {
        path: record_path(state_dir),
        contents: format!("{image}\n").into_bytes(),
        access: fsx::Access::Public,
    })?;
    Ok(())
}

/// The image for one command on an existing cluster: the recorded one when
/// it is still what the topology asks for and present, else resolved anew
/// without building.
pub fn for_cluster(
    docker: &Docker,
    runner: &dyn Runner,
    t: &Topology,
    state_dir: &std::path::Path,
) -> Result<Resolved> {
    let want = Want::of(t);
    if let Some(image) = recorded(state_dir) {
        if let Some(found) = inspect(docker, runner, &image)? {
            let agrees = match &want {
                Want::Major(m) => found.major() == *m,
                Want::Image(i, m) => *i == image && m.is_none_or(|m| m == found.major()),
            };
            if agrees {
                return Ok(found);
            }
        }
    }
    resolve(docker, runner, &want, Absent::Refuse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Recording;

    fn docker() -> Docker {
        Docker {
            docker: "docker".into(),
            compose: std::sync::OnceLock::new(),
        }
    }

    fn topo(cluster: &str) -> Topology {
        let text = format!(
            "[cluster]\nname = \"x\"\n{cluster}\n[replication]\nmode = \"async\"\nuser = \"r\"\n[database]\nname = \"d\"\nowner = \"o\"\n"
        );
        cluster_config::Loaded::parse("t.toml", &text)
            .unwrap()
            .topology
    }

    #[test]
    fn what_a_topology_wants() {
        assert_eq!(Want::of(&topo("")), Want::Major(Major::new(17).unwrap()));
        assert_eq!(
            Want::of(&topo("postgres = 18")),
            Want::Major(Major::new(18).unwrap())
        );
        assert_eq!(
            Want::of(&topo("postgres = 16\nimage = \"postgres:16-alpine\"")),
            Want::Image("postgres:16-alpine".into(), Some(Major::new(16).unwrap()))
        );
    }

    #[test]
    fn an_absent_image_of_another_major_stops_with_what_to_do() {
        let rec = Recording::default();
        rec.fail("image inspect");
        let want = Want::Image("postgres:16-alpine".into(), Some(Major::new(16).unwrap()));
        let err = resolve(&docker(), &rec, &want, Absent::Build)
            .unwrap_err()
            .to_string();
        assert!(err.contains("docker pull postgres:16-alpine"), "{err}");
        assert!(
            err.contains("15 (bookworm), 17 (trixie), 18 (forky)"),
            "{err}"
        );
        assert!(err.contains("Nothing was changed"), "{err}");
        // Nothing but reads was run: no build, no pull, no container.
        assert!(
            rec.lines().iter().all(|l| l.contains("image inspect")),
            "{:?}",
            rec.lines()
        );
        let want = Want::Major(Major::new(14).unwrap());
        let err = resolve(&docker(), &rec, &want, Absent::Build)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot be built here") && err.contains("docker pull postgres:14"),
            "{err}"
        );
    }

    #[test]
    fn the_major_is_read_from_the_image_and_must_agree() {
        let rec = Recording::default();
        rec.answer("image inspect", "sha256:00aa11");
        rec.answer(
            "--version",
            "postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)",
        );
        // The tag says 17; the image holds 15: refused.
        let want = Want::Image("postgres:17".into(), Some(Major::new(17).unwrap()));
        let _ = std::fs::remove_file(cache_path("sha256:00aa11"));
        let err = resolve(&docker(), &rec, &want, Absent::Refuse)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("holds PostgreSQL 15.14") && err.contains("must agree"),
            "{err}"
        );
        let found = resolve(
            &docker(),
            &rec,
            &Want::Image("postgres:17".into(), None),
            Absent::Refuse,
        )
        .unwrap();
        assert_eq!(found.major().get(), 15, "read from the image, not the tag");
        let _ = std::fs::remove_file(cache_path("sha256:00aa11"));
    }
}
