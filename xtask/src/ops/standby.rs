//! Standbys and their upstream: promoting a node, pointing a standby at a
//! new primary, slots, and bringing a failed node back as a standby
//! (pg_rewind, re-cloned when that fails), started only with
//! `standby.signal` in place.

use super::container;
use super::container::one_off_as;
use super::journal;
use super::live::{is_streaming, timeline};
use crate::cluster::Cluster;
use crate::pg::sql::literal;
use crate::secrets::Secrets;
use anyhow::{bail, Result};
use cluster_config::live::{DataFolder, RejoinPath};
use cluster_config::render::{self, PGDATA};
use std::time::Duration;

/// How a re-pointed standby came to follow its new upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repointed {
    /// It streams from the new upstream on its timeline.
    Following,
    /// It did not (its WAL went past the new timeline's fork): re-cloned.
    Recloned,
}

/// Points a running standby at a new upstream (primary_conninfo is
/// reloadable); re-clones it if it does not follow within 30 s.
pub fn repoint(
    c: &Cluster,
    node: &str,
    upstream: &str,
    secrets: &Secrets,
    timeout: Duration,
) -> Result<Repointed> {
    let t = c.topology();
    let n = c.node(node)?;
    let conninfo = render::primary_conninfo(t, n, upstream, Some(secrets.replication.expose()));
    let mut sql = format!(
        "ALTER SYSTEM SET primary_conninfo = {};\n",
        literal(&conninfo)
    );
    if t.replication.slots {
        c.sql_mut(upstream, &crate::pg::sql::create_slot(&n.slot_name()))?;
        sql.push_str(&format!(
            "ALTER SYSTEM SET primary_slot_name = {};\n",
            literal(&n.slot_name())
        ));
    }
    sql.push_str("SELECT pg_reload_conf();\n");
    c.sql_mut(node, &sql)?;
    if c.runner().dry_run() {
        // Nothing was changed: there is nothing to wait for.
        return Ok(Repointed::Following);
    }
    let tli = timeline(c, upstream)?.to_string();
    let streaming = c.poll(
        &format!("{node} to stream from {upstream} on timeline {tli}"),
        Duration::from_secs(30).min(timeout),
        || {
            let received = super::live::streaming_timeline(c, node)?;
            Ok((is_streaming(c, upstream, node)?
                && received.map(|t| t.to_string()) == Some(tli.clone()))
            .then_some(()))
        },
    );
    match streaming {
        Ok(()) => Ok(Repointed::Following),
        Err(e) if e.downcast_ref::<crate::wait::Stop>().is_some() => Err(e),
        Err(e) => {
            say!("{node} does not follow {upstream} ({e:#}); re-cloning it");
            crate::ops::clone::reclone_from(c, node, upstream, timeout)?;
            Ok(Repointed::Recloned)
        }
    }
}

/// Brings a failed node back as a standby of `primary`: the old primary is
/// rewound with pg_rewind (it may hold WAL the new timeline does not), a
/// failed standby is re-pointed; either is re-cloned if that fails. It is
/// started only once standby.signal is in place, so it can never come back
/// as a second writable primary.
pub fn rejoin(
    c: &Cluster,
    node: &str,
    primary: &str,
    secrets: &Secrets,
    timeout: Duration,
) -> Result<Rejoined> {
    c.node(node)?;
    if primary == node {
        bail!("{node} is the primary; only a standby or a failed node can rejoin");
    }
    if let journal::Resume::Interrupted(j) = journal::check(c, journal::Op::Rejoin)? {
        if j.to != node {
            bail!(
                "the rejoin of {} was interrupted; finish it first: {}",
                j.to,
                j.command(c.path())
            );
        }
    }
    let j = journal::Journal {
        op: journal::Op::Rejoin,
        from: primary.to_string(),
        to: node.to_string(),
        finished: false,
    };
    journal::begin(c, &j)?;
    let how = rejoin_steps(c, node, primary, secrets, timeout)?;
    journal::end(c, &j)?;
    Ok(how)
}

/// [`rejoin`] between its journal's beginning and end: what the data
/// folder allows, the node stopped, the rejoin script (rewind or not), then
/// started and checked; a re-clone when a step says it must.
fn rejoin_steps(
    c: &Cluster,
    node: &str,
    primary: &str,
    secrets: &Secrets,
    timeout: Duration,
) -> Result<Rejoined> {
    let r = c.runner();
    let id = container::id_of(c, node)?;
    // What the data folder allows is read before anything changes, so a
    // dry run says what the real run would decide.
    let folder = probe_data_folder(c, node)?;
    let path = folder.as_ref().map(DataFolder::rejoin_path);
    match &path {
        Some(RejoinPath::Reclone(why)) => {
            say!("{node}: {why}: it will be re-cloned from {primary} (a full copy)");
            if r.dry_run() {
                crate::ops::clone::reclone_from(c, node, primary, timeout)?;
                return Ok(Rejoined::Planned(Box::new(Rejoined::Recloned(Reclone::RewindImpossible))));
            }
        }
        Some(RejoinPath::Rewind) => say!("{node}: its history may have diverged from {primary}'s: pg_rewind, then it follows {primary}"),
        Some(RejoinPath::Repoint) => say!("{node}: a standby: its settings are pointed at {primary}, then it is started"),
        None => say!("{node}: its control file could not be read: pg_rewind will be tried, a re-clone if it fails"),
    }
    if c.is_running(node)? {
        // The server's own fast shutdown (the container's stop signal),
        // with the grace period Compose gives it.
        r.run(&c.docker().cmd().args(["stop", "-t", "60", &id]))?;
    }
    if let Some(RejoinPath::Reclone(_)) = path {
        crate::ops::clone::reclone_from(c, node, primary, timeout)?;
        return Ok(Rejoined::Recloned(Reclone::RewindImpossible));
    }
    let how = match run_rejoin_script(c, node, primary, secrets)? {
        Some(how) => how,
        None if r.dry_run() => Rejoined::Planned(Box::new(match path {
            Some(RejoinPath::Repoint) => Rejoined::Repointed,
            _ => Rejoined::Rewound { needed: true },
        })),
        None => {
            crate::ops::clone::reclone_from(c, node, primary, timeout)?;
            return Ok(Rejoined::Recloned(Reclone::RewindFailed));
        }
    };
    r.run(&c.docker().cmd().args(["start", &id]))?;
    if r.dry_run() {
        // Nothing was started: there is nothing to wait for.
        return Ok(how);
    }
    let followed = c.wait_ready(node, timeout).and_then(|_| {
        c.poll(
            &format!("{node} to stream from {primary}"),
            Duration::from_secs(60).min(timeout),
            || Ok(is_streaming(c, primary, node)?.then_some(())),
        )
    });
    if let Err(e) = followed {
        say!("{node}: last log lines:\n{}", c.last_logs(node, 12)?);
        say!("{node}: does not follow {primary} ({e:#}); re-cloning");
        crate::ops::clone::reclone_from(c, node, primary, timeout)?;
        return Ok(Rejoined::Recloned(Reclone::DidNotFollow(Box::new(how))));
    }
    if c.sql(node, "SELECT pg_is_in_recovery()")? != "t" {
        bail!("{node} came back writable; stop it at once");
    }
    ensure_read_only(c, node)?;
    Ok(how)
}

/// The rejoin script on the stopped node's data folder (pg_rewind unless
/// it is a standby or already followed the primary's timeline), with the
/// node's standby settings. `None`: pg_rewind failed (the caller re-clones)
/// or, in a dry run, nothing ran.
fn run_rejoin_script(
    c: &Cluster,
    node: &str,
    primary: &str,
    secrets: &Secrets,
) -> Result<Option<Rejoined>> {
    let r = c.runner();
    let t = c.topology();
    let n = c.node(node)?;
    if t.replication.slots {
        c.sql_mut(primary, &crate::pg::sql::create_slot(&n.slot_name()))?;
    }
    // pg_rewind reads the source's timeline from its control file, which
    // a freshly promoted server updates only at its next checkpoint.
    c.sql_mut(primary, "CHECKPOINT")?;
    let source_tli = if r.dry_run() {
        "<timeline>".to_string()
    } else {
        timeline(c, primary)?.to_string()
    };
    let source = format!(
        "host={primary} port=5432 user={} dbname={}",
        render::conninfo_value(t.database.owner.get_ref().as_str()),
        render::conninfo_value(t.database.name.get_ref().as_str())
    );
    let settings = render::standby_settings(t, n, primary, Some(secrets.replication.expose()));
    let out = r.run_unchecked(
        &one_off_as(c, node, "sh", None, &["PGPASSWORD"])?
            .args([
                "-c",
                REJOIN_SCRIPT,
                "pgrepl-rejoin",
                PGDATA,
                container::FENCE_MARKER,
                &source_tli,
            ])
            // Its crash-recovery step must run with the node's real settings
            // (wal_log_hints), not the data folder's default postgresql.conf.
            .arg(format!(
                "--config-file={}/postgresql.conf",
                render::CONF_DIR
            ))
            .arg(format!("--source-server={source}"))
            .secret_env("PGPASSWORD", &secrets.owner)
            .stdin(settings),
    )?;
    Ok(
        match out.stdout.lines().find_map(|l| Marker::parse(l.trim())) {
            Some(Marker::RewindFailed) => {
                say!(
                    "{node}: pg_rewind failed ({}); re-cloning",
                    out.stdout
                        .lines()
                        .filter(|l| !l.starts_with("pgrepl:"))
                        .collect::<Vec<_>>()
                        .join(" ")
                        .trim()
                );
                None
            }
            Some(Marker::Standby) => Some(Rejoined::Repointed),
            Some(Marker::Followed) => {
                say!("{node}: restarted read-only, it had already followed {primary}'s timeline {source_tli} past the fork: nothing to rewind");
                Some(Rejoined::Followed)
            }
            Some(Marker::Rewound) => Some(Rejoined::Rewound {
                needed: !out.stdout.contains("no rewind required"),
            }),
            None if r.dry_run() => None,
            None => bail!(
                "{node}: preparing the data folder to rejoin failed: {}{}",
                out.stdout.trim(),
                out.stderr.trim()
            ),
        },
    )
}

/// How a node came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejoined {
    /// A standby that lost its upstream: its settings pointed at the
    /// primary.
    Repointed,
    /// A diverged node rewound with pg_rewind (`needed`: it had diverged).
    Rewound { needed: bool },
    /// A fenced node that, restarted read-only, had already followed the
    /// primary's timeline past the fork: nothing to rewind.
    Followed,
    /// Re-cloned from the primary, and why.
    Recloned(Reclone),
    /// A dry run: what the real run would do.
    Planned(Box<Rejoined>),
}

/// Why a rejoin needed a full re-clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reclone {
    /// Neither wal_log_hints nor data checksums in its control file.
    RewindImpossible,
    RewindFailed,
    /// Rejoined, it still did not follow the primary.
    DidNotFollow(Box<Rejoined>),
}

impl Rejoined {
    /// Whether the node was copied in full from the primary.
    pub fn recloned(&self) -> bool {
        matches!(self, Rejoined::Recloned(_))
    }
}

impl std::fmt::Display for Rejoined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejoined::Repointed => f.write_str("re-pointed"),
            Rejoined::Rewound { needed: true } => f.write_str("pg_rewind"),
            Rejoined::Rewound { needed: false } => f.write_str("pg_rewind (no rewind required)"),
            Rejoined::Followed => f.write_str("already on the new timeline (no rewind required)"),
            Rejoined::Recloned(Reclone::RewindImpossible) => {
                f.write_str("re-cloned (pg_rewind impossible)")
            }
            Rejoined::Recloned(Reclone::RewindFailed) => {
                f.write_str("re-cloned (pg_rewind failed)")
            }
            Rejoined::Recloned(Reclone::DidNotFollow(how)) => {
                write!(f, "re-cloned ({how} was not enough)")
            }
            Rejoined::Planned(how) => write!(f, "planned: {how}"),
        }
    }
}

/// What the rejoin script says it did: one line of its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    RewindFailed,
    Standby,
    Rewound,
    Followed,
}

impl Marker {
    fn parse(line: &str) -> Option<Marker> {
        Some(match line {
            "pgrepl:rewind-failed" => Marker::RewindFailed,
            "pgrepl:standby" => Marker::Standby,
            "pgrepl:rewind" => Marker::Rewound,
            "pgrepl:followed" => Marker::Followed,
            _ => return None,
        })
    }
}

/// Prepares a stopped node's data folder to follow a new primary, in one
/// container: a fenced former primary (or any node without
/// `standby.signal`) is rewound with pg_rewind; then the standby settings
/// (standard input) and `standby.signal` are put in place. Fixed text: the
/// data folder and fence marker come as arguments, pg_rewind's options
/// after them, the password in PGPASSWORD.
///
/// pg_rewind's crash recovery runs a single-user server, which refuses
/// standby mode: `standby.signal` goes while it runs, and comes back (with
/// the fence marker) if it fails, so the node stays read-only. A killed
/// server leaves postmaster.pid naming PID 1, which in this container is
/// the shell itself: PostgreSQL would take the lock as live, and the node
/// is stopped, so it is stale.
const REJOIN_SCRIPT: &str = r#"set -eu
data="$1"; fence="$2"; tli="$3"; shift 3
mode=rewind
if [ ! -e "$data/$fence" ] && [ -e "$data/standby.signal" ]; then mode=standby; fi
if [ "$mode" = rewind ]; then
  # Restarted read-only with an upstream, a fenced node may already have
  # followed the source's timeline past the fork: then there is nothing to
  # rewind (pg_rewind before 16 takes the timeline from the last
  # checkpoint only and fails on this state).
  ctl=$(LC_ALL=C pg_controldata "$data" 2>/dev/null || true)
  state=$(printf '%s\n' "$ctl" | sed -n 's/^Database cluster state: *//p')
  mintli=$(printf '%s\n' "$ctl" | sed -n "s/^Min recovery ending loc's timeline: *//p")
  if [ "$state" = "shut down in recovery" ] && [ "$mintli" = "$tli" ]; then
    mode=followed
    rm -f "$data/$fence"
  fi
fi
if [ "$mode" = rewind ]; then
  rm -f "$data/postmaster.pid" "$data/standby.signal" "$data/$fence"
  if ! pg_rewind -D "$data" "$@" 2>&1; then
    touch "$data/standby.signal" "$data/$fence"
    echo "pgrepl:rewind-failed"
    exit 0
  fi
fi
# Each file replaced by a rename: a run killed here leaves the old or the
# new file, and standby.signal never goes missing (whoever owns the old one).
cat > "$data/postgresql.auto.conf.pgrepl"
mv -f "$data/postgresql.auto.conf.pgrepl" "$data/postgresql.auto.conf"
touch "$data/standby.signal.pgrepl"
mv -f "$data/standby.signal.pgrepl" "$data/standby.signal"
echo "pgrepl:$mode"
"#;

/// Reads a node's data folder without changing it (a one-off container
/// that only reads): `standby.signal`, the fence marker, and what its
/// control file records; `None` when there is no control file to read.
pub fn probe_data_folder(c: &Cluster, node: &str) -> Result<Option<DataFolder>> {
    let out = c.runner().run_unchecked(
        &one_off_as(c, node, "sh", None, &[])?
            .args([
                "-c",
                PROBE_SCRIPT,
                "pgrepl-probe",
                PGDATA,
                container::FENCE_MARKER,
            ])
            .read_only(),
    )?;
    Ok(DataFolder::parse(&out.stdout))
}

/// Fixed text: the data folder and fence marker come as arguments.
const PROBE_SCRIPT: &str = r#"data="$1"; fence="$2"
[ -e "$data/standby.signal" ] && echo "pgrepl:standby-signal"
[ -e "$data/$fence" ] && echo "pgrepl:fenced"
pg_controldata "$data" 2>/dev/null | grep -E '^(wal_log_hints setting|Data page checksum version):'
exit 0
"#;

/// Fails unless `node` refuses a write (a schema change, rolled back).
pub fn ensure_read_only(c: &Cluster, node: &str) -> Result<()> {
    let write = c.sql_mut(
        node,
        "BEGIN; CREATE TABLE pgrepl_write_probe (x int); ROLLBACK;",
    );
    if write.is_ok() {
        bail!("{node} accepted a write: it is not a standby");
    }
    Ok(())
}

/// Promotes a standby and waits until it accepts writes; returns its new
/// timeline.
pub fn promote(c: &Cluster, node: &str, timeout: Duration) -> Result<u32> {
    // Without waiting: pg_promote's own wait checks every 100 ms, the poll
    // below from 25 ms.
    let promoted = c.sql_mut(node, "SELECT pg_promote(false)");
    if promoted.as_deref().ok() != Some("t") && !c.runner().dry_run() {
        bail!(
            "promoting {node} failed or timed out ({}). Check `docker logs` of {node}, then promote it by hand (SELECT pg_promote()).",
            promoted
                .map_err(|e| format!("{e:#}"))
                .err()
                .unwrap_or_else(|| "pg_promote returned false".into())
        );
    }
    if c.runner().dry_run() {
        return Ok(0);
    }
    c.poll(&format!("{node} to accept writes"), timeout, || {
        Ok((c.sql(node, "SELECT pg_is_in_recovery()")? == "f").then_some(()))
    })?;
    timeline(c, node)
}
