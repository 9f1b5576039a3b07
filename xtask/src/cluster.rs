//! A running cluster as the operations see it: its validated topology, its
//! Compose project, the image its nodes run, SQL on its nodes (through the
//! transports of [`crate::pg`]: a direct connection first, `psql` in the
//! container when that cannot reach the node), its secrets, and waits that
//! end on its interrupt token. Its fields are private; [`Cluster::open`]
//! finds Docker, [`Cluster::with`] takes any runner and transports, so a
//! test builds one over the recording runner.

use crate::docker::Docker;
use crate::pg::{client::Connections, psql::Psql, Transport};
use crate::project;
use crate::runner::{Cmd, Runner};
use crate::secrets::{generate_password, Secrets};
use crate::wait::{Interrupt, Stop};
use anyhow::{bail, Context, Result};
use cluster_config::compose::{SECRETS_FILE, STATE_DIR};
use cluster_config::{Loaded, Node, Topology};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Cluster<'r> {
    loaded: Loaded,
    docker: Docker,
    runner: &'r dyn Runner,
    /// The cluster's Compose file (see [`project::compose_location`]).
    compose_file: PathBuf,
    /// The state folder as the Compose file refers to it.
    state_ref: String,
    /// The image the nodes' containers run, when it is not the topology's
    /// (the Patroni engine's): one-off containers use it too.
    node_image: Option<String>,
    /// The image the topology's nodes run, resolved on first use.
    image: std::sync::OnceLock<crate::pg_image::Resolved>,
    /// Ways to run SQL, tried in order until one reaches the node.
    transports: Vec<Box<dyn Transport + 'r>>,
    interrupt: Interrupt,
}

impl<'r> Cluster<'r> {
    /// Loads and validates the topology, then finds Docker: an invalid
    /// topology is refused before the first docker call.
    pub fn open(topology: &Path, runner: &'r dyn Runner) -> Result<Self> {
        let loaded = project::load_valid(topology)?;
        Self::connect(topology, loaded, runner)
    }

    /// A validated topology with Docker found.
    pub fn connect(topology: &Path, loaded: Loaded, runner: &'r dyn Runner) -> Result<Self> {
        let docker = Docker::detect(runner)?;
        let (compose_file, state_ref) = project::compose_location(topology, &loaded);
        Ok(Self::with(
            loaded,
            docker,
            runner,
            compose_file,
            state_ref,
            None,
        ))
    }

    /// A cluster over any runner. `transports`: the ways to run SQL, tried
    /// in order; `None` gives the tool's own (direct connections, then the
    /// container's `psql`).
    pub fn with(
        loaded: Loaded,
        docker: Docker,
        runner: &'r dyn Runner,
        compose_file: PathBuf,
        state_ref: String,
        transports: Option<Vec<Box<dyn Transport + 'r>>>,
    ) -> Self {
        let t = &loaded.topology;
        let state_dir = project::root().join(STATE_DIR).join(t.name());
        let transports = transports.unwrap_or_else(|| {
            vec![
                Box::new(Connections::new(
                    t,
                    state_dir.join(SECRETS_FILE),
                    runner.dry_run(),
                )) as Box<dyn Transport + 'r>,
                Box::new(Psql {
                    docker: docker.clone(),
                    runner,
                    cluster: t.name().to_string(),
                    owner: t.database.owner.get_ref().to_string(),
                    database: t.database.name.get_ref().to_string(),
                }),
            ]
        });
        Cluster {
            loaded,
            docker,
            runner,
            compose_file,
            state_ref,
            node_image: None,
            image: std::sync::OnceLock::new(),
            transports,
            interrupt: Interrupt::default(),
        }
    }

    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// The topology file, as messages name it.
    pub fn path(&self) -> &str {
        &self.loaded.path
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn runner(&self) -> &'r dyn Runner {
        self.runner
    }

    pub fn topology(&self) -> &Topology {
        &self.loaded.topology
    }

    pub fn name(&self) -> &str {
        self.topology().name()
    }

    pub fn compose_file(&self) -> &Path {
        &self.compose_file
    }

    pub fn state_ref(&self) -> &str {
        &self.state_ref
    }

    /// The token every wait on this cluster ends on.
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// [`crate::wait::poll`] on this cluster's interrupt token.
    pub fn poll<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        crate::wait::poll(&self.interrupt, what, timeout, check)
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
    /// image of a buildable major when absent, pulling only on request).
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

    /// The same cluster, its image already known (tests).
    #[cfg(test)]
    pub fn with_image(self, image: crate::pg_image::Resolved) -> Self {
        let _ = self.image.set(image);
        self
    }

    /// The same cluster, its Compose commands going to another file (the
    /// Patroni engine's).
    pub fn with_compose_file(mut self, file: PathBuf, image: &str) -> Self {
        self.compose_file = file;
        self.node_image = Some(image.to_string());
        self
    }

    /// The container of a node, if it exists (running or not).
    pub fn container(&self, node: &str) -> Result<Option<String>> {
        crate::pg::psql::container(&self.docker, self.runner, self.name(), node)
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

    /// Runs SQL on a node as the database owner; returns rows as
    /// `|`-separated lines.
    pub fn sql(&self, node: &str, sql: &str) -> Result<String> {
        self.run_sql(node, None, sql, false)
    }

    /// Like [`Self::sql`], for statements that change something.
    pub fn sql_mut(&self, node: &str, sql: &str) -> Result<String> {
        self.run_sql(node, None, sql, true)
    }

    /// SQL in another database than the topology's (one that may not exist
    /// yet).
    pub fn sql_in(&self, node: &str, database: &str, sql: &str) -> Result<String> {
        self.run_sql(node, Some(database), sql, true)
    }

    fn run_sql(&self, node: &str, db: Option<&str>, sql: &str, mutating: bool) -> Result<String> {
        for t in &self.transports {
            if let Some(answer) = t.run(node, db, sql, mutating)? {
                return Ok(answer);
            }
        }
        bail!("{node} cannot be reached to run SQL")
    }

    /// Runs `sql`, which commits, on `node` and returns how long it took;
    /// fails when it does not return within `bound`.
    pub fn commit_within(&self, node: &str, sql: &str, bound: Duration) -> Result<Duration> {
        for t in &self.transports {
            if let Some(d) = t.commit_within(node, sql, bound)? {
                return Ok(d);
            }
        }
        bail!("{node} cannot be reached to commit")
    }

    /// A node's answer, or `None` when it cannot be reached or fails: a
    /// direct connection answers in milliseconds; only a node it cannot
    /// reach costs the container lookups.
    pub fn probe(&self, node: &str, sql: &str) -> Result<Option<String>> {
        let mut ways = self.transports.iter();
        if let Some(first) = ways.next() {
            match first.run(node, None, sql, false) {
                Ok(Some(a)) => return Ok(Some(a)),
                Ok(None) => {}
                Err(_) => return Ok(None),
            }
        }
        if !self.is_running(node)? {
            return Ok(None);
        }
        for t in ways {
            match t.run(node, None, sql, false) {
                Ok(Some(a)) => return Ok(Some(a)),
                Ok(None) => {}
                Err(_) => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Whether a node's real server accepts SQL now. On a first start the
    /// image's init runs a temporary server on the local socket only
    /// (`listen_addresses = ''`), which answers SQL through the `psql`
    /// transport and then shuts down: it is not ready. The tool owns
    /// `listen_addresses` (`'*'`), so the real server is the one listening.
    pub fn ready(&self, node: &str) -> bool {
        self.sql(node, "SELECT current_setting('listen_addresses') <> ''")
            .map(|s| s == "t")
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
        self.poll(&format!("{node} to accept connections"), timeout, || {
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
        if missing.is_empty() {
            return Secrets::from_text(&text, &shown);
        }
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
            return Ok(Secrets::dry_run());
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
        self.runner.file(&crate::runner::FileOp::Write {
            path: path.clone(),
            contents: out.clone().into_bytes(),
            access: crate::fsx::Access::Private,
        })?;
        if !text.trim().is_empty() {
            say!("{shown}: generated the missing {}", missing.join(", "));
        }
        Secrets::from_text(&out, &shown)
    }

    pub fn node(&self, name: &str) -> Result<&Node> {
        self.topology()
            .node(name)
            .with_context(|| format!("no node `{name}` in {}", self.loaded.path))
    }
}
