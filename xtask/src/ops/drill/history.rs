//! `failover-drill --history FILE`: every operation of the drill as JSON
//! Lines, close to Jepsen's history format, so a checker that knows nothing
//! of this tool can re-check a run without its ledger.
//!
//! One object per line, in time order within a round:
//!
//! - `index`: position in the file, from 0;
//! - `round`: the drill round;
//! - `time`: nanoseconds since the drill started (one monotonic clock);
//! - `process`: the writer's process number, or `"nemesis"` for the faults
//!   and the failover's steps. As in Jepsen, a process whose operation ended
//!   `info` is never used again: the next operation gets a new number;
//! - `type`: `invoke`, then one of `ok` (acknowledged: the commit returned
//!   success), `fail` (refused before anything was written), `info`
//!   (unknown: the connection broke, or the synchronous wait was cancelled,
//!   so it may or may not have landed); the nemesis writes `info` only;
//! - `f`: `write` (one row with id `value`), `read` (the ids the new primary
//!   holds for the round, `value` a list with any duplicates), or a nemesis
//!   step (`fault`, `promoted`, `healed`);
//! - `node` and `timeline`: where the operation ran, and the timeline the
//!   server answered with (writes: the row's own; the read: the primary's);
//! - `error`: for `fail` and `info`, what happened.
//!
//! The property to check: every `ok` write's value appears in its round's
//! `read` exactly once, and no `fail` write's value appears at all.

use super::writer::{Event, Outcome};
use serde_json::{json, Value};
use std::time::Instant;

/// A nemesis step of a round.
#[derive(Debug, Clone)]
pub struct Nemesis {
    pub at: Instant,
    pub f: &'static str,
    pub value: Value,
}

/// The final read of a round on the primary.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub node: String,
    pub timeline: u32,
    pub ids: Vec<i64>,
    pub invoked: Option<Instant>,
    pub answered: Option<Instant>,
}

/// What a round contributes to the history.
#[derive(Debug, Clone, Default)]
pub struct RoundOps {
    pub writes: Vec<Event>,
    pub nemesis: Vec<Nemesis>,
    pub read: Option<Read>,
}

/// Numbers lines and processes across a whole run.
pub struct History {
    origin: Instant,
    index: u64,
    process: u64,
}

impl History {
    pub fn new(origin: Instant) -> History {
        History {
            origin,
            index: 0,
            process: 0,
        }
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_nanos() as u64
    }

    /// The lines of one round, in time order; `node_of` names the node
    /// behind a published port.
    pub fn round(
        &mut self,
        round: u32,
        ops: &RoundOps,
        node_of: &dyn Fn(u16) -> String,
    ) -> Vec<String> {
        // (time, order within the same instant, object)
        let mut timed: Vec<(Instant, u8, Value)> = Vec::new();
        for e in &ops.writes {
            let node = node_of(e.port);
            let (kind, error) = match e.outcome {
                Outcome::Acknowledged => ("ok", None),
                Outcome::Refused => ("fail", Some("refused: read-only server")),
                Outcome::Uncertain => (
                    "info",
                    Some("no answer: connection lost or statement failed"),
                ),
                Outcome::CancelledWait => (
                    "info",
                    Some("committed locally, synchronous wait cancelled: not acknowledged"),
                ),
            };
            let process = self.process;
            if kind == "info" {
                self.process += 1;
            }
            timed.push((
                e.sent(),
                0,
                json!({"process": process, "type": "invoke", "f": "write", "value": e.id, "node": node}),
            ));
            let mut done = json!({"process": process, "type": kind, "f": "write", "value": e.id, "node": node});
            if let Some(t) = e.timeline {
                done["timeline"] = json!(t);
            }
            if let Some(err) = error {
                done["error"] = json!(err);
            }
            timed.push((e.at, 1, done));
        }
        for n in &ops.nemesis {
            timed.push((
                n.at,
                2,
                json!({"process": "nemesis", "type": "info", "f": n.f, "value": n.value}),
            ));
        }
        if let Some(r) = &ops.read {
            let process = self.process;
            let (Some(invoked), Some(answered)) = (r.invoked, r.answered) else {
                return self.number(round, timed);
            };
            timed.push((
                invoked,
                3,
                json!({"process": process, "type": "invoke", "f": "read", "value": null, "node": r.node}),
            ));
            timed.push((
                answered,
                4,
                json!({"process": process, "type": "ok", "f": "read", "value": r.ids, "node": r.node, "timeline": r.timeline}),
            ));
        }
        self.number(round, timed)
    }

    fn number(&mut self, round: u32, mut timed: Vec<(Instant, u8, Value)>) -> Vec<String> {
        timed.sort_by_key(|a| (a.0, a.1));
        timed
            .into_iter()
            .map(|(at, _, mut v)| {
                v["index"] = json!(self.index);
                v["round"] = json!(round);
                v["time"] = json!(self.ns(at));
                self.index += 1;
                v.to_string()
            })
            .collect()
    }
}

/// What a reading of history lines alone finds: ids acknowledged but
/// missing from their round's read, read more than once, or refused but
/// present. (The end-to-end tests re-check real runs with their own
/// reader of the format; this one checks the writer here.)
#[cfg(test)]
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Check {
    pub ok_writes: usize,
    pub lost: Vec<i64>,
    pub duplicated: Vec<i64>,
    pub failed_but_present: Vec<i64>,
    pub rounds_read: usize,
}

#[cfg(test)]
pub fn check(lines: &str) -> Result<Check, String> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut ok: BTreeMap<u64, BTreeSet<i64>> = BTreeMap::new();
    let mut failed: BTreeMap<u64, BTreeSet<i64>> = BTreeMap::new();
    let mut reads: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for (i, line) in lines.lines().enumerate() {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let round = v["round"]
            .as_u64()
            .ok_or(format!("line {}: no round", i + 1))?;
        match (v["type"].as_str(), v["f"].as_str()) {
            (Some("ok"), Some("write")) => {
                ok.entry(round)
                    .or_default()
                    .insert(v["value"].as_i64().unwrap_or(-1));
            }
            (Some("fail"), Some("write")) => {
                failed
                    .entry(round)
                    .or_default()
                    .insert(v["value"].as_i64().unwrap_or(-1));
            }
            (Some("ok"), Some("read")) => {
                let ids = v["value"]
                    .as_array()
                    .ok_or(format!("line {}: a read without a list", i + 1))?
                    .iter()
                    .filter_map(Value::as_i64)
                    .collect();
                reads.insert(round, ids);
            }
            _ => {}
        }
    }
    let mut c = Check {
        rounds_read: reads.len(),
        ..Check::default()
    };
    for (round, ids) in &ok {
        let read = reads.get(round).map(Vec::as_slice).unwrap_or(&[]);
        c.ok_writes += ids.len();
        c.lost.extend(ids.iter().filter(|id| !read.contains(id)));
    }
    for (round, read) in &reads {
        let mut seen = BTreeSet::new();
        for id in read {
            if !seen.insert(id) {
                c.duplicated.push(*id);
            }
            if failed.get(round).is_some_and(|f| f.contains(id)) {
                c.failed_but_present.push(*id);
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ev(id: i64, outcome: Outcome, at: Instant) -> Event {
        Event {
            id,
            outcome,
            at,
            port: 5432,
            latency: Duration::from_millis(1),
            timeline: Some(3),
        }
    }

    #[test]
    fn a_round_becomes_ordered_lines_an_outside_check_agrees_with() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let ops = RoundOps {
            writes: vec![
                ev(1, Outcome::Acknowledged, at(10)),
                ev(2, Outcome::Uncertain, at(20)),
                ev(3, Outcome::Refused, at(30)),
                ev(4, Outcome::Acknowledged, at(40)),
            ],
            nemesis: vec![Nemesis {
                at: at(15),
                f: "fault",
                value: json!({"fault": "crash", "node": "m"}),
            }],
            read: Some(Read {
                node: "s1".into(),
                timeline: 4,
                ids: vec![1, 2],
                invoked: Some(at(50)),
                answered: Some(at(51)),
            }),
        };
        let mut h = History::new(t0);
        let lines = h.round(1, &ops, &|_| "m".to_string());
        assert_eq!(lines.len(), 4 * 2 + 1 + 2);
        let parsed: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let times: Vec<u64> = parsed.iter().map(|v| v["time"].as_u64().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
        assert_eq!(parsed[2]["f"], "fault");
        // The process of the uncertain write is not used again.
        let p = |id: i64| {
            parsed
                .iter()
                .find(|v| v["value"] == json!(id))
                .map(|v| v["process"].clone())
                .unwrap()
        };
        assert_eq!((p(1), p(2), p(3)), (json!(0), json!(0), json!(1)));
        let c = check(&lines.join("\n")).unwrap();
        assert_eq!(c.ok_writes, 2);
        assert_eq!(c.lost, vec![4]);
        assert!(c.duplicated.is_empty() && c.failed_but_present.is_empty());
        assert_eq!(c.rounds_read, 1);
    }
}
