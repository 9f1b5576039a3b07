//! Typed live state of a cluster and the semantics of
//! `synchronous_standby_names` over it: which state each standby should
//! show, the list narrowed to connected standbys, and whether a set of
//! reachable standbys is guaranteed to hold every acknowledged commit. Pure:
//! the xtask's one reader of live state fills these types.

use crate::syncrep::{Method, SyncStandbyNames};
use std::fmt;
use std::str::FromStr;

/// A WAL position (`pg_lsn`): `hi/lo` in hexadecimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Bytes from `earlier` to `self` (0 when `earlier` is ahead).
    pub fn distance_from(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A value PostgreSQL answered with that does not read as its type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveParseError {
    #[error("`{0}` is not a WAL position (hi/lo in hexadecimal)")]
    Lsn(String),
    #[error("unknown sync_state `{0}`")]
    SyncState(String),
}

impl FromStr for Lsn {
    type Err = LiveParseError;
    fn from_str(s: &str) -> Result<Lsn, LiveParseError> {
        let bad = || LiveParseError::Lsn(crate::names::shown(s));
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a node is now, as its server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LiveRole {
    Primary,
    Standby,
    /// Not running, or not answering SQL.
    Down,
}

impl fmt::Display for LiveRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LiveRole::Primary => "primary",
            LiveRole::Standby => "standby",
            LiveRole::Down => "down",
        })
    }
}

/// `pg_stat_replication.sync_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    Sync,
    Potential,
    Quorum,
    Async,
}

impl FromStr for SyncState {
    type Err = LiveParseError;
    fn from_str(s: &str) -> Result<SyncState, LiveParseError> {
        Ok(match s.trim() {
            "sync" => SyncState::Sync,
            "potential" => SyncState::Potential,
            "quorum" => SyncState::Quorum,
            "async" => SyncState::Async,
            other => return Err(LiveParseError::SyncState(crate::names::shown(other))),
        })
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncState::Sync => "sync",
            SyncState::Potential => "potential",
            SyncState::Quorum => "quorum",
            SyncState::Async => "async",
        })
    }
}

fn listed(ssn: &SyncStandbyNames, standby: &str) -> bool {
    ssn.matches(standby)
}

/// The `sync_state` PostgreSQL reports for each of `standbys` under `ssn`
/// when `connected` of them stream: with `FIRST n`, the first n connected
/// listed standbys in list order are `sync` and the other listed ones
/// `potential`; with `ANY n`, listed ones are `quorum`; unlisted ones (and
/// every one without `ssn`) `async`.
pub fn expected_states(
    ssn: Option<&SyncStandbyNames>,
    standbys: &[&str],
    connected: &[&str],
) -> Vec<(String, SyncState)> {
    let mut out: Vec<(String, SyncState)> = standbys
        .iter()
        .map(|s| (s.to_string(), SyncState::Async))
        .collect();
    let Some(p) = ssn else { return out };
    let mut sync_left = p.num_sync as usize;
    for name in &p.names {
        for (s, state) in out.iter_mut() {
            let hit = name == "*" || name.eq_ignore_ascii_case(s);
            if !hit || *state != SyncState::Async {
                continue;
            }
            *state = match p.method {
                Method::Any => SyncState::Quorum,
                Method::First if sync_left > 0 && connected.contains(&s.as_str()) => {
                    sync_left -= 1;
                    SyncState::Sync
                }
                Method::First => SyncState::Potential,
            };
        }
    }
    out
}

/// The configured list narrowed to the standbys connected now (in the
/// configured order, then any other connected node of the cluster), with
/// the number kept no larger than the list: a primary must never wait for a
/// standby that is not there. `None` when none is connected.
pub fn narrowed(
    configured: &SyncStandbyNames,
    connected: &[&str],
    cluster_nodes: &[&str],
) -> Option<SyncStandbyNames> {
    let mut names: Vec<String> = Vec::new();
    let add = |n: &str, names: &mut Vec<String>| {
        if !names.iter().any(|x| x.eq_ignore_ascii_case(n)) {
            names.push(n.to_string());
        }
    };
    for n in configured.names.iter().filter(|n| *n != "*") {
        if let Some(c) = connected.iter().find(|c| c.eq_ignore_ascii_case(n)) {
            add(c, &mut names);
        }
    }
    if configured.names.iter().any(|n| n == "*") {
        for c in connected {
            add(c, &mut names);
        }
    }
    for c in connected {
        if cluster_nodes.iter().any(|n| n.eq_ignore_ascii_case(c)) {
            add(c, &mut names);
        }
    }
    if names.is_empty() {
        return None;
    }
    let num = (configured.num_sync as usize).min(names.len()) as u32;
    Some(SyncStandbyNames::new(configured.method, num, names))
}

const ASYNC: &str =
    "synchronous_standby_names was empty: commits were acknowledged without any standby";

/// Why a set of reachable standbys does or does not hold every commit the
/// failed primary acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarantee {
    /// These reachable standbys each hold every acknowledged commit.
    Holders(Vec<String>),
    /// No reachable standby is guaranteed to; the sentence says why.
    None(String),
}

/// Under `ssn` as the failed primary enforced it, with `states` the
/// `sync_state` of each standby when it failed: which of `reachable` are
/// guaranteed to hold every acknowledged commit.
///
/// `FIRST n`: a commit returned only once all n `sync` standbys had flushed
/// it, so each standby that was `sync` holds every acknowledged commit.
/// `ANY n` over k listed standbys: each commit was flushed by some n of
/// them, so the reachable listed standbys hold them all together only when
/// they intersect every n-subset (at least k - n + 1 of them are
/// reachable), and then the one with the most WAL holds them alone; the
/// caller picks it by LSN. Without `ssn` commits were acknowledged locally:
/// nothing is guaranteed.
pub fn guaranteed(
    ssn: Option<&SyncStandbyNames>,
    standbys: &[&str],
    states: &[(String, SyncState)],
    reachable: &[&str],
) -> Guarantee {
    let Some(ssn) = ssn else {
        return Guarantee::None(ASYNC.into());
    };
    match ssn.method {
        Method::First => {
            let holders: Vec<String> = reachable
                .iter()
                .filter(|r| {
                    states
                        .iter()
                        .any(|(n, s)| n.eq_ignore_ascii_case(r) && *s == SyncState::Sync)
                })
                .map(|r| r.to_string())
                .collect();
            if holders.is_empty() {
                let syncs: Vec<&str> = states
                    .iter()
                    .filter(|(_, s)| *s == SyncState::Sync)
                    .map(|(n, _)| n.as_str())
                    .collect();
                Guarantee::None(if syncs.is_empty() {
                    "no standby was synchronous when the primary failed: commits may have been acknowledged without one".into()
                } else {
                    format!(
                        "the synchronous standby ({}) is not reachable; the others may lack acknowledged commits",
                        syncs.join(", ")
                    )
                })
            } else {
                Guarantee::Holders(holders)
            }
        }
        Method::Any => {
            let k: Vec<&str> = standbys
                .iter()
                .copied()
                .filter(|s| listed(ssn, s))
                .collect();
            let reach: Vec<&str> = k
                .iter()
                .copied()
                .filter(|s| reachable.iter().any(|r| r.eq_ignore_ascii_case(s)))
                .collect();
            let need = k.len().saturating_sub(ssn.num_sync as usize) + 1;
            if reach.len() >= need {
                Guarantee::Holders(reach.iter().map(|s| s.to_string()).collect())
            } else {
                Guarantee::None(format!(
                    "ANY {} over {} standbys: a commit was acknowledged by any {} of them, so at least {need} must be reachable to hold them all; {} are ({})",
                    ssn.num_sync,
                    k.len(),
                    ssn.num_sync,
                    reach.len(),
                    reach.join(", ")
                ))
            }
        }
    }
}

/// As [`guaranteed`], when the states at the failure are unknown (the
/// primary is gone and nobody recorded them): the worst case is assumed,
/// that every unreachable standby was connected and took part. Under
/// `FIRST n` and `ANY n` alike, commits were acknowledged by n listed
/// standbys, so the reachable ones hold every acknowledged commit (the most
/// advanced of them holds all) exactly when fewer than n listed standbys
/// are unreachable.
pub fn guaranteed_worst_case(
    ssn: Option<&SyncStandbyNames>,
    standbys: &[&str],
    reachable: &[&str],
) -> Guarantee {
    let Some(ssn) = ssn else {
        return Guarantee::None(ASYNC.into());
    };
    let listed: Vec<&str> = standbys
        .iter()
        .copied()
        .filter(|s| ssn.matches(s))
        .collect();
    let is_reachable = |s: &&str| reachable.iter().any(|r| r.eq_ignore_ascii_case(s));
    let unreachable: Vec<&str> = listed
        .iter()
        .copied()
        .filter(|s| !is_reachable(s))
        .collect();
    if unreachable.len() < ssn.num_sync as usize {
        Guarantee::Holders(
            listed
                .iter()
                .copied()
                .filter(|s| is_reachable(s))
                .map(str::to_string)
                .collect(),
        )
    } else {
        Guarantee::None(format!(
            "{} waited for {} of {}; {} of them cannot be reached ({}), so acknowledged commits may exist only there",
            ssn,
            ssn.num_sync,
            listed.join(", "),
            unreachable.len(),
            unreachable.join(", ")
        ))
    }
}

/// A reachable standby a failover may promote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node: String,
    /// How far its WAL goes: received (or replayed) LSN.
    pub received: Lsn,
}

/// What the choice of the standby to promote is made from.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The `synchronous_standby_names` the failed primary enforced.
    pub enforced: Option<&'a SyncStandbyNames>,
    /// Every standby the failed primary had (its other nodes).
    pub standbys: &'a [&'a str],
    /// Each standby's `sync_state` when the primary failed, when known.
    pub states: Option<&'a [(String, SyncState)]>,
    /// The reachable standbys.
    pub candidates: &'a [Candidate],
    /// The standby the user asks for (`--to`).
    pub to: Option<&'a str>,
    /// Promote even without a guarantee (`--allow-data-loss`).
    pub allow_data_loss: bool,
}

/// The standby to promote and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub node: String,
    pub why: String,
    /// Whether it is guaranteed to hold every acknowledged commit.
    pub guaranteed: bool,
}

/// Why no standby is promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoCandidate,
    /// `--to` names no reachable standby.
    NotReachable {
        to: String,
        reachable: Vec<String>,
    },
    /// The standby that would be promoted may lack acknowledged commits.
    NotGuaranteed {
        node: String,
        reason: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoCandidate => f.write_str("no reachable standby to promote"),
            Refusal::NotReachable { to, reachable } => write!(
                f,
                "--to {to}: it is not a reachable standby (reachable: {})",
                reachable.join(", ")
            ),
            Refusal::NotGuaranteed { node, reason } => write!(
                f,
                "refusing to promote {node}: {reason}. Nothing was changed. Bring the missing standby back, \
                 or pass --allow-data-loss to promote anyway (acknowledged commits may be lost)."
            ),
        }
    }
}

/// Chooses the standby to promote: one guaranteed to hold every commit
/// the failed primary acknowledged (from the `sync_state`s at the failure
/// when known, else assuming the worst), the furthest ahead by WAL, among
/// equals the one that was synchronous; `--to` picks one under the same
/// guard. Without a guarantee it refuses unless data loss is allowed.
pub fn choose(ask: &Ask) -> Result<Choice, Refusal> {
    let cands = ask.candidates;
    if cands.is_empty() {
        return Err(Refusal::NoCandidate);
    }
    let reachable: Vec<&str> = cands.iter().map(|c| c.node.as_str()).collect();
    let guarantee = match ask.states {
        Some(states) => guaranteed(ask.enforced, ask.standbys, states, &reachable),
        None => guaranteed_worst_case(ask.enforced, ask.standbys, &reachable),
    };
    let best = cands.iter().map(|c| c.received).max().unwrap_or(Lsn(0));
    let holders: Vec<String> = match &guarantee {
        Guarantee::Holders(h) => h.clone(),
        Guarantee::None(_) => vec![],
    };
    // What a holder of every acknowledged commit has received: the most any
    // of them has (under ANY n, only the most advanced holds them all).
    let needed = cands
        .iter()
        .filter(|c| holders.iter().any(|h| h.eq_ignore_ascii_case(&c.node)))
        .map(|c| c.received)
        .max();
    let was_sync = |node: &str| {
        ask.states.is_some_and(|s| {
            s.iter()
                .any(|(n, st)| n.eq_ignore_ascii_case(node) && *st == SyncState::Sync)
        })
    };
    let pick = match ask.to {
        Some(to) => cands
            .iter()
            .find(|c| c.node.eq_ignore_ascii_case(to))
            .ok_or_else(|| Refusal::NotReachable {
                to: to.to_string(),
                reachable: reachable.iter().map(|r| r.to_string()).collect(),
            })?,
        None => {
            let ahead: Vec<&Candidate> = cands.iter().filter(|c| c.received == best).collect();
            ahead
                .iter()
                .find(|c| was_sync(&c.node))
                .or(ahead.first())
                .copied()
                .expect("candidates is not empty")
        }
    };
    let ok = needed.is_some_and(|n| pick.received >= n);
    let positions: Vec<String> = cands
        .iter()
        .map(|c| format!("{} received {}", c.node, c.received))
        .collect();
    let reason = match (&guarantee, ok) {
        (Guarantee::Holders(_), true) => format!(
            "it holds every acknowledged commit ({}; guaranteed by {})",
            positions.join(", "),
            holders.join(", ")
        ),
        (Guarantee::Holders(_), false) => format!(
            "{} has received only {}, while {} hold every acknowledged commit up to {}",
            pick.node,
            pick.received,
            holders.join(", "),
            needed.unwrap_or(Lsn(0))
        ),
        (Guarantee::None(why), _) => why.clone(),
    };
    if !ok && !ask.allow_data_loss {
        return Err(Refusal::NotGuaranteed {
            node: pick.node.clone(),
            reason,
        });
    }
    Ok(Choice {
        node: pick.node.clone(),
        why: if ok {
            reason
        } else {
            format!("--allow-data-loss: {reason}")
        },
        guaranteed: ok,
    })
}

/// What a stopped node's data folder says about how it can follow a new
/// primary (read by `rejoin` before it changes anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataFolder {
    /// `standby.signal` is present.
    pub standby_signal: bool,
    /// The tool's fence marker is present: a failed primary, fenced.
    pub fenced: bool,
    /// `wal_log_hints setting` in its control file.
    pub wal_log_hints: bool,
    /// `Data page checksum version` is not 0.
    pub checksums: bool,
}

/// How a node rejoins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejoinPath {
    /// A standby that lost its upstream: new standby settings, started.
    Repoint,
    /// A failed primary (or a node without `standby.signal`): pg_rewind.
    Rewind,
    /// pg_rewind cannot run on this folder: a verified re-clone, and why.
    Reclone(String),
}

impl DataFolder {
    /// Reads the probe's lines: `pgrepl:standby-signal`, `pgrepl:fenced`,
    /// and pg_controldata's `wal_log_hints setting:` and `Data page
    /// checksum version:` lines.
    pub fn parse(text: &str) -> Option<DataFolder> {
        let mut d = DataFolder::default();
        let mut control = 0;
        for line in text.lines().map(str::trim) {
            match line {
                "pgrepl:standby-signal" => d.standby_signal = true,
                "pgrepl:fenced" => d.fenced = true,
                _ => {
                    if let Some(v) = line.strip_prefix("wal_log_hints setting:") {
                        d.wal_log_hints = v.trim() == "on";
                        control += 1;
                    } else if let Some(v) = line.strip_prefix("Data page checksum version:") {
                        d.checksums = v.trim() != "0";
                        control += 1;
                    }
                }
            }
        }
        (control == 2).then_some(d)
    }

    /// The way back: a standby is re-pointed; anything else needs
    /// pg_rewind, which needs wal_log_hints or data checksums (it refuses
    /// the folder otherwise), or else a re-clone.
    pub fn rejoin_path(&self) -> RejoinPath {
        if self.standby_signal && !self.fenced {
            return RejoinPath::Repoint;
        }
        if !self.wal_log_hints && !self.checksums {
            return RejoinPath::Reclone(
                "its control file records neither wal_log_hints = on nor data checksums, so pg_rewind refuses it".into(),
            );
        }
        RejoinPath::Rewind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssn(s: &str) -> SyncStandbyNames {
        s.parse().unwrap()
    }

    #[test]
    fn lsns_parse_order_and_measure() {
        let a: Lsn = "0/5000060".parse().unwrap();
        let b: Lsn = "1/0".parse().unwrap();
        assert_eq!(a, Lsn(0x5000060));
        assert_eq!(b, Lsn(1 << 32));
        assert!(b > a);
        assert_eq!(b.distance_from(a), (1 << 32) - 0x5000060);
        assert_eq!(a.distance_from(b), 0);
        assert_eq!(a.to_string(), "0/5000060");
        assert!("".parse::<Lsn>().is_err());
        assert!("0/xyz".parse::<Lsn>().is_err());
    }

    #[test]
    fn expected_states_follow_postgres() {
        let first = ssn("FIRST 1 (\"s1\", \"s2\")");
        let got = expected_states(Some(&first), &["s1", "s2", "s3"], &["s1", "s2", "s3"]);
        assert_eq!(
            got,
            [
                ("s1".into(), SyncState::Sync),
                ("s2".into(), SyncState::Potential),
                ("s3".into(), SyncState::Async)
            ]
        );
        // s1 gone: s2 takes over.
        let got = expected_states(Some(&first), &["s1", "s2"], &["s2"]);
        assert_eq!(got[1], ("s2".into(), SyncState::Sync));
        let any = ssn("ANY 2 (*)");
        assert!(expected_states(Some(&any), &["a", "b"], &["a"])
            .iter()
            .all(|(_, s)| *s == SyncState::Quorum));
        assert!(expected_states(None, &["a"], &["a"])[0].1 == SyncState::Async);
    }

    #[test]
    fn narrowing_keeps_only_connected_standbys() {
        let cfg = ssn("FIRST 1 (\"slave1-db\", \"slave2-db\")");
        let n = narrowed(
            &cfg,
            &["slave2-db"],
            &["master-db", "slave1-db", "slave2-db"],
        )
        .unwrap();
        assert_eq!(n.to_string(), "FIRST 1 (\"slave2-db\")");
        // The old primary, now following, is better than no synchronous standby.
        let n = narrowed(
            &cfg,
            &["master-db"],
            &["master-db", "slave1-db", "slave2-db"],
        )
        .unwrap();
        assert_eq!(n.names, ["master-db"]);
        assert!(narrowed(&cfg, &[], &["a"]).is_none());
        let any = ssn("ANY 2 (a, b, c)");
        let n = narrowed(&any, &["c"], &["a", "b", "c"]).unwrap();
        assert_eq!((n.method, n.num_sync, n.names.len()), (Method::Any, 1, 1));
    }

    #[test]
    fn first_n_guarantee_is_the_sync_standby() {
        let first = ssn("FIRST 1 (s1, s2)");
        let states = vec![
            ("s1".to_string(), SyncState::Sync),
            ("s2".to_string(), SyncState::Potential),
        ];
        let all = ["s1", "s2"];
        assert_eq!(
            guaranteed(Some(&first), &all, &states, &["s1", "s2"]),
            Guarantee::Holders(vec!["s1".into()])
        );
        assert!(matches!(
            guaranteed(Some(&first), &all, &states, &["s2"]),
            Guarantee::None(why) if why.contains("s1")
        ));
        assert!(matches!(
            guaranteed(None, &all, &states, &["s1"]),
            Guarantee::None(_)
        ));
    }

    #[test]
    fn worst_case_needs_fewer_than_n_unreachable() {
        let all = ["s1", "s2", "s3"];
        let first1 = ssn("FIRST 1 (s1, s2)");
        assert!(matches!(
            guaranteed_worst_case(Some(&first1), &all, &["s1", "s2"]),
            Guarantee::Holders(h) if h == ["s1", "s2"]
        ));
        // s1 may have been the synchronous one: s2 is not enough.
        assert!(matches!(
            guaranteed_worst_case(Some(&first1), &all, &["s2", "s3"]),
            Guarantee::None(why) if why.contains("s1")
        ));
        let any2 = ssn("ANY 2 (s1, s2, s3)");
        assert!(matches!(
            guaranteed_worst_case(Some(&any2), &all, &["s2", "s3"]),
            Guarantee::Holders(_)
        ));
        assert!(matches!(
            guaranteed_worst_case(Some(&any2), &all, &["s3"]),
            Guarantee::None(_)
        ));
        assert!(matches!(
            guaranteed_worst_case(None, &all, &all),
            Guarantee::None(_)
        ));
    }

    #[test]
    fn any_n_guarantee_needs_every_quorum_covered() {
        // ANY 2 of three: any two reachable intersect every pair.
        let any2 = ssn("ANY 2 (a, b, c)");
        let all = ["a", "b", "c"];
        let states: Vec<(String, SyncState)> = all
            .iter()
            .map(|s| (s.to_string(), SyncState::Quorum))
            .collect();
        assert!(matches!(
            guaranteed(Some(&any2), &all, &states, &["a", "b"]),
            Guarantee::Holders(h) if h.len() == 2
        ));
        assert!(matches!(
            guaranteed(Some(&any2), &all, &states, &["c"]),
            Guarantee::None(why) if why.contains("at least 2")
        ));
        // ANY 1 of three: every one must be reachable.
        let any1 = ssn("ANY 1 (a, b, c)");
        assert!(matches!(
            guaranteed(Some(&any1), &all, &states, &["a", "b"]),
            Guarantee::None(_)
        ));
        assert!(matches!(
            guaranteed(Some(&any1), &all, &states, &["a", "b", "c"]),
            Guarantee::Holders(_)
        ));
    }

    #[test]
    fn rejoin_path_follows_the_data_folder() {
        let probe = "pgrepl:fenced\npgrepl:standby-signal\nwal_log_hints setting:         on\nData page checksum version:           0\n";
        let d = DataFolder::parse(probe).unwrap();
        assert!(d.fenced && d.standby_signal && d.wal_log_hints && !d.checksums);
        assert_eq!(d.rejoin_path(), RejoinPath::Rewind);
        let standby = DataFolder::parse(
            "pgrepl:standby-signal\nwal_log_hints setting: off\nData page checksum version: 0\n",
        )
        .unwrap();
        assert_eq!(standby.rejoin_path(), RejoinPath::Repoint);
        let bare = DataFolder::parse("wal_log_hints setting: off\nData page checksum version: 0\n")
            .unwrap();
        assert!(
            matches!(bare.rejoin_path(), RejoinPath::Reclone(why) if why.contains("pg_rewind"))
        );
        let sums = DataFolder::parse("wal_log_hints setting: off\nData page checksum version: 1\n")
            .unwrap();
        assert_eq!(sums.rejoin_path(), RejoinPath::Rewind);
        assert_eq!(
            DataFolder::parse("pgrepl:fenced\n"),
            None,
            "no control file read"
        );
    }
}
