//! Commands as data, and the one runner that executes them.
//!
//! Every external program the tool starts is described by a [`Cmd`]
//! (program, arguments, environment, standard input) and executed by a
//! [`Runner`]: [`Real`] runs it through xshell, [`DryRun`] only prints it,
//! [`Recording`] (tests) keeps it. Secret values (passwords) travel in the
//! environment or standard input, never on a command line, and every display
//! redacts them.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::PathBuf;
#[cfg(test)]
use std::sync::{Arc, Mutex};

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

/// One command, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    pub cwd: Option<PathBuf>,
    /// Text fed to standard input (SQL, for instance); may hold secrets.
    pub stdin: Option<Secret>,
    /// Whether the command changes something (dry runs skip only these).
    pub mutating: bool,
    /// Whether its output streams to the terminal (progress) rather than
    /// being captured.
    pub stream: bool,
    /// Killed after this long (captured output only).
    pub timeout: Option<std::time::Duration>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Cmd {
            program: program.into(),
            args: vec![],
            env: vec![],
            cwd: None,
            stdin: None,
            mutating: true,
            stream: false,
            timeout: None,
        }
    }

    /// Kills the command when it runs longer than `limit`.
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<String>) -> Self {
        self.env.push((k.to_string(), EnvValue::Plain(v.into())));
        self
    }

    pub fn secret_env(mut self, k: &str, v: &Secret) -> Self {
        self.env.push((k.to_string(), EnvValue::Secret(v.clone())));
        self
    }

    pub fn stdin(mut self, text: impl Into<String>) -> Self {
        self.stdin = Some(Secret::new(text));
        self
    }

    /// Marks a command that only reads: it runs even in a dry run.
    pub fn read_only(mut self) -> Self {
        self.mutating = false;
        self
    }

    pub fn streaming(mut self) -> Self {
        self.stream = true;
        self
    }
}

impl fmt::Display for Cmd {
    /// The command as a shell line, secrets redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            match v {
                EnvValue::Plain(p) => write!(f, "{k}={} ", shell_quote(p))?,
                EnvValue::Secret(_) => write!(f, "{k}=<redacted> ")?,
            }
        }
        let prog = self
            .program
            .file_name()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prog = prog.strip_suffix(".exe").unwrap_or(&prog).to_string();
        write!(f, "{}", shell_quote(&prog))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(a))?;
        }
        if self.stdin.is_some() {
            write!(f, " <<< <stdin redacted>")?;
        }
        Ok(())
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A change to a file or folder on the host, as data: executed by the
/// real runner (through [`crate::fsx`], never through a link), printed by
/// a dry run, kept by the recording runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// Written atomically; returns whether it changed.
    Write {
        path: PathBuf,
        contents: Vec<u8>,
        access: crate::fsx::Access,
    },
    /// A folder and its parents; private ones are the owner's alone (0700).
    CreateDir { path: PathBuf, private: bool },
    /// A file, if it exists.
    RemoveFile { path: PathBuf },
    /// A folder and everything in it (read-only files too), if it exists.
    RemoveAll { path: PathBuf },
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |p: &PathBuf| crate::project::display(p);
        match self {
            FileOp::Write { path, access, .. } => write!(
                f,
                "write {}{}",
                shown(path),
                if *access == crate::fsx::Access::Private {
                    " (owner-only)"
                } else {
                    ""
                }
            ),
            FileOp::CreateDir { path, private } => write!(
                f,
                "create folder {}{}",
                shown(path),
                if *private { " (owner-only)" } else { "" }
            ),
            FileOp::RemoveFile { path } => write!(f, "remove {}", shown(path)),
            FileOp::RemoveAll { path } => write!(f, "remove {} and all it holds", shown(path)),
        }
    }
}

impl FileOp {
    /// Carries the change out.
    fn execute(&self) -> Result<bool> {
        match self {
            FileOp::Write {
                path,
                contents,
                access,
            } => crate::fsx::write(path, contents, *access),
            FileOp::CreateDir {
                path,
                private: true,
            } => crate::fsx::create_private_dir(path).map(|_| true),
            FileOp::CreateDir {
                path,
                private: false,
            } => crate::fsx::create_dir(path).map(|_| true),
            FileOp::RemoveFile { path } => match std::fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
            },
            FileOp::RemoveAll { path } => {
                if std::fs::symlink_metadata(path).is_err() {
                    return Ok(false);
                }
                data_move::remove_all(path)
                    .with_context(|| format!("removing {}", path.display()))?;
                Ok(true)
            }
        }
    }
}

/// What a command printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

/// Executes commands.
/// `Sync`, so that independent steps (standbys cloned side by side) can
/// share one runner across threads.
pub trait Runner: Sync {
    /// Runs `cmd`; a non-zero exit is an error carrying its stderr.
    fn run(&self, cmd: &Cmd) -> Result<Output> {
        let out = self.run_unchecked(cmd)?;
        if !out.success {
            bail!("`{cmd}` failed: {}", out.stderr.trim());
        }
        Ok(out)
    }

    /// Runs `cmd` and returns its output whatever its exit status.
    fn run_unchecked(&self, cmd: &Cmd) -> Result<Output>;

    /// True when nothing is to be changed.
    fn dry_run(&self) -> bool {
        false
    }

    /// Carries out a change to a file or folder; returns whether anything
    /// changed.
    fn file(&self, op: &FileOp) -> Result<bool> {
        op.execute()
    }
}

/// Runs commands for real, through xshell (arguments are passed as-is, never
/// through a shell).
pub struct Real {
    pub verbose: bool,
}

impl Real {
    pub fn new(verbose: bool) -> Result<Self> {
        Ok(Real { verbose })
    }
}

impl Runner for Real {
    fn file(&self, op: &FileOp) -> Result<bool> {
        let changed = op.execute()?;
        if changed {
            crate::steps::done(op);
        }
        Ok(changed)
    }

    fn run_unchecked(&self, cmd: &Cmd) -> Result<Output> {
        if self.verbose {
            warn!("$ {cmd}");
        }
        // A shell context per command: its working folder is this
        // command's own, and commands may run from several threads.
        let sh = xshell::Shell::new().context("creating a shell context")?;
        if let Some(d) = &cmd.cwd {
            sh.change_dir(d);
        }
        let mut c = sh.cmd(&cmd.program).args(&cmd.args).quiet().ignore_status();
        let has_secret = cmd.stdin.is_some()
            || cmd
                .env
                .iter()
                .any(|(_, v)| matches!(v, EnvValue::Secret(_)));
        for (k, v) in &cmd.env {
            c = match v {
                EnvValue::Plain(p) => c.env(k, p),
                EnvValue::Secret(s) => c.env(k, s.expose()),
            };
        }
        if has_secret {
            c = c.secret();
        }
        if let Some(input) = &cmd.stdin {
            c = c.stdin(input.expose());
        }
        if cmd.stream {
            let status = c.run();
            return Ok(Output {
                success: status.is_ok(),
                stderr: status.err().map(|e| e.to_string()).unwrap_or_default(),
                ..Output::default()
            });
        }
        let started = std::time::Instant::now();
        if let Some(limit) = cmd.timeout {
            return bounded(c.into(), limit, cmd);
        }
        let out = c.output().with_context(|| format!("starting `{cmd}`"))?;
        if self.verbose {
            warn!(
                "  ({} ms, exit {})",
                started.elapsed().as_millis(),
                out.status.code().unwrap_or(-1)
            );
        }
        if cmd.mutating {
            crate::steps::done(cmd);
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            success: out.status.success(),
        })
    }
}

/// Runs a command with a deadline: killed (and said so) when it runs over.
fn bounded(
    mut command: std::process::Command,
    limit: std::time::Duration,
    cmd: &Cmd,
) -> Result<Output> {
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{cmd}`"))?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let mut o = Vec::new();
        if let Some(s) = out.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut o);
        }
        o
    });
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        if let Some(s) = err.as_mut() {
            let _ = std::io::Read::read_to_end(s, &mut e);
        }
        e
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let stdout = reader.join().unwrap_or_default();
    let mut stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if status.is_none() {
        stderr.push_str(&format!(
            "\nkilled after {}s (its time limit)",
            limit.as_secs()
        ));
    }
    Ok(Output {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
        success: status.is_some_and(|s| s.success()),
    })
}

/// The runner a subcommand gets: real, or a dry run that prints the plan.
/// `PGREPL_VERBOSE=1` echoes every command (redacted) before it runs.
pub fn for_flags(dry_run: bool) -> Result<Box<dyn Runner>> {
    let verbose = verbose()?;
    let real = Real::new(verbose)?;
    Ok(if dry_run {
        Box::new(DryRun { inner: real })
    } else {
        Box::new(real)
    })
}

/// `PGREPL_VERBOSE`: unset, or one of the usual words for true and false;
/// anything else is an error that says which words are understood.
pub fn verbose() -> Result<bool> {
    let Some(v) = std::env::var_os("PGREPL_VERBOSE") else {
        return Ok(false);
    };
    let v = v.to_string_lossy().trim().to_ascii_lowercase();
    match v.as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => bail!(
            "PGREPL_VERBOSE is `{}`: use 1, true, yes or on to echo every command, 0, false, no or off (or unset it) for quiet",
            cluster_config::names::shown(&v)
        ),
    }
}

/// Prints mutating commands instead of running them; read-only ones run
/// through the inner runner so the plan reflects the live state.
pub struct DryRun<R: Runner> {
    pub inner: R,
}

impl<R: Runner> Runner for DryRun<R> {
    fn run_unchecked(&self, cmd: &Cmd) -> Result<Output> {
        if cmd.mutating {
            say!("[dry-run] {cmd}");
            return Ok(Output {
                success: true,
                ..Output::default()
            });
        }
        self.inner.run_unchecked(cmd)
    }

    fn dry_run(&self) -> bool {
        true
    }

    fn file(&self, op: &FileOp) -> Result<bool> {
        // A file that would be written as it is already changes nothing:
        // the plan says only what would change.
        if let FileOp::Write { path, contents, .. } = op {
            let same = crate::fsx::read_own(path, contents.len() as u64 + 1)
                .ok()
                .flatten()
                .is_some_and(|t| t.as_bytes() == contents.as_slice());
            if same {
                return Ok(false);
            }
        }
        if let FileOp::CreateDir { path, .. } = op {
            if path.is_dir() {
                return Ok(false);
            }
        }
        say!("[dry-run] {op}");
        Ok(true)
    }
}

/// Keeps every command and answers from a script (tests).
#[cfg(test)]
#[derive(Clone, Default)]
pub struct Recording {
    pub seen: Arc<Mutex<Vec<Cmd>>>,
    /// Every change to a file or folder asked for (none is carried out).
    pub files: Arc<Mutex<Vec<FileOp>>>,
    /// Returned for a command whose display contains the key.
    pub answers: Arc<Mutex<Vec<(String, Output)>>>,
}

#[cfg(test)]
impl Recording {
    pub fn answer(&self, contains: &str, stdout: &str) {
        self.answers.lock().unwrap().push((
            contains.to_string(),
            Output {
                stdout: stdout.to_string(),
                success: true,
                ..Output::default()
            },
        ));
    }

    /// A command whose display contains `contains` fails.
    pub fn fail(&self, contains: &str) {
        self.answers.lock().unwrap().push((
            contains.to_string(),
            Output {
                success: false,
                ..Output::default()
            },
        ));
    }

    pub fn lines(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect()
    }
}

#[cfg(test)]
impl Runner for Recording {
    fn file(&self, op: &FileOp) -> Result<bool> {
        self.files.lock().unwrap().push(op.clone());
        Ok(true)
    }

    fn run_unchecked(&self, cmd: &Cmd) -> Result<Output> {
        self.seen.lock().unwrap().push(cmd.clone());
        let shown = cmd.to_string();
        let answers = self.answers.lock().unwrap();
        Ok(answers
            .iter()
            .find(|(k, _)| shown.contains(k.as_str()))
            .map(|(_, o)| o.clone())
            .unwrap_or(Output {
                success: true,
                ..Output::default()
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_redacts_secrets() {
        let pw = Secret::new("hunter2");
        let c = Cmd::new("/usr/bin/docker")
            .args([
                "exec",
                "-e",
                "PGPASSWORD",
                "node",
                "pg_basebackup",
                "-D",
                "/backup/x y",
            ])
            .secret_env("PGPASSWORD", &pw)
            .env("PLAIN", "v")
            .stdin("ALTER ROLE r PASSWORD 'hunter2'");
        let shown = c.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.starts_with("PGPASSWORD=<redacted> PLAIN=v docker exec"),
            "{shown}"
        );
        assert!(shown.contains("'/backup/x y'"), "{shown}");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn dry_run_runs_only_reads() {
        let rec = Recording::default();
        rec.answer("inspect", "ok");
        let dry = DryRun { inner: rec.clone() };
        dry.run(&Cmd::new("docker").arg("rm")).unwrap();
        let out = dry
            .run(&Cmd::new("docker").arg("inspect").read_only())
            .unwrap();
        assert_eq!(out.stdout, "ok");
        assert_eq!(rec.lines(), ["docker inspect"]);
    }
}
