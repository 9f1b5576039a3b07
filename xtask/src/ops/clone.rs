//! Cloning standbys: `pg_basebackup` straight into an empty data folder
//! (setup), and the verified, resumable re-clone through a node's backup
//! folder (basebackup, and the fallback of every rejoin).

use super::live as status;
use crate::cluster::Cluster;
use crate::project;
use crate::runner::FileOp;
use anyhow::{bail, Context, Result};
use cluster_config::live::Lsn;
use cluster_config::render::{self, BACKUP_DIR, PGDATA};
use cluster_config::Storage;
use data_move as datamove;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const CLONE_MARKER: &str = ".pgrepl-clone-in-progress";

/// What the clone step does inside one container, so that a standby costs
/// one container start, not seven. Fixed text: every value (paths, host,
/// user) arrives as a positional argument, the password in PGPASSWORD, the
/// standby settings on standard input.
///
/// A data folder that holds a database is never touched unless the
/// in-progress marker says it is the remains of an interrupted clone.
const CLONE_SCRIPT: &str = r#"set -eu
marker="$1"; data="$2"; shift 2
if [ -s "$data/PG_VERSION" ] && [ ! -e "$marker" ]; then
  if [ -e "$data/standby.signal" ]; then echo "pgrepl:standby-present"; exit 0; fi
  echo "pgrepl:not-a-standby"; exit 3
fi
if [ -e "$marker" ]; then
  echo "pgrepl:cleared-interrupted"
  find "$data" -mindepth 1 -delete
fi
touch "$marker"
pg_basebackup -D "$data" "$@"
cat >> "$data/postgresql.auto.conf"
touch "$data/standby.signal"
rm -f "$marker"
echo "pgrepl:cloned"
"#;

/// Clones a standby from the primary into its (empty) data folder, in one
/// one-off container; its own container must not be running.
pub fn clone_standby(
    c: &Cluster,
    node: &str,
    primary: &str,
    password: &crate::runner::Secret,
) -> Result<()> {
    let t = c.topology();
    let settings = render::standby_settings(t, c.node(node)?, primary, Some(password.expose()));
    let started = Instant::now();
    let out = c.runner().run_unchecked(
        &super::container::one_off_as(c, node, "sh", None, &["PGPASSWORD"])?
            .args(["-c", CLONE_SCRIPT, "pgrepl-clone"])
            .arg(format!("{BACKUP_DIR}/{CLONE_MARKER}"))
            .arg(PGDATA)
            .args(["-h", primary, "-p", "5432", "-U"])
            .arg(t.replication.user.get_ref().as_str())
            .args(["-X", "stream", "-c", "fast", "--no-password"])
            .secret_env("PGPASSWORD", password)
            .stdin(settings),
    )?;
    if c.runner().dry_run() {
        return Ok(());
    }
    let said = |m: &str| out.stdout.lines().any(|l| l.trim() == m);
    if said("pgrepl:not-a-standby") {
        bail!(
            "{node}: its data folder holds a database that is not a standby; nothing was changed. \
             Re-clone it with `cargo xtask basebackup --node {node}` (the old data is kept until the new copy is verified)."
        );
    }
    if !out.success {
        bail!(
            "cloning {node} from {primary} failed: {}",
            out.stderr.trim()
        );
    }
    if said("pgrepl:standby-present") {
        say!("{node}: data folder holds a standby; starting it");
    } else {
        if said("pgrepl:cleared-interrupted") {
            say!("{node}: cleared an interrupted clone");
        }
        say!(
            "{node}: cloned from {primary} with pg_basebackup in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The re-clone's copy in one container: pg_basebackup into the backup
/// folder, pg_verifybackup against its manifest, then the standby settings
/// (standard input) and standby.signal. Fixed text; the target folder and
/// pg_basebackup's options arrive as arguments, the password in PGPASSWORD.
const BACKUP_SCRIPT: &str = r#"set -eu
target="$1"; shift
pg_basebackup -D "$target" "$@"
pg_verifybackup -q "$target"
cat >> "$target/postgresql.auto.conf"
touch "$target/standby.signal"
"#;

/// Name of the copy inside a backup folder, and of its label beside it.
pub const BASE: &str = "base";

pub const LABEL: &str = "base.label";

/// What a verified backup is of; written beside it once it is complete.
#[derive(Debug, PartialEq, Eq)]
pub struct Label {
    pub node: String,
    pub system_identifier: String,
}

impl Label {
    pub fn render(&self) -> String {
        format!(
            "node={}\nsystem_identifier={}\nverified=true\n",
            self.node, self.system_identifier
        )
    }

    pub fn parse(text: &str) -> Option<Label> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        (get("verified").as_deref() == Some("true")).then_some(())?;
        Some(Label {
            node: get("node")?,
            system_identifier: get("system_identifier")?,
        })
    }
}

/// The database system identifier of a running node: what a backup must be of.
pub fn system_identifier(c: &Cluster, node: &str) -> Result<String> {
    c.sql(node, "SELECT system_identifier FROM pg_control_system()")
}

/// Re-clones `node` from `primary`, the fallback when a standby cannot
/// follow the primary or be rewound.
pub fn reclone_from(c: &Cluster, node: &str, primary: &str, timeout: Duration) -> Result<()> {
    let sysid = system_identifier(c, primary)?;
    reclone(c, node, primary, &sysid, timeout)
}

/// Refuses a backup made for another node, or of another cluster.
pub fn check_label(label: &Label, node: &str, system_identifier: &str) -> Result<()> {
    if label.node != node {
        bail!(
            "the backup folder of {node} holds a backup labelled for {}: refusing to put one node's backup into another's data folder",
            label.node
        );
    }
    if label.system_identifier != system_identifier {
        bail!(
            "the backup in {node}'s folder is of database system {}, but the primary is {system_identifier}: refusing it",
            label.system_identifier
        );
    }
    Ok(())
}

/// A node's two mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    Data,
    Backup,
}

impl std::fmt::Display for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mount::Data => "data",
            Mount::Backup => "backup",
        })
    }
}

/// A node's bind-mounted folder on the host; a named volume is refused (the
/// data move works on host folders).
pub fn host_dir(c: &Cluster, node: &str, mount: Mount) -> Result<PathBuf> {
    let n = c.node(node)?;
    let which = mount;
    let st = match mount {
        Mount::Data => &n.data,
        Mount::Backup => &n.backup,
    };
    match st {
        Storage::Bind(dir) => Ok(c.bind_path(dir)),
        Storage::Volume(v) => bail!(
            "{node}'s {which} is the named volume `{v}`: basebackup moves data folders on the host and needs bind-mounted folders \
             (`{which} = {{ bind = \"...\" }}`). A volume-backed standby is cloned by setup-async."
        ),
    }
}

/// Re-clones `node` from `primary`: a verified backup into its backup
/// folder (or the one a killed run left, when its label says it is this
/// node's), the node stopped, its data folder replaced by the backup (old
/// data set aside, never deleted first), started, caught up.
pub fn reclone(
    c: &Cluster,
    node: &str,
    primary: &str,
    sysid: &str,
    timeout: Duration,
) -> Result<()> {
    let r = c.runner();
    let data = host_dir(c, node, Mount::Data)?;
    let backup = host_dir(c, node, Mount::Backup)?;
    let (base, label_path) = (backup.join(BASE), backup.join(LABEL));
    std::fs::read_dir(&data).with_context(|| {
        format!(
            "{} cannot be read by this user: its files belong to the container's user. Run as the user who set the cluster up \
             (the containers run as that user), or as root.",
            data.display()
        )
    })?;
    let started = Instant::now();
    let label = std::fs::read_to_string(&label_path)
        .ok()
        .and_then(|t| Label::parse(&t));
    match &label {
        Some(l) => {
            check_label(l, node, sysid)?;
            say!("{node}: a verified backup is already in its backup folder; resuming");
        }
        None => take_backup(c, node, primary, sysid, &base, &label_path, started)?,
    }
    let id = super::container::id_of(c, node)?;
    r.run(&c.docker().cmd().args(["stop", "-t", "60", &id]))?;
    replace_data(c, node, &data, &base, &label_path, label.is_some())?;
    r.run(&c.docker().cmd().args(["start", &id]))?;
    if r.dry_run() {
        return Ok(());
    }
    // The old data, set aside by the move, goes while the server starts.
    let set_aside = datamove::staging_paths(&data).1;
    let removal = std::thread::spawn(move || datamove::remove_all(&set_aside));
    c.wait_ready(node, timeout)?;
    let target_lsn = c.sql(primary, "SELECT pg_current_wal_lsn()")?;
    c.poll(
        &format!("{node} to stream and replay up to {target_lsn}"),
        timeout,
        || {
            let lsn: Lsn = target_lsn.parse().map_err(anyhow::Error::msg)?;
            Ok(status::caught_up(c, primary, node, lsn)?.then_some(()))
        },
    )?;
    removal
        .join()
        .map_err(|_| anyhow::anyhow!("removing the old data panicked"))?
        .context("removing the old data folder, set aside by the move")?;
    say!(
        "{node}: streaming from {primary} and caught up ({:.1}s in all)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A verified backup of `primary` in the node's backup folder, labelled for
/// it; an incomplete one a killed run left is removed first.
fn take_backup(
    c: &Cluster,
    node: &str,
    primary: &str,
    sysid: &str,
    base: &Path,
    label_path: &Path,
    started: Instant,
) -> Result<()> {
    let r = c.runner();
    if base.exists() {
        say!(
            "{node}: removing an incomplete backup from {}",
            project::display(base)
        );
        r.file(&FileOp::RemoveAll {
            path: base.to_path_buf(),
        })?;
    }
    crate::ops::container::own_mounts(c, node)?;
    let target = format!("{BACKUP_DIR}/{BASE}");
    say!("{node}: pg_basebackup from {primary} into its backup folder");
    let password = c.secrets()?.replication;
    let settings = render::standby_settings(
        c.topology(),
        c.node(node)?,
        primary,
        Some(password.expose()),
    );
    // One container: the copy (progress shown), its verification
    // against the backup manifest, the standby settings (stdin).
    r.run(
        &super::container::one_off_as(c, node, "sh", None, &["PGPASSWORD"])?
            .args([
                "-c",
                BACKUP_SCRIPT,
                "pgrepl-backup",
                &target,
                "-h",
                primary,
                "-p",
                "5432",
                "-U",
            ])
            .arg(c.topology().replication.user.get_ref().as_str())
            .args(["-X", "stream", "-c", "fast", "--no-password", "-P"])
            .secret_env("PGPASSWORD", &password)
            .stdin(settings)
            .streaming(),
    )
    .context("pg_basebackup or pg_verifybackup failed; the data folder is untouched")?;
    let l = Label {
        node: node.to_string(),
        system_identifier: sysid.to_string(),
    };
    r.file(&FileOp::Write {
        path: label_path.to_path_buf(),
        contents: l.render().into_bytes(),
        access: crate::fsx::Access::Private,
    })?;
    say!(
        "{node}: backup verified ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The stopped node's data folder replaced by the verified backup: the
/// data move's crash states make a killed run finish on the next one.
fn replace_data(
    c: &Cluster,
    node: &str,
    data: &Path,
    base: &Path,
    label_path: &Path,
    resumed: bool,
) -> Result<()> {
    let r = c.runner();
    if r.dry_run() {
        say!(
            "[dry-run] replace {} with {}",
            project::display(data),
            project::display(base)
        );
    } else if resumed && !base.exists() && !datamove::staging_paths(data).0.exists() {
        // A run killed after the verified backup was renamed into place
        // and before its label went: the move is done.
        say!("{node}: the verified backup was already moved into its data folder");
        r.file(&FileOp::RemoveFile {
            path: label_path.to_path_buf(),
        })?;
    } else {
        let stats = move_with_progress(base, data)?;
        say!(
            "{node}: data folder replaced: {} files, {:.1} MiB in {:.1}s ({:.0} MiB/s)",
            stats.files,
            stats.bytes as f64 / 1048576.0,
            stats.seconds,
            stats.bytes as f64 / 1048576.0 / stats.seconds.max(1e-6)
        );
        // The backup served its purpose; a stale one must never be reused.
        r.file(&FileOp::RemoveFile {
            path: label_path.to_path_buf(),
        })?;
        r.file(&FileOp::RemoveAll {
            path: base.to_path_buf(),
        })?;
    }
    Ok(())
}

/// Runs the data move with a progress bar (bytes and files) on a terminal.
pub fn move_with_progress(src: &Path, dest: &Path) -> Result<datamove::Stats> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bar:40} {bytes}/{total_bytes} {msg} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let stats = datamove::replace_dir_consuming(
        src,
        dest,
        &mut |files, total_files, bytes, total_bytes| {
            bar.set_length(total_bytes);
            bar.set_position(bytes);
            bar.set_message(format!("{files}/{total_files} files"));
        },
    );
    bar.finish_and_clear();
    stats
}

/// Re-clones standbys (`nodes`; none named: every standby) from the live
/// primary, one after another; the primary's data is never replaced.
pub fn reclone_standbys(
    c: &Cluster,
    nodes: &[cluster_config::names::NodeName],
    timeout: Duration,
) -> Result<()> {
    use crate::ops::live as status;
    crate::ops::journal::refuse_if_unfinished(c)?;
    let primary = status::find_primary(c)?.context(
        "no writable primary is running; start the cluster (setup-sync / setup-async) first",
    )?;
    let names: Vec<String> = if nodes.is_empty() {
        c.topology()
            .nodes
            .iter()
            .map(|n| n.name().to_string())
            .filter(|n| *n != primary)
            .collect()
    } else {
        nodes.iter().map(|n| n.to_string()).collect()
    };
    for n in &names {
        c.node(n)?;
        if *n == primary {
            bail!("{n} is the primary: its data is never replaced. Re-clone standbys only.");
        }
    }
    let sysid = system_identifier(c, &primary)?;
    for n in &names {
        reclone(c, n, &primary, &sysid, timeout).with_context(|| format!("re-cloning {n}"))?;
    }
    if c.runner().dry_run() {
        say!("dry run: nothing changed");
    } else {
        say_raw!("\n{}", status::table(&status::collect(c)?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_round_trips_and_guards_the_wrong_node() {
        let l = Label {
            node: "slave2-db".into(),
            system_identifier: "7312".into(),
        };
        let parsed = Label::parse(&l.render()).unwrap();
        assert_eq!(parsed, l);
        assert!(check_label(&parsed, "slave2-db", "7312").is_ok());
        let err = check_label(&parsed, "slave1-db", "7312")
            .unwrap_err()
            .to_string();
        assert!(err.contains("labelled for slave2-db"), "{err}");
        assert!(check_label(&parsed, "slave2-db", "9999").is_err());
        assert_eq!(
            Label::parse("node=x\nsystem_identifier=1\n"),
            None,
            "unverified labels are not trusted"
        );
    }
}
