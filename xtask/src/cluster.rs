//! A running cluster: its topology, its Compose project, SQL through `psql`
//! inside the containers, and the generated secrets.
//!
//! SQL goes through `psql` in the node's container over its local socket
//! (trusted only inside the container): it needs no published port, no
//! password on the tool's side, and works the same from Linux and Windows
//! hosts.

use crate::docker::Docker;
use crate::project;
use crate::runner::{Cmd, Runner, Secret};
use anyhow::{bail, Context, Result};
use cluster_config::compose::{self, SECRETS_FILE, STATE_DIR};
use cluster_config::{Loaded, Node, Topology};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// An error that ends a [`poll`] at once instead of being retried.
#[derive(Debug)]
pub struct Stop(pub String);

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

/// Set by a Ctrl-C handler (the failover drill installs one): every wait
/// ends at once.
pub static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Polls `check` until it returns `Some`, or fails after `timeout` with
/// what it was waiting for. Errors are retried, except [`Stop`]. Ctrl-C
/// (see [`INTERRUPTED`]) ends the wait with a [`Stop`].
pub fn poll<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(25);
    let mut last_err = None;
    loop {
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Stop(format!("interrupted while waiting for {what}")).into());
        }
        match check() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) if e.downcast_ref::<Stop>().is_some() => return Err(e),
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            let why = last_err
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for {what}{why}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

pub struct Secrets {
    /// The database owner's (`POSTGRES_PASSWORD`).
    pub owner: Secret,
    pub replication: Secret,
}

pub struct Cluster<'r> {
    pub loaded: Loaded,
    pub docker: Docker,
    pub runner: &'r dyn Runner,
    /// The cluster's Compose file (see [`project::compose_location`]).
    pub compose_file: PathBuf,
    /// The state folder as the Compose file refers to it.
    pub state_ref: String,
    /// The image the nodes' containers run, when it is not the topology's
    /// (the Patroni engine's): one-off containers use it too.
    pub node_image: Option<String>,
    /// The image the topology's nodes run, resolved on first use (see
    /// [`crate::pg_image`]).
    image: std::sync::OnceLock<crate::pg_image::Resolved>,
    /// Direct client connections for SQL, set up at the first statement
    /// once the secrets file exists (never in a dry run).
    direct: std::sync::OnceLock<Option<crate::ops::client::Direct>>,
}

impl<'r> Cluster<'r> {
    /// Loads and validates the topology, then finds Docker: an invalid
    /// topology is refused before the first docker call.
    pub fn open(topology: &std::path::Path, runner: &'r dyn Runner) -> Result<Self> {
        let loaded = project::load_valid(topology)?;
        Self::connect(topology, loaded, runner)
    }

    /// A validated topology with Docker found.
    pub fn connect(
        topology: &std::path::Path,
        loaded: Loaded,
        runner: &'r dyn Runner,
    ) -> Result<Self> {
        let (compose_file, state_ref) = project::compose_location(topology, &loaded);
        let docker = Docker::detect(runner)?;
        Ok(Cluster {
            loaded,
            docker,
            runner,
            compose_file,
            state_ref,
            node_image: None,
            image: std::sync::OnceLock::new(),
            direct: std::sync::OnceLock::new(),
        })
    }

    /// The image the cluster's nodes run: the one setup recorded, or the
    /// one the topology names when present (never built here).
    pub fn image(&self) -> Result<&crate::pg_image::Resolved> {
        if let Some(r) = self.image.get() {
            return Ok(r);
        }
        let r = crate::pg_image::for_cluster(
            &self.docker,
            self.runner,
            self.topology(),
            &self.state_dir(),
        )?;
        Ok(self.image.get_or_init(|| r))
    }

    /// Makes the image available as setup does (building the project's own
    /// image of a buildable major when absent, pulling only on request)
    /// and records it for the cluster's later commands.
    pub fn ensure_image(
        &self,
        absent: crate::pg_image::Absent,
    ) -> Result<&crate::pg_image::Resolved> {
        if let Some(r) = self.image.get() {
            return Ok(r);
        }
        let want = crate::pg_image::Want::of(self.topology());
        let r = crate::pg_image::resolve(&self.docker, self.runner, &want, absent)?;
        Ok(self.image.get_or_init(|| r))
    }

    /// The image name one-off containers of a node run.
    pub fn one_off_image(&self) -> Result<String> {
        match &self.node_image {
            Some(i) => Ok(i.clone()),
            None => Ok(self.image()?.image.clone()),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.loaded.topology
    }

    pub fn name(&self) -> &str {
        self.topology().name()
    }

    pub fn state_dir(&self) -> PathBuf {
        project::root().join(STATE_DIR).join(self.name())
    }

    /// A bind folder's path on the host.
    pub fn bind_path(&self, dir: &cluster_config::names::BindDir) -> PathBuf {
        let mut p = self.state_dir();
        p.extend(dir.parts());
        p
    }

    /// A Compose command for the cluster's project, with the image its
    /// nodes run (the Patroni engine's file names its own image).
    pub fn compose(&self) -> Result<Cmd> {
        let image = match &self.node_image {
            Some(_) => None,
            None => Some(self.image()?.image.clone()),
        };
        self.docker.compose(
            self.runner,
            &self.compose_file,
            self.name(),
            image.as_deref(),
        )
    }

    /// The container of a node, if it exists (running or not).
    pub fn container(&self, node: &str) -> Result<Option<String>> {
        // By label, so it works before the Compose file's env file exists;
        // one-off `compose run` containers carry the labels too: skip them.
        let out = self.runner.run(
            &self
                .docker
                .cmd()
                .args(["ps", "-a", "-q", "--filter"])
                .arg(format!("label={}={}", compose::LABEL_CLUSTER, self.name()))
                .arg("--filter")
                .arg(format!("label={}={node}", compose::LABEL_NODE))
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

    pub fn is_running(&self, node: &str) -> Result<bool> {
        let Some(id) = self.container(node)? else {
            return Ok(false);
        };
        let out = self.runner.run_unchecked(
            &self
                .docker
                .cmd()
                .args(["inspect", "--format", "{{.State.Running}}", &id])
                .read_only(),
        )?;
        Ok(out.success && out.stdout.trim() == "true")
    }

    /// Runs SQL on a node as the superuser over the local socket; returns
    /// rows as `|`-separated lines. The SQL travels on standard input.
    pub fn sql(&self, node: &str, sql: &str) -> Result<String> {
        self.sql_cmd(node, sql, false)
    }

    /// Like [`Self::sql`], for statements that change something.
    pub fn sql_mut(&self, node: &str, sql: &str) -> Result<String> {
        self.sql_cmd(node, sql, true)
    }

    /// The statements of `sql` over a direct connection to the node's
    /// published port, or `None` when none can be made (a stopped node, a
    /// dry run, no secrets file yet, a script only psql can run).
    pub fn try_direct(&self, node: &str, sql: &str) -> Option<Result<String>> {
        if self.runner.dry_run() {
            return None;
        }
        let direct = self
            .direct
            .get_or_init(|| {
                let path = self.state_dir().join(SECRETS_FILE);
                let text = crate::secrets::read(&path).ok().flatten()?;
                let pw = crate::secrets::secret(&text, crate::secrets::OWNER)?;
                Some(crate::ops::client::Direct::new(self.topology(), pw))
            })
            .as_ref()?;
        let statements = crate::ops::client::split_statements(sql)?;
        match direct.run(node, statements, Duration::from_secs(90)) {
            Ok(text) => Some(Ok(text)),
            Err(crate::ops::client::Miss::Unreachable) => None,
            Err(crate::ops::client::Miss::Failed(e)) => {
                Some(Err(e.context(format!("SQL on {node} failed"))))
            }
        }
    }

    /// The same cluster, its Compose commands going to another file (the
    /// Patroni engine's).
    pub fn with_compose_file(mut self, file: PathBuf, image: &str) -> Self {
        self.compose_file = file;
        self.node_image = Some(image.to_string());
        self
    }

    /// SQL through the container's psql in another database than the
    /// topology's (one that may not exist yet).
    pub fn sql_in(&self, node: &str, database: &str, sql: &str) -> Result<String> {
        self.psql(node, database, sql, true)
    }

    fn sql_cmd(&self, node: &str, sql: &str, mutating: bool) -> Result<String> {
        if let Some(answer) = self.try_direct(node, sql) {
            return answer;
        }
        let db = self.topology().database.name.get_ref().as_str().to_string();
        self.psql(node, &db, sql, mutating)
    }

    fn psql(&self, node: &str, database: &str, sql: &str, mutating: bool) -> Result<String> {
        let t = self.topology();
        // `docker exec` on the container found by label: the same as
        // `compose exec`, without Compose's start-up cost on every query.
        let id = match self.container(node)? {
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
            .arg(t.database.owner.get_ref().as_str())
            .args(["-d", database])
            .stdin(sql);
        if !mutating {
            cmd = cmd.read_only();
        }
        let out = self.runner.run_unchecked(&cmd)?;
        if !out.success {
            bail!("SQL on {node} failed: {}", out.stderr.trim());
        }
        Ok(out.stdout.trim().to_string())
    }

    /// Whether a node accepts SQL now.
    pub fn ready(&self, node: &str) -> bool {
        self.sql(node, "SELECT 1")
            .map(|s| s == "1")
            .unwrap_or(false)
    }

    /// The last `lines` lines a node's container logged (empty without one).
    pub fn last_logs(&self, node: &str, lines: u32) -> Result<String> {
        let Some(id) = self.container(node)? else {
            return Ok(String::new());
        };
        let logs = self.runner.run_unchecked(
            &self
                .docker
                .cmd()
                .args(["logs", "--tail", &lines.to_string(), &id])
                .read_only(),
        )?;
        Ok(format!("{}{}", logs.stdout, logs.stderr)
            .trim_end()
            .to_string())
    }

    pub fn wait_ready(&self, node: &str, timeout: Duration) -> Result<()> {
        if self.runner.dry_run() {
            return Ok(());
        }
        poll(&format!("{node} to accept connections"), timeout, || {
            if self.ready(node) {
                return Ok(Some(()));
            }
            if !self.is_running(node)? {
                return Err(Stop(format!(
                    "{node}'s container is not running; its last log lines:\n{}",
                    self.last_logs(node, 15)?
                ))
                .into());
            }
            Ok(None)
        })
    }

    /// Whether any node's data exists (a bind folder holding `PG_VERSION`,
    /// or a named data volume). When unsure (a folder this user may not
    /// read), it says yes.
    pub fn data_exists(&self) -> Result<bool> {
        for node in &self.topology().nodes {
            match &node.data {
                cluster_config::Storage::Bind(dir) => {
                    match std::fs::metadata(self.bind_path(dir).join("PG_VERSION")) {
                        Ok(_) => return Ok(true),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(_) => return Ok(true),
                    }
                }
                cluster_config::Storage::Volume(v) => {
                    let out = self.runner.run_unchecked(
                        &self
                            .docker
                            .cmd()
                            .args(["volume", "inspect", "--format", "{{.Name}}"])
                            .arg(format!("{}_{v}", self.name()))
                            .read_only(),
                    )?;
                    if out.success {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Reads the secrets file. A missing, empty or partial file is completed
    /// with generated passwords (owner-only) while no data exists yet; once
    /// data exists, a missing password cannot be made up, and the error says
    /// what to do.
    pub fn secrets(&self) -> Result<Secrets> {
        use crate::secrets::{get, KEYS};
        let path = self.state_dir().join(SECRETS_FILE);
        let shown = project::display(&path);
        let text = crate::secrets::read(&path)
            .with_context(|| format!("reading {shown}"))?
            .unwrap_or_default();
        let missing: Vec<&str> = KEYS
            .iter()
            .copied()
            .filter(|k| get(&text, k).is_none())
            .collect();
        let text = if missing.is_empty() {
            text
        } else {
            if self.data_exists()? {
                bail!(
                    "{shown} lacks {} but the cluster's data already exists, and its passwords cannot be made up again. \
                     Restore {shown} from where you keep it, or start the cluster over with \
                     `cargo xtask down --purge -t {}` (this deletes its data) and set it up again.",
                    missing.join(" and "),
                    self.loaded.path
                );
            }
            if self.runner.dry_run() {
                say!(
                    "[dry-run] would generate {} in {shown} (owner-only)",
                    missing.join(", ")
                );
                return Ok(Secrets {
                    owner: Secret::new("dry-run"),
                    replication: Secret::new("dry-run"),
                });
            }
            let mut out = format!(
                "# Generated by cargo xtask for cluster {}; keep private (git-ignored, owner-only).\n",
                self.name()
            );
            for k in KEYS {
                let v = match get(&text, k) {
                    Some(v) => v,
                    None => generate_password()?,
                };
                out.push_str(&format!("{k}={v}\n"));
            }
            write_private(&path, &out)?;
            if !text.trim().is_empty() {
                say!("{shown}: generated the missing {}", missing.join(", "));
            }
            out
        };
        let secret = |k: &str| {
            get(&text, k)
                .map(Secret::new)
                .with_context(|| format!("{shown} has no {k}"))
        };
        Ok(Secrets {
            owner: secret(KEYS[0])?,
            replication: secret(KEYS[1])?,
        })
    }

    pub fn node(&self, name: &str) -> Result<&Node> {
        self.topology()
            .node(name)
            .with_context(|| format!("no node `{name}` in {}", self.loaded.path))
    }
}

/// Whole milliseconds, for reports.
pub fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// A SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// 32 random characters from an unambiguous alphabet (about 190 bits).
pub fn generate_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// Writes a file only its owner can read: mode 0600 on Unix, a protected
/// DACL for the current user alone on Windows (see owner_only.rs), set
/// before the first byte (see [`crate::fsx`]).
pub fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    crate::fsx::write(path, text.as_bytes(), crate::fsx::Access::Private)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_random_and_long() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn poll_times_out_with_the_last_error() {
        let mut n = 0;
        let err = poll::<()>("nothing", Duration::from_millis(300), || {
            n += 1;
            bail!("attempt {n}")
        })
        .unwrap_err();
        assert!(err.to_string().contains("waiting for nothing"), "{err}");
        assert!(err.to_string().contains("attempt"), "{err}");
        let mut calls = 0;
        let got = poll("the third call", Duration::from_secs(5), || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        })
        .unwrap();
        assert_eq!(got, 3);
        let started = Instant::now();
        let stopped = poll::<()>("x", Duration::from_secs(30), || {
            Err(Stop("gone".into()).into())
        });
        assert_eq!(stopped.unwrap_err().to_string(), "gone");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a Stop error ends the wait at once"
        );
    }
}
