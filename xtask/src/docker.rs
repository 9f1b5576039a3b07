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

/// The Docker CLI, found once; Compose is found the first time a Compose
/// command is built (most commands never use it: it costs half a second).
#[derive(Debug, Clone)]
pub struct Docker {
    pub docker: PathBuf,
    pub compose: std::sync::OnceLock<Result<(ComposeCli, String), String>>,
}

/// Forces one Compose: `v1` (`docker-compose`) or `v2` (`docker compose`).
pub const COMPOSE_ENV: &str = "PGREPL_COMPOSE";

const INSTALL_HINT: &str =
    "Install Docker Engine with the Compose plugin (`docker compose`) or `docker-compose` \
(Debian: the Docker engine package and docker-compose from apt; Windows: Docker Desktop), then re-run.";

impl Docker {
    /// Finds `docker` on PATH (honouring PATHEXT on Windows) and checks that
    /// the daemon answers.
    pub fn detect(runner: &dyn Runner) -> Result<Docker> {
        let docker = which::which("docker")
            .map_err(|_| anyhow::anyhow!("`docker` was not found on PATH. {INSTALL_HINT}"))?;
        Self::detect_with(docker, runner)
    }

    /// Detection with the program already located (tests pass their own).
    pub fn detect_with(docker: PathBuf, runner: &dyn Runner) -> Result<Docker> {
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
        Ok(Docker {
            docker,
            compose: std::sync::OnceLock::new(),
        })
    }

    /// The Compose that works here, found on first use: `PGREPL_COMPOSE`
    /// (`v1` or `v2`) forces one; else the v2 plugin, else `docker-compose`.
    pub fn compose_cli(&self, runner: &dyn Runner) -> Result<(ComposeCli, String)> {
        self.compose
            .get_or_init(|| {
                find_compose(&self.docker, which::which("docker-compose").ok(), runner)
                    .map_err(|e| format!("{e:#}"))
            })
            .clone()
            .map_err(anyhow::Error::msg)
    }

    /// `docker compose 2.x` or `docker-compose 1.29.2`, for messages.
    pub fn describe(&self, runner: &dyn Runner) -> String {
        match self.compose_cli(runner) {
            Ok((ComposeCli::Plugin, v)) => format!("docker compose {v}"),
            Ok((ComposeCli::Standalone(_), v)) => format!("docker-compose {v}"),
            Err(_) => "no Compose".into(),
        }
    }

    pub fn cmd(&self) -> Cmd {
        Cmd::new(&self.docker)
    }

    /// A Compose command for a cluster's project, running `image`; the
    /// servers run as the invoking user on Linux when it is not root, so
    /// bind-mounted files stay the user's own.
    pub fn compose(
        &self,
        runner: &dyn Runner,
        file: &Path,
        project: &str,
        image: Option<&str>,
    ) -> Result<Cmd> {
        let base = match self.compose_cli(runner)?.0 {
            ComposeCli::Plugin => Cmd::new(&self.docker).arg("compose"),
            ComposeCli::Standalone(p) => Cmd::new(p),
        };
        let mut c = base
            .args(["-p", project, "-f"])
            .arg(file.to_string_lossy().into_owned());
        if let Some(image) = image {
            c = c.env(IMAGE_ENV, image);
        }
        if let Some(user) = run_as_user() {
            c = c.env(USER_ENV, user);
        }
        Ok(c)
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

/// Finds a working Compose: `PGREPL_COMPOSE=v1|v2` forces one (and fails
/// when it does not work); else the v2 plugin, else `docker-compose`.
fn find_compose(
    docker: &Path,
    standalone: Option<PathBuf>,
    runner: &dyn Runner,
) -> Result<(ComposeCli, String)> {
    let forced = match std::env::var(COMPOSE_ENV) {
        Ok(v) if v.trim().is_empty() => None,
        Ok(v) => match v.trim() {
            "v1" | "1" | "docker-compose" => Some(false),
            "v2" | "2" | "plugin" | "docker compose" => Some(true),
            other => bail!(
                "{COMPOSE_ENV} is `{}`: use v2 (`docker compose`) or v1 (`docker-compose`), or unset it",
                cluster_config::names::shown(other)
            ),
        },
        Err(_) => None,
    };
    if forced != Some(false) {
        let plugin = runner.run_unchecked(
            &Cmd::new(docker)
                .args(["compose", "version", "--short"])
                .read_only(),
        )?;
        if plugin.success && !plugin.stdout.trim().is_empty() {
            return Ok((ComposeCli::Plugin, plugin.stdout.trim().to_string()));
        }
        if forced == Some(true) {
            bail!("{COMPOSE_ENV} asks for `docker compose` (v2), which does not work here. {INSTALL_HINT}");
        }
    }
    if let Some(dc) = standalone {
        let v = runner.run_unchecked(&Cmd::new(&dc).args(["version", "--short"]).read_only())?;
        if v.success {
            return Ok((ComposeCli::Standalone(dc), v.stdout.trim().to_string()));
        }
    }
    if forced == Some(false) {
        bail!("{COMPOSE_ENV} asks for `docker-compose` (v1), which is not on PATH or does not work. {INSTALL_HINT}");
    }
    bail!("neither `docker compose` nor `docker-compose` works. {INSTALL_HINT}")
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
    fn prefers_the_compose_plugin_found_on_first_use() {
        let rec = Recording::default();
        rec.answer("docker version", "20.10.24");
        rec.answer("docker compose version", "2.29.1");
        let d = Docker::detect_with(docker(), &rec).unwrap();
        // No Compose call until a Compose command is built.
        assert_eq!(rec.lines().len(), 1, "{:?}", rec.lines());
        let c = d
            .compose(
                &rec,
                Path::new("/r/compose/semi-sync.yml"),
                "semi-sync",
                Some("pgrepl/postgres:17"),
            )
            .unwrap()
            .to_string();
        assert!(c.contains("docker compose -p semi-sync -f"), "{c}");
        assert!(c.contains("PGREPL_IMAGE=pgrepl/postgres:17"), "{c}");
        assert_eq!(d.describe(&rec), "docker compose 2.29.1");
    }

    #[test]
    fn falls_back_to_docker_compose_v1() {
        let rec = Recording::default();
        rec.fail("docker compose");
        rec.answer("docker-compose version", "1.29.2");
        let (cli, v) =
            find_compose(Path::new("docker"), Some("docker-compose".into()), &rec).unwrap();
        assert_eq!(
            (cli, v.as_str()),
            (ComposeCli::Standalone("docker-compose".into()), "1.29.2")
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
        let err = Docker::detect_with(docker(), &rec).unwrap_err().to_string();
        assert!(
            err.contains("does not answer") && err.contains("Start it"),
            "{err}"
        );

        let rec = Recording::default();
        rec.fail("compose");
        let err = find_compose(Path::new("docker"), None, &rec)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neither `docker compose` nor `docker-compose`"),
            "{err}"
        );
    }
}
