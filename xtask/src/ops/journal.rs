//! What an operation that moves roles is in the middle of: written to
//! `state/<cluster>/operation.toml` before its first change and marked
//! finished after its last, so that a run killed at any point (Ctrl-C, a
//! closed SSH session, an out-of-memory kill) is recognised by the next
//! run. The same command run again finishes it (or, killed after its last
//! change, says it had finished); any other command that changes the
//! cluster refuses until then and says which command to run.

use crate::cluster::Cluster;
use crate::runner::FileOp;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The operations that keep a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Failover,
    Switchover,
    Rejoin,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Failover => "failover",
            Op::Switchover => "switchover",
            Op::Rejoin => "rejoin",
        }
    }
}

/// An operation under way: `from` is the primary it moves away from (for a
/// rejoin, the current primary), `to` the node it promotes (for a rejoin,
/// the node that rejoins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub op: Op,
    pub from: String,
    pub to: String,
    /// Every change was made.
    #[serde(default)]
    pub finished: bool,
}

impl Journal {
    /// The command that finishes it.
    pub fn command(&self, topology: &str) -> String {
        match self.op {
            Op::Failover => format!("cargo xtask failover -t {topology}"),
            Op::Switchover => format!("cargo xtask switchover --to {} -t {topology}", self.to),
            Op::Rejoin => format!("cargo xtask rejoin --node {} -t {topology}", self.to),
        }
    }

    fn describe(&self) -> String {
        match self.op {
            Op::Rejoin => format!("rejoin of {} as a standby of {}", self.to, self.from),
            op => format!("{} from {} to {}", op.name(), self.from, self.to),
        }
    }
}

fn path(c: &Cluster) -> PathBuf {
    c.state_dir().join("operation.toml")
}

/// The journal of an interrupted operation, if any.
pub fn read(c: &Cluster) -> Result<Option<Journal>> {
    let p = path(c);
    let Some(text) = crate::fsx::read_own(&p, 64 * 1024)? else {
        return Ok(None);
    };
    let j: Journal = toml::from_str(&text).with_context(|| {
        format!(
            "{} is not an operation journal this tool wrote; if no operation was interrupted, remove it",
            p.display()
        )
    })?;
    Ok(Some(j))
}

/// What the journal says of an operation about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Nothing is unfinished.
    Fresh,
    /// A run of this operation was interrupted: finish it.
    Interrupted(Journal),
    /// The last run of this operation made every change (it may have been
    /// killed after its last): the caller may say there is nothing to do.
    Finished(Journal),
}

/// Before the first change of `op`: refuses when another operation was
/// interrupted (naming the command that finishes it).
pub fn check(c: &Cluster, op: Op) -> Result<Resume> {
    match read(c)? {
        Some(j) if j.finished && j.op == op => Ok(Resume::Finished(j)),
        Some(j) if j.finished => Ok(Resume::Fresh),
        Some(j) if j.op == op => {
            say!(
                "an interrupted {} was found ({}): finishing it",
                j.describe(),
                path(c).display()
            );
            Ok(Resume::Interrupted(j))
        }
        Some(j) => bail!(
            "an interrupted {} is unfinished ({}); finish it first: {}",
            j.describe(),
            path(c).display(),
            j.command(c.path())
        ),
        None => Ok(Resume::Fresh),
    }
}

/// Refuses any change while an operation is unfinished (for the commands
/// that keep no journal of their own: setup, basebackup).
pub fn refuse_if_unfinished(c: &Cluster) -> Result<()> {
    if let Some(j) = read(c)?.filter(|j| !j.finished) {
        bail!(
            "an interrupted {} is unfinished ({}); finish it first: {}, or start over with `cargo xtask down --purge -t {}`",
            j.describe(),
            path(c).display(),
            j.command(c.path()),
            c.path()
        );
    }
    Ok(())
}

/// Records that `j` begins (written atomically, before its first change).
pub fn begin(c: &Cluster, j: &Journal) -> Result<()> {
    let text = toml::to_string(j).context("writing the operation journal")?;
    c.runner().file(&FileOp::Write {
        path: path(c),
        contents: text.into_bytes(),
        access: crate::fsx::Access::Private,
    })?;
    Ok(())
}

/// Records that `j` made every change.
pub fn end(c: &Cluster, j: &Journal) -> Result<()> {
    begin(
        c,
        &Journal {
            finished: true,
            ..j.clone()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_round_trips_and_names_its_command() {
        let j = Journal {
            op: Op::Switchover,
            from: "master-db".into(),
            to: "slave1-db".into(),
            finished: false,
        };
        let text = toml::to_string(&j).unwrap();
        assert_eq!(toml::from_str::<Journal>(&text).unwrap(), j);
        assert_eq!(
            j.command("conf/semi-sync.toml"),
            "cargo xtask switchover --to slave1-db -t conf/semi-sync.toml"
        );
        assert!(toml::from_str::<Journal>("op = \"drop\"\nfrom = \"a\"\nto = \"b\"").is_err());
    }
}
