//! The drill's accounting: which acknowledged ids reached the new primary,
//! which were lost or duplicated, and what became of the uncertain ones and
//! of the commits whose synchronous wait was cancelled. Pure: the ids on the
//! new primary are read by the caller.

use super::writer::{Event, Outcome, DRILL_TABLE};
use crate::cluster::Cluster;
use crate::pg::sql::literal;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The accounts of one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub acknowledged: usize,
    pub lost_ids: Vec<i64>,
    pub duplicated_ids: Vec<i64>,
    pub uncertain: usize,
    pub uncertain_landed: usize,
    /// Committed locally with the cancelled-wait warning: never counted as
    /// acknowledged.
    pub cancelled_wait: usize,
    pub cancelled_wait_survived: usize,
}

impl Ledger {
    /// `present` maps each id found on the new primary to how often.
    pub fn account(events: &[Event], present: &BTreeMap<i64, usize>) -> Ledger {
        let ids = |o: Outcome| -> Vec<i64> {
            events
                .iter()
                .filter(|e| e.outcome == o)
                .map(|e| e.id)
                .collect()
        };
        let (acked, cancelled) = (ids(Outcome::Acknowledged), ids(Outcome::CancelledWait));
        // A refused statement did not land; it is accounted with the
        // uncertain ones all the same, so a landed one would show.
        let uncertain: Vec<i64> = events
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Uncertain | Outcome::Refused))
            .map(|e| e.id)
            .collect();
        let landed = |v: &[i64]| v.iter().filter(|id| present.contains_key(id)).count();
        Ledger {
            acknowledged: acked.len(),
            lost_ids: acked
                .iter()
                .copied()
                .filter(|id| !present.contains_key(id))
                .collect(),
            duplicated_ids: present
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(id, _)| *id)
                .collect(),
            uncertain: uncertain.len(),
            uncertain_landed: landed(&uncertain),
            cancelled_wait: cancelled.len(),
            cancelled_wait_survived: landed(&cancelled),
        }
    }
}

/// The longest time the writer went without an acknowledged commit around
/// a fault: from the last commit acknowledged before `fault` (or `fault`
/// itself when there was none) to `end`, the longest gap between
/// consecutive acknowledged commits, the tail to `end` included.
pub fn write_stall(events: &[Event], fault: Instant, end: Instant) -> Duration {
    let mut acked: Vec<Instant> = events
        .iter()
        .filter(|e| e.outcome == Outcome::Acknowledged)
        .map(|e| e.at)
        .collect();
    acked.sort_unstable();
    let start = acked
        .iter()
        .copied()
        .filter(|t| *t <= fault)
        .max()
        .unwrap_or(fault);
    let mut prev = start;
    let mut worst = Duration::ZERO;
    for t in acked.into_iter().filter(|t| *t > start) {
        worst = worst.max(t - prev);
        prev = t;
    }
    worst.max(end.saturating_duration_since(prev))
}

/// The ids of one round found on `primary`, with their counts.
pub fn present_ids(
    c: &Cluster,
    primary: &str,
    run_id: &str,
    round: u32,
) -> Result<BTreeMap<i64, usize>> {
    let rows = c.sql(
        primary,
        &format!(
            "SELECT id FROM {DRILL_TABLE} WHERE run = {} AND round = {round}",
            literal(run_id)
        ),
    )?;
    let mut present: BTreeMap<i64, usize> = BTreeMap::new();
    for l in rows.lines() {
        *present
            .entry(l.trim().parse().context("reading ids")?)
            .or_default() += 1;
    }
    Ok(present)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, outcome: Outcome) -> Event {
        Event {
            id,
            outcome,
            at: Instant::now(),
            port: 1,
            latency: std::time::Duration::from_millis(2),
            timeline: Some(1),
        }
    }

    #[test]
    fn accounts_every_kind_of_attempt() {
        let events = [
            ev(1, Outcome::Acknowledged),
            ev(2, Outcome::Acknowledged),
            ev(3, Outcome::Acknowledged),
            ev(4, Outcome::Uncertain),
            ev(5, Outcome::Uncertain),
            ev(6, Outcome::CancelledWait),
            ev(7, Outcome::CancelledWait),
        ];
        let present: BTreeMap<i64, usize> = [(1, 1), (2, 2), (4, 1), (6, 1)].into_iter().collect();
        let l = Ledger::account(&events, &present);
        assert_eq!(l.acknowledged, 3);
        assert_eq!(l.lost_ids, [3]);
        assert_eq!(l.duplicated_ids, [2]);
        assert_eq!((l.uncertain, l.uncertain_landed), (2, 1));
        assert_eq!((l.cancelled_wait, l.cancelled_wait_survived), (2, 1));
    }

    #[test]
    fn the_stall_is_the_longest_gap_after_the_last_commit_before_the_fault() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let e = |id, ms, o| Event {
            at: at(ms),
            ..ev(id, o)
        };
        let events = [
            e(1, 0, Outcome::Acknowledged),
            e(2, 100, Outcome::Acknowledged),
            // The fault at 150; an uncertain attempt does not end a stall.
            e(3, 400, Outcome::Uncertain),
            e(4, 900, Outcome::Acknowledged),
            e(5, 950, Outcome::Acknowledged),
        ];
        assert_eq!(
            write_stall(&events, at(150), at(960)),
            Duration::from_millis(800)
        );
        // Writes that never resumed: the stall runs to the end.
        assert_eq!(
            write_stall(&events[..3], at(150), at(2000)),
            Duration::from_millis(1900)
        );
        // No commit before the fault: counted from the fault.
        assert_eq!(
            write_stall(&events[3..], at(150), at(960)),
            Duration::from_millis(750)
        );
    }

    #[test]
    fn a_clean_round_loses_nothing() {
        let events = [ev(10, Outcome::Acknowledged), ev(11, Outcome::Uncertain)];
        let present: BTreeMap<i64, usize> = [(10, 1)].into_iter().collect();
        let l = Ledger::account(&events, &present);
        assert!(l.lost_ids.is_empty() && l.duplicated_ids.is_empty());
        assert_eq!(l.uncertain_landed, 0);
    }
}
