//! Failing over, written once for the `failover` command and the drill:
//! fence the failed primary, choose the standby that holds every
//! acknowledged commit (or refuse), promote it, re-point the others, narrow
//! `synchronous_standby_names` to the standbys connected now, and prove one
//! synchronous commit.

use super::container;
use super::journal::{self, Journal, Op, Resume};
use super::live;
use super::standby::{promote, repoint, Repointed};
use super::sync::{narrowed_sync_names, prove_sync_commit, set_sync_names, SyncNames};
use crate::cluster::Cluster;
use crate::secrets::Secrets;
use crate::wait::ms;
use anyhow::{bail, Result};
pub use cluster_config::live::Choice;
use cluster_config::live::{Ask, Candidate, LiveRole, Lsn, SyncState};
use cluster_config::names::NodeName;
use cluster_config::syncrep::SyncStandbyNames;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// What a failover is asked to do.
pub struct Request<'a> {
    /// The failed or abandoned primary: fenced before anything is promoted.
    pub fence: Vec<String>,
    /// Every node known down (the fenced ones included).
    pub down: BTreeSet<String>,
    /// `sync_state` of each standby when the primary failed, when known
    /// (the drill reads it just before the fault; the `failover` command
    /// reads it from a primary that is still reachable).
    pub states: Option<Vec<(String, SyncState)>>,
    /// The `synchronous_standby_names` the failed primary enforced.
    pub enforced: Option<SyncStandbyNames>,
    /// `--to`: the standby the user wants promoted.
    pub to: Option<&'a NodeName>,
    /// `--allow-data-loss`: promote even when no reachable standby is
    /// guaranteed to hold every acknowledged commit.
    pub allow_data_loss: bool,
    pub timeout: Duration,
    /// Called with the new primary's name once it accepts writes, while
    /// the other standbys are still being re-pointed (the drill's writer
    /// moves over then: its first commits wait for a standby, not for the
    /// rest of the failover).
    pub on_promoted: Option<&'a (dyn Fn(&str) + Sync)>,
}

/// What a failover did, with when each step ended.
#[derive(Debug, Clone)]
pub struct Done {
    pub choice: Choice,
    pub timeline: u32,
    pub promoted_at: Instant,
    /// Reading every node's state and choosing; fencing (and the
    /// positions settling); promoting.
    pub steps_ms: [u64; 3],
    pub repoint: Duration,
    /// Standbys that could not follow the new primary and were re-cloned.
    pub recloned: Vec<String>,
    pub sync_names: String,
    pub sync_commit_ms: Option<u64>,
}

/// Chooses the standby to promote among the reachable ones: the live
/// state read here, the decision made by [`cluster_config::live::choose`].
pub fn choose(c: &Cluster, req: &Request) -> Result<Choice> {
    let (candidates, _) = candidates(c, req)?;
    decide(c, req, &candidates)
}

/// The reachable standbys with how far their WAL reaches, and those of
/// them whose WAL receiver is still streaming (WAL may still be arriving).
fn candidates(c: &Cluster, req: &Request) -> Result<(Vec<Candidate>, Vec<String>)> {
    // Only the nodes that may be promoted are read: a failed primary that
    // is frozen would hold the choice for the connection deadline.
    let alive: Vec<&str> = c
        .topology()
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| !req.down.contains(*n) && !req.fence.iter().any(|f| f == n))
        .collect();
    let rows = live::probe_rows(c, &alive)?;
    let standbys = rows.iter().filter(|r| r.role == LiveRole::Standby);
    let candidates = standbys
        .clone()
        .map(|r| Candidate {
            node: r.node.clone(),
            received: r.wal_position().unwrap_or(Lsn(0)),
        })
        .collect();
    let streaming = standbys
        .filter(|r| r.wal_receiver.as_deref() == Some("streaming"))
        .map(|r| r.node.clone())
        .collect();
    Ok((candidates, streaming))
}

/// [`cluster_config::live::choose`] over `candidates`.
fn decide(c: &Cluster, req: &Request, candidates: &[Candidate]) -> Result<Choice> {
    // Every node but the failed primary was a standby of it (a primary
    // ignores its own name in synchronous_standby_names).
    let standbys: Vec<&str> = c
        .topology()
        .nodes
        .iter()
        .map(|n| n.name())
        .filter(|n| !req.fence.iter().any(|f| f == n))
        .collect();
    cluster_config::live::choose(&Ask {
        enforced: req.enforced.as_ref(),
        standbys: &standbys,
        states: req.states.as_deref(),
        candidates,
        to: req.to.map(NodeName::as_str),
        allow_data_loss: req.allow_data_loss,
    })
    .map_err(|r| anyhow::anyhow!("{r}"))
}

/// How long the standbys' positions may take to hold still once the failed
/// primary is fenced.
const SETTLE: Duration = Duration::from_secs(3);

/// The choice, checked once the failed primary is fenced and sends
/// nothing more. WAL it sent just before may still have been on its way
/// into a standby when the choice was made (in the socket, or written and
/// not yet flushed), and promoting a standby with less WAL than another
/// leaves that other one unable to follow: its WAL goes past the point
/// where the new timeline forks, and it must be re-cloned. So the positions
/// are read again until they hold still (a standby whose WAL receiver has
/// stopped has flushed all it got; one still streaming must read the same
/// twice), for at most [`SETTLE`]. If another standby is now further ahead
/// and holds every acknowledged commit, the choice moves to it, recorded in
/// the journal before anything is promoted. `--to` is kept as asked.
fn settle(c: &Cluster, req: &Request, choice: Choice, j: &mut Journal) -> Result<Choice> {
    if req.to.is_some() || c.runner().dry_run() {
        return Ok(choice);
    }
    let mut last: Option<Vec<Candidate>> = None;
    let settled = c.poll("the standbys' WAL positions to hold still", SETTLE, || {
        let (now, streaming) = candidates(c, req)?;
        let still = streaming.is_empty() || last.as_ref() == Some(&now);
        last = Some(now.clone());
        Ok(still.then_some(now))
    });
    let now = match settled {
        Ok(now) => now,
        Err(e) if e.downcast_ref::<crate::wait::Stop>().is_some() => return Err(e),
        Err(e) => {
            say!("{e:#}; choosing from the last positions read");
            last.unwrap_or_default()
        }
    };
    // Only a standby now strictly further ahead than the one chosen moves
    // the choice; among equals it stays.
    let position = |node: &str| now.iter().find(|c| c.node == node).map(|c| c.received);
    let again = match decide(c, req, &now) {
        Ok(again)
            if again.guaranteed
                && again.node != choice.node
                && position(&again.node) > position(&choice.node) =>
        {
            again
        }
        _ => return Ok(choice),
    };
    say!(
        "{} received more WAL after {} was chosen: the choice moves to it",
        again.node,
        choice.node
    );
    j.to = again.node.clone();
    journal::begin(c, j)?;
    Ok(again)
}

/// The whole failover: the failed primary is fenced first, so it cannot
/// take a write if it returns.
/// The choice and the journal that records it come before the first
/// change, so a run killed at any later point is finished by the next
/// `failover` ([`incident`]) with the same choice.
pub fn run(c: &Cluster, secrets: &Secrets, req: &Request) -> Result<Done> {
    let t0 = Instant::now();
    let choice = choose(c, req)?;
    let j = Journal {
        op: Op::Failover,
        from: req.fence.join(","),
        to: choice.node.clone(),
        finished: false,
    };
    journal::begin(c, &j)?;
    carry_out(c, secrets, req, choice, t0, j)
}

/// Fence, settle the choice, promote (unless the chosen node already
/// accepts writes: a run that was interrupted after promoting it),
/// re-point, narrow, prove; the journal ends with it.
fn carry_out(
    c: &Cluster,
    secrets: &Secrets,
    req: &Request,
    choice: Choice,
    t0: Instant,
    mut j: Journal,
) -> Result<Done> {
    let t1 = Instant::now();
    for node in &req.fence {
        container::fence(c, node)?;
    }
    let writable = !c.runner().dry_run()
        && c.probe(&choice.node, "SELECT pg_is_in_recovery()")?
            .as_deref()
            == Some("f");
    let choice = if writable {
        choice
    } else {
        settle(c, req, choice, &mut j)?
    };
    let t2 = Instant::now();
    let timeline = if writable {
        say!("{} already accepts writes: it was promoted", choice.node);
        live::timeline(c, &choice.node)?
    } else {
        say!("promoting {}: {}", choice.node, choice.why);
        promote(c, &choice.node, req.timeout)?
    };
    let promoted_at = Instant::now();
    if let Some(hook) = req.on_promoted {
        hook(&choice.node);
    }
    let started = Instant::now();
    let others: Vec<String> = c
        .topology()
        .nodes
        .iter()
        .map(|n| n.name().to_string())
        .filter(|n| *n != choice.node && !req.down.contains(n))
        .collect();
    // Side by side: each standby's walreceiver restarts on its own. A dry
    // run keeps the plan in order.
    let results: Vec<Result<Repointed>> = if c.runner().dry_run() {
        others
            .iter()
            .map(|s| repoint(c, s, &choice.node, secrets, req.timeout))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = others
                .iter()
                .map(|s| scope.spawn(|| repoint(c, s, &choice.node, secrets, req.timeout)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("re-pointing panicked")))
                })
                .collect()
        })
    };
    let mut recloned = Vec::new();
    for (s, r) in others.iter().zip(results) {
        let how = r.map_err(|e| e.context(format!("re-pointing {s} to {}", choice.node)))?;
        if how == Repointed::Recloned {
            recloned.push(s.clone());
        }
    }
    let repoint = started.elapsed();
    let names = narrowed_sync_names(c, &choice.node)?;
    set_sync_names(c, &choice.node, &names)?;
    let sync_commit_ms = if names == SyncNames::Narrowed(None) {
        None
    } else {
        Some(prove_sync_commit(c, &choice.node, Duration::from_secs(15))?)
    };
    journal::end(c, &j)?;
    Ok(Done {
        choice,
        timeline,
        promoted_at,
        steps_ms: [ms(t1 - t0), ms(t2 - t1), ms(promoted_at - t2)],
        repoint,
        recloned,
        sync_names: names.value().unwrap_or_default(),
        sync_commit_ms,
    })
}

/// A failover as the `failover` command runs it: the live state says which
/// node failed (a writable one to abandon, or the one the standbys followed
/// that is down) and what it enforced; then [`run`]. Returns the failed
/// primary and what was done.
pub fn incident(
    c: &Cluster,
    to: Option<&NodeName>,
    abandon: Option<&NodeName>,
    allow_data_loss: bool,
    timeout: Duration,
) -> Result<Option<(String, Done)>> {
    let secrets = c.secrets()?;
    match journal::check(c, Op::Failover)? {
        Resume::Interrupted(j) => return finish_interrupted(c, &secrets, j, to, timeout).map(Some),
        Resume::Finished(j)
            if abandon.is_none()
                && !c.runner().dry_run()
                && c.probe(&j.to, "SELECT pg_is_in_recovery()")?.as_deref() == Some("f") =>
        {
            say!(
                "the last failover, from {} to {}, made every change; {} is the primary: nothing to do",
                j.from,
                j.to,
                j.to
            );
            return Ok(None);
        }
        _ => {}
    }
    let rows = live::collect(c)?;
    let down: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Down)
        .map(|r| r.node.clone())
        .collect();
    let (old, states, enforced) = failed_primary(c, &rows, &down, abandon)?;
    if let Some(a) = abandon.filter(|a| a.as_str() != old) {
        bail!("--abandon {a}: the primary to fail over from is {old}; nothing was changed");
    }
    if to.map(NodeName::as_str) == Some(old.as_str()) {
        bail!("--to {old}: it is the primary being failed over from; name a standby");
    }
    let mut all_down = down.clone();
    all_down.insert(old.clone());
    let done = run(
        c,
        &secrets,
        &Request {
            fence: vec![old.clone()],
            down: all_down,
            states,
            enforced,
            to,
            allow_data_loss,
            on_promoted: None,
            timeout,
        },
    )?;
    Ok(Some((old, done)))
}

/// The primary to fail over from, and what it enforced and its standbys'
/// states when known: a reachable writable one only when `abandon` names
/// it; else the node the standbys followed, which is down.
fn failed_primary(
    c: &Cluster,
    rows: &[live::NodeStatus],
    down: &BTreeSet<String>,
    abandon: Option<&NodeName>,
) -> Result<(String, States, Option<SyncStandbyNames>)> {
    let primaries: Vec<&str> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Primary)
        .map(|r| r.node.as_str())
        .collect();
    Ok(match primaries.as_slice() {
        [p] if abandon.map(NodeName::as_str) != Some(*p) => bail!(
            "{p} is reachable and accepts writes: there is nothing to fail over from, and nothing was changed. \
             If it must be abandoned (clients cannot reach it, or it misbehaves), run `failover --abandon {p}`; \
             for a planned move without loss, `switchover --to <standby>`"
        ),
        [p] => {
            // Reachable but to be abandoned: what it enforces now is known.
            let p = p.to_string();
            let states = live::sync_states(rows);
            let enforced = live::enforced_sync_names(c, &p)?;
            say!("{p} is reachable and writable: it will be fenced and abandoned");
            (p, Some(states), enforced)
        }
        [] => {
            let old = former_primary(c, rows, down)?;
            say!(
                "{old} is down; the standbys' states when it failed are unknown, so the worst case is assumed"
            );
            (old, None, live::configured_sync_names(c.topology()))
        }
        many => bail!(
            "{} nodes accept writes ({}): stop all but one before anything else",
            many.len(),
            many.join(", ")
        ),
    })
}

/// Each standby's `sync_state` when the primary failed, when known.
type States = Option<Vec<(String, SyncState)>>;

/// Finishes a failover that a killed run left half done, with the choice
/// it recorded: the failed primary fenced (again), the chosen standby
/// promoted if it is not yet, the others re-pointed, the list narrowed.
fn finish_interrupted(
    c: &Cluster,
    secrets: &Secrets,
    j: Journal,
    to: Option<&NodeName>,
    timeout: Duration,
) -> Result<(String, Done)> {
    if let Some(to) = to.filter(|t| t.as_str() != j.to) {
        bail!(
            "--to {to}: the interrupted failover chose {}; run `failover` without --to to finish it",
            j.to
        );
    }
    let rows = live::collect(c)?;
    let target = rows.iter().find(|r| r.node == j.to);
    if target.is_none_or(|r| !r.reachable) && !c.runner().dry_run() {
        bail!(
            "{}, which the interrupted failover chose, is not reachable: start its container again (docker start) and run `failover` again",
            j.to
        );
    }
    let fence: Vec<String> = j.from.split(',').map(str::to_string).collect();
    let mut down: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.role == LiveRole::Down)
        .map(|r| r.node.clone())
        .collect();
    down.extend(fence.iter().cloned());
    let req = Request {
        fence: fence.clone(),
        down,
        states: None,
        enforced: live::configured_sync_names(c.topology()),
        to: None,
        allow_data_loss: false,
        on_promoted: None,
        timeout,
    };
    let choice = Choice {
        node: j.to.clone(),
        why: "the choice of the interrupted failover".into(),
        guaranteed: true,
    };
    let from = j.from.clone();
    let done = carry_out(c, secrets, &req, choice, Instant::now(), j)?;
    Ok((from, done))
}

/// The primary that failed: the node the reachable standbys were following,
/// when it is down.
fn former_primary(
    c: &Cluster,
    rows: &[live::NodeStatus],
    down: &BTreeSet<String>,
) -> Result<String> {
    let mut upstreams: BTreeSet<String> = BTreeSet::new();
    for r in rows.iter().filter(|r| r.role == LiveRole::Standby) {
        let ci = c.sql(&r.node, "SHOW primary_conninfo")?;
        if let Ok(pairs) = cluster_config::validate::parse_conninfo(&ci) {
            if let Some((_, host)) = pairs.into_iter().find(|(k, _)| k == "host") {
                upstreams.insert(host);
            }
        }
    }
    let failed: Vec<&String> = upstreams.iter().filter(|u| down.contains(*u)).collect();
    match failed.as_slice() {
        [one] => Ok(one.to_string()),
        [] => bail!(
            "no primary is reachable, and the standbys follow no node that is down (they follow: {}); nothing to fail over from",
            upstreams.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
        many => bail!(
            "the standbys follow different nodes that are down ({}); fail over by hand with --to after checking them",
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Recording;
    use crate::testing::{cluster, Server, Servers};

    const FIRST1: &str = "FIRST 1 (\"slave1-db\", \"slave2-db\", \"master-db\")";

    fn request(to: Option<&NodeName>) -> Request<'_> {
        Request {
            fence: vec!["master-db".into()],
            down: ["master-db".to_string()].into(),
            states: None,
            enforced: cluster_config::syncrep::parse(FIRST1).unwrap(),
            to,
            allow_data_loss: false,
            timeout: Duration::from_secs(5),
            on_promoted: None,
        }
    }

    fn servers(slave1: Option<&str>, slave2: Option<&str>) -> Servers {
        let s = Servers::default();
        let mut nodes = s.nodes.lock().unwrap();
        if let Some(l) = slave1 {
            nodes.insert("slave1-db".into(), Server::standby(l, "master-db"));
        }
        if let Some(l) = slave2 {
            nodes.insert("slave2-db".into(), Server::standby(l, "master-db"));
        }
        drop(nodes);
        s
    }

    #[test]
    fn the_primary_gone_the_furthest_standby_is_chosen() {
        let rec = Recording::default();
        let s = servers(Some("0/5000100"), Some("0/5000000"));
        let c = cluster(&rec, &s);
        let choice = choose(&c, &request(None)).unwrap();
        assert_eq!(choice.node, "slave1-db");
        assert!(choice.guaranteed, "{}", choice.why);
        // Choosing changes nothing.
        assert!(s.changes.lock().unwrap().is_empty());
    }

    #[test]
    fn a_choice_that_may_lose_commits_is_refused_with_nothing_changed() {
        let rec = Recording::default();
        // The synchronous standby is gone with the primary: slave2 may lack
        // acknowledged commits.
        let s = servers(None, Some("0/5000000"));
        let c = cluster(&rec, &s);
        let err = choose(&c, &request(None)).unwrap_err().to_string();
        assert!(
            err.contains("refusing to promote slave2-db") && err.contains("--allow-data-loss"),
            "{err}"
        );
        assert!(s.changes.lock().unwrap().is_empty());
        // --to a standby behind the one that holds everything: refused too.
        let s = servers(Some("0/5000100"), Some("0/5000000"));
        let c = cluster(&rec, &s);
        let slave2: NodeName = "slave2-db".parse().unwrap();
        let err = choose(&c, &request(Some(&slave2))).unwrap_err().to_string();
        assert!(err.contains("has received only 0/5000000"), "{err}");
        let mut forced = request(Some(&slave2));
        forced.allow_data_loss = true;
        let choice = choose(&c, &forced).unwrap();
        assert!(!choice.guaranteed && choice.why.starts_with("--allow-data-loss"));
    }

    /// slave1 at 0/5000100 and slave2 at 0/5000000 when first read; slave2
    /// reaches `at` on the next read (WAL still arriving after the choice).
    fn slave1_ahead_then_slave2_at(at: &str) -> Servers {
        let s = servers(Some("0/5000100"), Some("0/5000000"));
        s.nodes
            .lock()
            .unwrap()
            .get_mut("slave2-db")
            .unwrap()
            .arriving = vec![at.into()];
        s
    }

    #[test]
    fn wal_arriving_after_the_choice_moves_it_before_anything_is_promoted() {
        let rec = Recording::default();
        // slave1 is ahead when the choice is made; the rest of what the
        // failed primary sent then reaches slave2, which ends further ahead.
        let s = slave1_ahead_then_slave2_at("0/5000200");
        let c = cluster(&rec, &s);
        let done = run(&c, &crate::secrets::Secrets::dry_run(), &request(None));
        let changes = s.changes.lock().unwrap().clone();
        let done = done.unwrap_or_else(|e| panic!("{e:#}\n{changes:?}"));
        assert_eq!(done.choice.node, "slave2-db", "{}", done.choice.why);
        assert!(done.choice.guaranteed);
        let promoted: Vec<&String> = changes
            .iter()
            .filter(|l| l.contains("pg_promote"))
            .collect();
        assert_eq!(promoted.len(), 1, "{changes:?}");
        assert!(promoted[0].starts_with("slave2-db: "), "{changes:?}");
        // slave1, now behind, follows slave2; nothing was re-cloned.
        assert!(
            changes
                .iter()
                .any(|l| l.starts_with("slave1-db: ALTER SYSTEM SET primary_conninfo")),
            "{changes:?}"
        );
        assert!(done.recloned.is_empty());
        // The journal named the new choice before it finished: a run killed
        // in between finishes with slave2.
        let journals: Vec<String> = rec
            .files
            .lock()
            .unwrap()
            .iter()
            .filter_map(|f| match f {
                crate::runner::FileOp::Write { path, contents, .. }
                    if path.ends_with("operation.toml") =>
                {
                    Some(String::from_utf8_lossy(contents).into_owned())
                }
                _ => None,
            })
            .collect();
        let unfinished: Vec<&String> = journals
            .iter()
            .filter(|j| j.contains("finished = false"))
            .collect();
        assert_eq!(unfinished.len(), 2, "{journals:?}");
        assert!(unfinished[0].contains("to = \"slave1-db\""), "{journals:?}");
        assert!(unfinished[1].contains("to = \"slave2-db\""), "{journals:?}");
    }

    #[test]
    fn a_standby_that_only_catches_up_leaves_the_choice_alone() {
        let rec = Recording::default();
        // slave2, the synchronous one, reaches slave1's position after the
        // choice: equal, and the choice stays (among equals the synchronous
        // one would be chosen, but a tie-break alone never moves it).
        let s = slave1_ahead_then_slave2_at("0/5000100");
        let c = cluster(&rec, &s);
        let mut req = request(None);
        req.states = Some(vec![
            ("slave1-db".into(), SyncState::Potential),
            ("slave2-db".into(), SyncState::Sync),
        ]);
        let done = run(&c, &crate::secrets::Secrets::dry_run(), &req).unwrap();
        assert_eq!(done.choice.node, "slave1-db", "{}", done.choice.why);
    }

    #[test]
    fn the_whole_failover_promotes_repoints_and_narrows() {
        let rec = Recording::default();
        let s = servers(Some("0/5000100"), Some("0/5000000"));
        let c = cluster(&rec, &s);
        let done = run(&c, &crate::secrets::Secrets::dry_run(), &request(None));
        let changes = s.changes.lock().unwrap().clone();
        let done = done.unwrap_or_else(|e| panic!("{e:#}\n{changes:?}\n{:?}", rec.lines()));
        // The old primary was fenced (standby.signal and the fence marker
        // in its data folder, so a restart is read-only); the promotion
        // came before the re-point.
        let files: Vec<String> = rec
            .files
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.to_string())
            .collect();
        assert!(
            files
                .iter()
                .any(|f| f.contains("postgres_data_master/standby.signal"))
                && files
                    .iter()
                    .any(|f| f.contains("postgres_data_master/pgrepl.fenced")),
            "{files:?}"
        );
        let promote = changes
            .iter()
            .position(|l| l.contains("pg_promote"))
            .unwrap();
        let repoint = changes
            .iter()
            .position(|l| l.starts_with("slave2-db: ALTER SYSTEM SET primary_conninfo"))
            .unwrap();
        assert!(promote < repoint, "{changes:?}");
        assert_eq!(done.choice.node, "slave1-db");
        // Narrowed to the standby connected now: never waiting for the
        // failed primary.
        assert_eq!(done.sync_names, "FIRST 1 (\"slave2-db\")", "{changes:?}");
        assert!(!done.sync_names.contains("master-db"));
    }
}
