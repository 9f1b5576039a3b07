//! The judgement of a cluster's live state: the rows `status` prints and
//! the problems found in them, from what each server answered. Pure: the
//! xtask's one reader of live state (`ops::live`) runs the queries and
//! hands their answers here.

use crate::live::{expected_states, LiveRole, Lsn, SyncState};
use crate::syncrep::{Method, SyncStandbyNames};
use serde::Serialize;
use std::collections::HashMap;

/// The statement every node answers for `status`, one row of seven
/// `|`-separated fields that [`NodeStatus::from_probe`] reads. The WAL
/// receiver's field carries `written_lsn` (13 and later; read through
/// `to_jsonb` so that 12, which lacks the column, answers too): WAL already
/// in the standby's files that its next flush will count as received.
pub const PROBE: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_is_in_recovery() THEN (SELECT timeline_id FROM pg_control_checkpoint())::text \
          ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text END, \
     CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn() END, pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
     (SELECT status || ',' || coalesce(sender_host, '') || ',' || received_tli || ',' || \
             coalesce(to_jsonb(r) ->> 'written_lsn', '') FROM pg_stat_wal_receiver r), \
     split_part(current_setting('server_version'), ' ', 1)";

/// The primary's `pg_stat_replication`, one row per standby: the statement
/// [`Replica::parse`] reads. `reply` is the age of the standby's last reply
/// in milliseconds and `unflushed` the WAL it was sent or is owed and has not
/// confirmed flushed: a standby cut off the network still shows `streaming`
/// until `wal_sender_timeout`, but stops replying while WAL waits for it.
pub const REPLICATION: &str = "SELECT application_name, state, sync_state, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint, \
     (extract(epoch FROM clock_timestamp() - reply_time) * 1000)::bigint, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint FROM pg_stat_replication";

/// A standby owed WAL is said to have stopped replying after this long
/// without a reply: while WAL flows a healthy one replies on every flush.
/// (An idle one replies only every `wal_receiver_status_interval`, 10 s by
/// default, so silence alone proves nothing.)
pub const SILENT_AFTER_MS: i64 = 3_000;

/// One node's row in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub reachable: bool,
    pub role: LiveRole,
    /// `server_version` (`17.6`, `18.0 (Debian ...)` trimmed to the number).
    pub version: Option<String>,
    pub timeline: Option<u32>,
    pub current_lsn: Option<Lsn>,
    pub receive_lsn: Option<Lsn>,
    /// WAL the receiver has written and not yet flushed (it flushes once it
    /// has read all that is waiting, and when it exits).
    pub written_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
    pub lag_bytes: Option<i64>,
    pub upstream: Option<String>,
    pub wal_receiver: Option<String>,
    pub sync_state: Option<SyncState>,
    pub expected_sync_state: Option<SyncState>,
    pub slot: Option<String>,
    pub slot_active: Option<bool>,
    pub problems: Vec<String>,
    /// Worth knowing, not a fault.
    pub notes: Vec<String>,
}

fn field(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn lsn(s: &str) -> Option<Lsn> {
    field(s).and_then(|v| v.parse().ok())
}

impl NodeStatus {
    /// A node that did not answer.
    pub fn down(node: &str) -> NodeStatus {
        NodeStatus {
            node: node.to_string(),
            reachable: false,
            role: LiveRole::Down,
            version: None,
            timeline: None,
            current_lsn: None,
            receive_lsn: None,
            written_lsn: None,
            replay_lsn: None,
            lag_bytes: None,
            upstream: None,
            wal_receiver: None,
            sync_state: None,
            expected_sync_state: None,
            slot: None,
            slot_active: None,
            problems: vec![],
            notes: vec![],
        }
    }

    /// The row of `node` from its answer to [`PROBE`] (None: no answer, or
    /// not the seven fields the probe returns: the node counts as down).
    pub fn from_probe(node: &str, answer: Option<&str>) -> NodeStatus {
        let mut row = NodeStatus::down(node);
        let Some(line) = answer else { return row };
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 7 {
            return row;
        }
        row.reachable = true;
        row.version = field(f[6]);
        let standby = f[0] == "t";
        row.role = if standby {
            LiveRole::Standby
        } else {
            LiveRole::Primary
        };
        row.timeline = f[1].trim().parse().ok();
        row.current_lsn = lsn(f[2]);
        if standby {
            // After a promotion these keep their last values: show them only on standbys.
            row.receive_lsn = lsn(f[3]);
            row.replay_lsn = lsn(f[4]);
        }
        if let Some(w) = field(f[5]) {
            let parts: Vec<&str> = w.split(',').collect();
            row.wal_receiver = parts.first().map(|s| s.to_string());
            row.upstream = parts.get(1).and_then(|s| field(s));
            if let Some(tli) = parts.get(2).and_then(|s| s.parse().ok()) {
                row.timeline = Some(tli);
            }
            if standby {
                row.written_lsn = parts.get(3).and_then(|s| lsn(s));
            }
        }
        row
    }

    /// How far this node's WAL reaches: received, written or replayed,
    /// whichever is furthest, on a standby; current on a primary.
    pub fn wal_position(&self) -> Option<Lsn> {
        self.current_lsn
            .or(self.receive_lsn.max(self.replay_lsn).max(self.written_lsn))
    }
}

/// One row of the primary's `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub name: String,
    pub state: String,
    pub sync_state: Option<SyncState>,
    /// Bytes the standby has yet to replay.
    pub lag: Option<i64>,
    /// Milliseconds since the standby's last reply.
    pub reply_age_ms: Option<i64>,
    /// Bytes of WAL the primary has that the standby has not confirmed flushed.
    pub unflushed: Option<i64>,
}

impl Replica {
    /// The rows of an answer to [`REPLICATION`].
    pub fn parse(answer: &str) -> Vec<Replica> {
        answer
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                Replica {
                    name: f[0].to_string(),
                    state: f.get(1).unwrap_or(&"").to_string(),
                    sync_state: f.get(2).and_then(|s| s.parse().ok()),
                    lag: f.get(3).and_then(|s| s.trim().parse().ok()),
                    reply_age_ms: f.get(4).and_then(|s| s.trim().parse().ok()),
                    unflushed: f.get(5).and_then(|s| s.trim().parse().ok()),
                }
            })
            .collect()
    }

    /// Streaming, and replying while WAL waits for it.
    pub fn live(&self) -> bool {
        let silent = self.reply_age_ms.is_some_and(|a| a >= SILENT_AFTER_MS)
            && self.unflushed.is_some_and(|u| u > 0);
        self.state == "streaming" && !silent
    }
}

/// What the one writable primary answered about its standbys.
#[derive(Debug, Clone, Default)]
pub struct PrimaryView {
    /// The `synchronous_standby_names` it enforces now (None: empty).
    pub enforced: Option<SyncStandbyNames>,
    pub replicas: Vec<Replica>,
    /// Physical slots: name and whether active.
    pub slots: Vec<(String, bool)>,
}

/// What the topology says the live state should be.
pub struct Expected<'a> {
    /// The configured `synchronous_standby_names` (None: asynchronous).
    pub configured: Option<&'a SyncStandbyNames>,
    /// Whether every standby has a slot.
    pub slots: bool,
}

/// Whether every row is free of problems.
pub fn healthy(rows: &[NodeStatus]) -> bool {
    rows.iter().all(|r| r.problems.is_empty())
}

/// Fill in every row's problems and notes. `view` is the primary's answer
/// when exactly one node is a writable primary.
pub fn judge(rows: &mut [NodeStatus], view: Option<&PrimaryView>, want: &Expected) {
    let primaries: Vec<String> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Primary)
        .map(|r| r.node.clone())
        .collect();
    match (primaries.as_slice(), view) {
        ([primary], Some(view)) => judge_standbys(rows, primary, view, want),
        ([], _) => {
            if let Some(first) = rows.first_mut() {
                first
                    .problems
                    .push("no writable primary in the cluster".into());
            }
        }
        ([_], None) => {}
        (many, _) => {
            for row in rows.iter_mut().filter(|r| r.role == LiveRole::Primary) {
                row.problems
                    .push(format!("one of {} writable primaries", many.len()));
            }
        }
    }
    for row in rows.iter_mut().filter(|r| !r.reachable) {
        row.problems.push("not reachable".into());
    }
    judge_majors(rows);
}

fn judge_standbys(rows: &mut [NodeStatus], primary: &str, view: &PrimaryView, want: &Expected) {
    // Judge against what the primary enforces now; say so when that is not
    // the configured value (a failover narrows it with ALTER SYSTEM).
    if view.enforced.as_ref() != want.configured {
        let shown = |s: Option<&SyncStandbyNames>| s.map(|s| s.to_string()).unwrap_or_default();
        if let Some(row) = rows.iter_mut().find(|r| r.node == primary) {
            row.notes.push(format!(
                "synchronous_standby_names is '{}', not the configured '{}' (cargo xtask setup-sync restores it)",
                shown(view.enforced.as_ref()),
                shown(want.configured)
            ));
        }
    }
    if let Some(why) = commits_wait(view) {
        if let Some(row) = rows.iter_mut().find(|r| r.node == primary) {
            row.problems.push(why);
        }
    }
    let connected: Vec<&str> = view
        .replicas
        .iter()
        .filter(|r| r.state == "streaming")
        .map(|r| r.name.as_str())
        .collect();
    let standbys: Vec<String> = rows
        .iter()
        .map(|r| r.node.clone())
        .filter(|n| n != primary)
        .collect();
    let standby_refs: Vec<&str> = standbys.iter().map(String::as_str).collect();
    let expected: HashMap<String, SyncState> =
        expected_states(view.enforced.as_ref(), &standby_refs, &connected)
            .into_iter()
            .collect();
    for row in rows.iter_mut().filter(|r| r.role != LiveRole::Primary) {
        row.expected_sync_state = expected.get(&row.node).copied();
        if let Some(r) = view.replicas.iter().find(|r| r.name == row.node) {
            row.sync_state = r.sync_state;
            row.lag_bytes = r.lag;
            if r.state != "streaming" {
                row.problems
                    .push(format!("replication state is {}", r.state));
            } else if !r.live() {
                row.problems.push(format!(
                    "no reply to the primary for {:.1} s (cut off? the primary drops it after wal_sender_timeout)",
                    r.reply_age_ms.unwrap_or(0) as f64 / 1000.0
                ));
            }
        } else if row.reachable {
            row.problems
                .push(format!("not connected to the primary {primary}"));
        }
        if want.slots {
            judge_slot(row, &view.slots);
        }
        if let (Some(got), Some(want)) = (row.sync_state, row.expected_sync_state) {
            if got != want {
                row.problems
                    .push(format!("sync_state {got}, expected {want}"));
            }
        }
    }
}

fn judge_slot(row: &mut NodeStatus, slots: &[(String, bool)]) {
    let slot = crate::model::slot_name(&row.node);
    let active = slots.iter().find(|(s, _)| *s == slot).map(|(_, a)| *a);
    row.slot = Some(slot.clone());
    row.slot_active = active;
    if active != Some(true) {
        row.problems.push(format!(
            "slot {slot} is {}",
            if active.is_some() {
                "inactive"
            } else {
                "missing"
            }
        ));
    }
}

/// Why synchronous commits on the primary wait now, if they do: fewer live
/// standbys named in its `synchronous_standby_names` than it needs. A
/// standby that streams but stopped replying counts as not live: the
/// primary keeps waiting on it until `wal_sender_timeout`.
pub fn commits_wait(view: &PrimaryView) -> Option<String> {
    let ssn = view.enforced.as_ref()?;
    let named_live: Vec<&str> = view
        .replicas
        .iter()
        .filter(|r| r.live() && ssn.matches(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    let need = ssn.num_sync as usize;
    let silent: Vec<&str> = view
        .replicas
        .iter()
        .filter(|r| r.state == "streaming" && !r.live() && ssn.matches(&r.name))
        .map(|r| r.name.as_str())
        .collect();
    let first_blocked = ssn.method == Method::First
        && view
            .replicas
            .iter()
            .any(|r| r.sync_state == Some(SyncState::Sync) && !r.live());
    if named_live.len() >= need && !first_blocked {
        return None;
    }
    let mut why = format!(
        "synchronous commits wait: '{ssn}' needs {need} live standby(s), {} live ({})",
        named_live.len(),
        if named_live.is_empty() {
            "none".to_string()
        } else {
            named_live.join(", ")
        }
    );
    if !silent.is_empty() {
        why.push_str(&format!(
            "; {} still counted as streaming until the primary's wal_sender_timeout",
            silent.join(", ")
        ));
    }
    Some(why)
}

/// One major across the cluster: a standby of another major cannot follow
/// its primary.
fn judge_majors(rows: &mut [NodeStatus]) {
    let major = |v: &str| v.split('.').next().unwrap_or(v).to_string();
    let primary_major = rows
        .iter()
        .find(|r| r.role == LiveRole::Primary)
        .and_then(|r| r.version.as_deref().map(major));
    if let Some(pm) = primary_major {
        for row in rows.iter_mut() {
            if let Some(v) = &row.version {
                if major(v) != pm {
                    row.problems
                        .push(format!("PostgreSQL {v}, but the primary runs {pm}"));
                }
            }
        }
    }
}

/// The table `status` prints.
pub fn table(rows: &[NodeStatus]) -> String {
    fn opt<T: std::fmt::Display>(o: &Option<T>) -> String {
        o.as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    }
    let line = |cells: [&str; 11]| {
        format!(
            "{:<18} {:<8} {:<8} {:<4} {:<12} {:<12} {:<12} {:>10} {:<10} {:<18} {}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            cells[6],
            cells[7],
            cells[8],
            cells[9],
            cells[10]
        )
    };
    let mut out = line([
        "NODE", "ROLE", "VERSION", "TL", "CURRENT", "RECEIVE", "REPLAY", "LAG", "SYNC", "SLOT",
        "PROBLEMS",
    ]);
    for r in rows {
        let slot = match (&r.slot, r.slot_active) {
            (Some(s), Some(true)) => format!("{s} (active)"),
            (Some(s), _) => format!("{s} (inactive)"),
            _ => "-".into(),
        };
        let problems = if r.problems.is_empty() {
            "ok".into()
        } else {
            r.problems.join("; ")
        };
        out.push_str(&line([
            &r.node,
            &r.role.to_string(),
            &opt(&r.version),
            &opt(&r.timeline),
            &opt(&r.current_lsn),
            &opt(&r.receive_lsn),
            &opt(&r.replay_lsn),
            &opt(&r.lag_bytes),
            &opt(&r.sync_state),
            &slot,
            &problems,
        ]));
    }
    for r in rows {
        for n in &r.notes {
            out.push_str(&format!("note: {}: {n}\n", r.node));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssn(s: &str) -> SyncStandbyNames {
        crate::syncrep::parse(s).unwrap().unwrap()
    }

    fn replica(name: &str, state: &str, sync: SyncState, reply: i64) -> Replica {
        Replica {
            name: name.into(),
            state: state.into(),
            sync_state: Some(sync),
            lag: Some(0),
            reply_age_ms: Some(reply),
            unflushed: Some(if reply > SILENT_AFTER_MS { 4096 } else { 0 }),
        }
    }

    fn rows(answers: &[(&str, Option<&str>)]) -> Vec<NodeStatus> {
        answers
            .iter()
            .map(|(n, a)| NodeStatus::from_probe(n, *a))
            .collect()
    }

    const PRIMARY: &str = "f|3|0/3000060||||15.8";
    const STANDBY: &str = "t|3||0/3000060|0/3000060|streaming,m,3|15.8";

    #[test]
    fn a_probe_answer_becomes_a_row() {
        let r = NodeStatus::from_probe("s1", Some(STANDBY));
        assert!(r.reachable);
        assert_eq!(r.role, LiveRole::Standby);
        assert_eq!(r.upstream.as_deref(), Some("m"));
        assert_eq!(r.timeline, Some(3));
        assert_eq!(r.receive_lsn, Some("0/3000060".parse().unwrap()));
        assert_eq!(r.written_lsn, None);
        // WAL written and not yet flushed counts for how far it reaches.
        let w = NodeStatus::from_probe(
            "s1",
            Some("t|3||0/3000060|0/3000000|streaming,m,3,0/3000100|15.8"),
        );
        assert_eq!(w.written_lsn, Some("0/3000100".parse().unwrap()));
        assert_eq!(w.wal_position(), Some("0/3000100".parse().unwrap()));
        assert_eq!(w.upstream.as_deref(), Some("m"));
        // Anything but the seven fields is a node that did not answer.
        assert!(!NodeStatus::from_probe("s1", Some("f|3")).reachable);
        assert!(!NodeStatus::from_probe("s1", None).reachable);
    }

    #[test]
    fn a_healthy_first_1_cluster_has_no_problem() {
        let mut r = rows(&[
            ("m", Some(PRIMARY)),
            ("s1", Some(STANDBY)),
            ("s2", Some(STANDBY)),
        ]);
        let want = ssn("FIRST 1 (s1, s2)");
        let view = PrimaryView {
            enforced: Some(want.clone()),
            replicas: vec![
                replica("s1", "streaming", SyncState::Sync, 10),
                replica("s2", "streaming", SyncState::Potential, 10),
            ],
            slots: vec![],
        };
        judge(
            &mut r,
            Some(&view),
            &Expected {
                configured: Some(&want),
                slots: false,
            },
        );
        assert!(healthy(&r), "{}", table(&r));
    }

    #[test]
    fn a_silent_sync_standby_says_why_commits_wait() {
        let mut r = rows(&[
            ("m", Some(PRIMARY)),
            ("s1", Some(STANDBY)),
            ("s2", Some(STANDBY)),
        ]);
        let want = ssn("FIRST 1 (s1, s2)");
        let view = PrimaryView {
            enforced: Some(want.clone()),
            replicas: vec![
                replica("s1", "streaming", SyncState::Sync, 9_000),
                replica("s2", "streaming", SyncState::Potential, 10),
            ],
            slots: vec![],
        };
        judge(
            &mut r,
            Some(&view),
            &Expected {
                configured: Some(&want),
                slots: false,
            },
        );
        let m = &r[0].problems;
        assert!(
            m.iter().any(|p| p.starts_with("synchronous commits wait")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|p| p.contains("s1 still counted as streaming")),
            "{m:?}"
        );
        assert!(r[1]
            .problems
            .iter()
            .any(|p| p.contains("no reply to the primary for 9.0 s")));
        // Under ANY 1 the live s2 is enough.
        let any = ssn("ANY 1 (s1, s2)");
        let view = PrimaryView {
            enforced: Some(any),
            ..view
        };
        assert_eq!(commits_wait(&view), None);
    }

    #[test]
    fn two_primaries_and_none_are_problems() {
        let mut r = rows(&[("m", Some(PRIMARY)), ("s1", Some(PRIMARY))]);
        judge(
            &mut r,
            None,
            &Expected {
                configured: None,
                slots: false,
            },
        );
        assert!(r.iter().all(|r| r
            .problems
            .iter()
            .any(|p| p == "one of 2 writable primaries")));
        let mut r = rows(&[("m", None), ("s1", Some(STANDBY))]);
        judge(
            &mut r,
            None,
            &Expected {
                configured: None,
                slots: false,
            },
        );
        assert!(r[0]
            .problems
            .contains(&"no writable primary in the cluster".to_string()));
        assert!(r[0].problems.contains(&"not reachable".to_string()));
    }

    #[test]
    fn a_missing_slot_and_another_major_are_problems() {
        let mut r = rows(&[
            ("m", Some(PRIMARY)),
            ("s1", Some("t|3||0/3000060|0/3000060|streaming,m,3|17.2")),
        ]);
        let view = PrimaryView {
            enforced: None,
            replicas: vec![replica("s1", "streaming", SyncState::Async, 10)],
            slots: vec![],
        };
        judge(
            &mut r,
            Some(&view),
            &Expected {
                configured: None,
                slots: true,
            },
        );
        let p = &r[1].problems;
        assert!(p.iter().any(|p| p.contains("is missing")), "{p:?}");
        assert!(
            p.iter()
                .any(|p| p == "PostgreSQL 17.2, but the primary runs 15"),
            "{p:?}"
        );
    }
}
