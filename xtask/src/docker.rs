//! Docker and Compose, found once, with the errors a user can act on.

use crate::runner::{Cmd, Runner};
use anyhow::{bail, Result};
use cluster_config::compose::{IMAGE_ENV, USER_ENV};
use std::path::{Path, PathBuf};

/// How Compose is invoked on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeCli {
    /// `docker compose` (v2 plugin).
    Plugin,
    /// `docker-compose` (v1, or v2 standalone).
    Standalone(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Docker {
    pub docker: PathBuf,
    pub compose: ComposeCli,
    pub compose_version: String,
}

const INSTALL_HINT: &str =
    "Install Docker Engine with the Compose plugin (`docker compose`) or `docker-compose` \
(Debian: the Docker engine package and docker-compose from apt; Windows: Docker Desktop), then re-run.";

impl Docker {
    /// Finds `docker` on PATH (honouring PATHEXT on Windows), checks that the
    /// daemon answers, and finds a Compose that works.
    pub fn detect(runner: &dyn Runner) -> Result<Docker> {
        let docker = which::which("docker")
            .map_err(|_| anyhow::anyhow!("`docker` was not found on PATH. {INSTALL_HINT}"))?;
        Self::detect_with(docker, which::which("docker-compose").ok(), runner)
    }

    /// Detection with the programs already located (tests pass their own).
    pub fn detect_with(
        docker: PathBuf,
        standalone: Option<PathBuf>,
        runner: &dyn Runner,
    ) -> Result<Docker> {
        let server = runner.run_unchecked(
            &Cmd::new(&docker)
                .args(["version", "--format", "{{.Server.Version}}"])
                .read_only(),
        )?;
        if !server.success || server.stdout.trim().is_empty() {
            bail!(
                "the Docker daemon does not answer ({}). Start it (Linux: `sudo systemctl start docker`; Windows: start Docker Desktop) \
                 and make sure your user may use it (Linux: member of the `docker` group), then re-run.",
                server.stderr.trim().lines().last().unwrap_or("no output")
            );
        }
        let plugin = runner.run_unchecked(
            &Cmd::new(&docker)
                .args(["compose", "version", "--short"])
                .read_only(),
        )?;
        if plugin.success && !plugin.stdout.trim().is_empty() {
            return Ok(Docker {
                docker,
                compose: ComposeCli::Plugin,
                compose_version: plugin.stdout.trim().to_string(),
            });
        }
        if let Some(dc) = standalone {
            let v =
                runner.run_unchecked(&Cmd::new(&dc).args(["version", "--short"]).read_only())?;
            if v.success {
                return Ok(Docker {
                    docker,
                    compose: ComposeCli::Standalone(dc),
                    compose_version: v.stdout.trim().to_string(),
                });
            }
        }
        bail!("neither `docker compose` nor `docker-compose` works. {INSTALL_HINT}")
    }

    /// `docker compose 2.x` or `docker-compose 1.29.2`, for messages.
    pub fn describe(&self) -> String {
        match &self.compose {
            ComposeCli::Plugin => format!("docker compose {}", self.compose_version),
            ComposeCli::Standalone(_) => format!("docker-compose {}", self.compose_version),
        }
    }

    pub fn cmd(&self) -> Cmd {
        Cmd::new(&self.docker)
    }

    /// A Compose command for a cluster's project. The image may be overridden
    /// with PGREPL_IMAGE; the servers run as the invoking user on Linux when
    /// it is not root, so bind-mounted files stay the user's own.
    pub fn compose(&self, file: &Path, project: &str) -> Cmd {
        let base = match &self.compose {
            ComposeCli::Plugin => Cmd::new(&self.docker).arg("compose"),
            ComposeCli::Standalone(p) => Cmd::new(p),
        };
        let mut c = base
            .args(["-p", project, "-f"])
            .arg(file.to_string_lossy().into_owned());
        if let Some(image) = IMAGE_CHOICE
            .get()
            .cloned()
            .or_else(|| std::env::var(IMAGE_ENV).ok())
        {
            c = c.env(IMAGE_ENV, image);
        }
        if let Some(user) = run_as_user() {
            c = c.env(USER_ENV, user);
        }
        c
    }

    /// Whether an image is present in the engine.
    pub fn has_image(&self, runner: &dyn Runner, image: &str) -> Result<bool> {
        Ok(self.inspect_image(runner, image)?.success)
    }

    /// The id of the image a name points at, if it is present.
    pub fn image_id(&self, runner: &dyn Runner, image: &str) -> Result<Option<String>> {
        let out = self.inspect_image(runner, image)?;
        Ok(out
            .success
            .then(|| out.stdout.trim().to_string())
            .filter(|s| !s.is_empty()))
    }

    fn inspect_image(&self, runner: &dyn Runner, image: &str) -> Result<crate::runner::Output> {
        runner.run_unchecked(
            &self
                .cmd()
                .args(["image", "inspect", "--format", "{{.Id}}", image])
                .read_only(),
        )
    }
}

/// `uid:gid` for the containers' servers: the invoking user's on Unix when
/// not root (PostgreSQL refuses to run as root; root keeps the image default).
pub fn run_as_user() -> Option<String> {
    if let Ok(v) = std::env::var(USER_ENV) {
        return Some(v);
    }
    match effective_ids() {
        Some((uid, gid)) if uid != 0 => Some(format!("{uid}:{gid}")),
        _ => None,
    }
}

/// This process's effective uid and gid (Unix): the owner of a fresh temp
/// file. `None` elsewhere, or when no temp file can be made.
pub fn effective_ids() -> Option<(u32, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let probe = std::env::temp_dir().join(format!(".pgrepl-uid-{}", std::process::id()));
        if std::fs::write(&probe, b"").is_ok() {
            let md = std::fs::metadata(&probe).ok();
            let _ = std::fs::remove_file(&probe);
            return md.map(|m| (m.uid(), m.gid()));
        }
    }
    None
}

/// The image chosen for this run when the topology's is absent (see
/// `image::ensure`); Compose gets it as PGREPL_IMAGE.
static IMAGE_CHOICE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records the image this run uses in place of the topology's.
pub fn choose_image(image: &str) {
    let _ = IMAGE_CHOICE.set(image.to_string());
}

/// The image a topology runs: the one chosen for this run, else
/// PGREPL_IMAGE, else the topology's.
pub fn image_for(topology_image: &str) -> String {
    IMAGE_CHOICE
        .get()
        .cloned()
        .or_else(|| std::env::var(IMAGE_ENV).ok())
        .unwrap_or_else(|| topology_image.to_string())
}

/// A port on the host's loopback that something already listens on.
pub fn port_in_use(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Output, Recording};

    fn docker() -> PathBuf {
        PathBuf::from("docker")
    }

    #[test]
    fn prefers_the_compose_plugin() {
        let rec = Recording::default();
        rec.answer("docker version", "20.10.24");
        rec.answer("docker compose version", "2.29.1");
        let d = Docker::detect_with(docker(), Some("docker-compose".into()), &rec).unwrap();
        assert_eq!(d.compose, ComposeCli::Plugin);
        assert_eq!(d.describe(), "docker compose 2.29.1");
        let c = d
            .compose(Path::new("/r/compose/semi-sync.yml"), "semi-sync")
            .to_string();
        assert!(c.contains("docker compose -p semi-sync -f"), "{c}");
    }

    #[test]
    fn falls_back_to_docker_compose_v1() {
        let rec = Recording::default();
        rec.answer("docker version", "20.10.24");
        rec.answers.lock().unwrap().push((
            "docker compose".into(),
            Output {
                success: false,
                ..Output::default()
            },
        ));
        rec.answer("docker-compose version", "1.29.2");
        let d = Docker::detect_with(docker(), Some("docker-compose".into()), &rec).unwrap();
        assert_eq!(d.compose, ComposeCli::Standalone("docker-compose".into()));
        assert!(
            d.compose(Path::new("/r/x.yml"), "x")
                .to_string()
                .starts_with("docker-compose -p x")
                || d.compose(Path::new("/r/x.yml"), "x")
                    .to_string()
                    .contains(" docker-compose -p x")
        );
    }

    #[test]
    fn stopped_daemon_and_missing_compose_say_what_to_do() {
        let rec = Recording::default();
        rec.answers.lock().unwrap().push((
            "docker version".into(),
            Output {
                success: false,
                stderr: "Cannot connect to the Docker daemon".into(),
                ..Output::default()
            },
        ));
        let err = Docker::detect_with(docker(), None, &rec)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not answer") && err.contains("Start it"),
            "{err}"
        );

        let rec = Recording::default();
        rec.answer("docker version", "20.10.24");
        rec.answers.lock().unwrap().push((
            "compose".into(),
            Output {
                success: false,
                ..Output::default()
            },
        ));
        let err = Docker::detect_with(docker(), None, &rec)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neither `docker compose` nor `docker-compose`"),
            "{err}"
        );
    }
}
