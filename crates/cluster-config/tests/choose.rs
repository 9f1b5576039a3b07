//! Property tests of the most safety-critical decision: which standby a
//! failover promotes. For every `FIRST n` / `ANY n` list over up to five
//! standbys, every set of unreachable standbys and every WAL position each
//! standby reached, a model says how far commits can have been
//! acknowledged: a commit returns only once n listed standbys have flushed
//! it, so nothing past the n-th furthest listed standby's position can have
//! been acknowledged. The chosen standby must hold at least that much, or
//! the choice must be refused; and it is never refused while fewer than n
//! listed standbys are unreachable. With the sync states of the failure
//! known, a `FIRST n` choice must hold what the `sync` standbys held.

use cluster_config::live::{choose, Ask, Candidate, Lsn, Refusal, SyncState};
use cluster_config::syncrep::{self, SyncStandbyNames};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];

#[derive(Debug, Clone)]
struct World {
    /// Standbys of the failed primary, with the WAL each reached.
    positions: Vec<u64>,
    /// How many of them are listed (the first ones), and n.
    listed: usize,
    n: u32,
    any: bool,
    /// Which standbys are unreachable now.
    down: Vec<bool>,
}

fn world() -> impl Strategy<Value = World> {
    (1usize..=5)
        .prop_flat_map(|k| {
            (
                prop::collection::vec(0u64..6, k),
                1..=k,
                any::<bool>(),
                prop::collection::vec(any::<bool>(), k),
            )
        })
        .prop_flat_map(|(positions, listed, any, down)| {
            (
                Just(positions),
                Just(listed),
                1..=listed as u32,
                Just(any),
                Just(down),
            )
        })
        .prop_map(|(positions, listed, n, any, down)| World {
            positions,
            listed,
            n,
            any,
            down,
        })
}

impl World {
    fn ssn(&self) -> SyncStandbyNames {
        let names: Vec<String> = NAMES[..self.listed]
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect();
        let text = format!(
            "{} {} ({})",
            if self.any { "ANY" } else { "FIRST" },
            self.n,
            names.join(", ")
        );
        syncrep::parse(&text).unwrap().unwrap()
    }

    /// The furthest any commit can have been acknowledged: the n-th
    /// furthest position among the listed standbys.
    fn acknowledged_at_most(&self) -> u64 {
        let mut listed: Vec<u64> = self.positions[..self.listed].to_vec();
        listed.sort_unstable_by(|a, b| b.cmp(a));
        listed[self.n as usize - 1]
    }

    fn candidates(&self) -> Vec<Candidate> {
        self.positions
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.down[*i])
            .map(|(i, p)| Candidate {
                node: NAMES[i].to_string(),
                received: Lsn(*p),
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// States unknown (the primary is gone): the worst case is assumed.
    #[test]
    fn the_chosen_standby_holds_every_acknowledged_commit(w in world()) {
        let ssn = w.ssn();
        let standbys: Vec<&str> = NAMES[..w.positions.len()].to_vec();
        let cands = w.candidates();
        let got = choose(&Ask {
            enforced: Some(&ssn),
            standbys: &standbys,
            states: None,
            candidates: &cands,
            to: None,
            allow_data_loss: false,
        });
        let unreachable_listed = (0..w.listed).filter(|i| w.down[*i]).count();
        match got {
            Ok(c) => {
                prop_assert!(c.guaranteed);
                let at = cands.iter().find(|x| x.node == c.node).unwrap().received.0;
                prop_assert!(at >= w.acknowledged_at_most(),
                    "{} at {at} < acknowledged {} ({ssn}, {:?})", c.node, w.acknowledged_at_most(), w);
            }
            Err(Refusal::NoCandidate) => prop_assert!(cands.is_empty()),
            Err(r) => {
                prop_assert!(unreachable_listed >= w.n as usize,
                    "refused with only {unreachable_listed} listed standby(s) unreachable under {ssn}: {r}");
            }
        }
        // Liveness: while fewer than n listed standbys are unreachable, a
        // guaranteed standby exists and is promoted.
        if unreachable_listed < w.n as usize && !cands.is_empty() {
            let c = choose(&Ask { enforced: Some(&ssn), standbys: &standbys, states: None, candidates: &cands, to: None, allow_data_loss: false });
            prop_assert!(c.is_ok(), "{:?}", c);
        }
    }

    /// `--to` never bypasses the guard: a named standby behind the
    /// acknowledged position is refused (unless data loss is allowed).
    #[test]
    fn to_is_held_to_the_same_guard(w in world(), which in 0usize..5) {
        let ssn = w.ssn();
        let standbys: Vec<&str> = NAMES[..w.positions.len()].to_vec();
        let cands = w.candidates();
        prop_assume!(!cands.is_empty());
        let to = cands[which % cands.len()].node.clone();
        let got = choose(&Ask { enforced: Some(&ssn), standbys: &standbys, states: None, candidates: &cands, to: Some(&to), allow_data_loss: false });
        if let Ok(c) = &got {
            prop_assert_eq!(&c.node, &to);
            let at = cands.iter().find(|x| x.node == to).unwrap().received.0;
            prop_assert!(at >= w.acknowledged_at_most());
        }
        let forced = choose(&Ask { enforced: Some(&ssn), standbys: &standbys, states: None, candidates: &cands, to: Some(&to), allow_data_loss: true }).unwrap();
        prop_assert_eq!(&forced.node, &to);
        prop_assert_eq!(forced.guaranteed, got.is_ok());
    }

    /// With the states at the failure known under `FIRST n`: the `sync`
    /// standbys held every acknowledged commit; the choice holds what the
    /// furthest reachable one of them held.
    #[test]
    fn with_known_states_the_choice_holds_what_the_sync_standbys_held(w in world()) {
        let w = World { any: false, ..w };
        let ssn = w.ssn();
        let standbys: Vec<&str> = NAMES[..w.positions.len()].to_vec();
        // The first n listed standbys were the synchronous ones.
        let states: Vec<(String, SyncState)> = (0..w.positions.len())
            .map(|i| {
                let st = if i < w.n as usize { SyncState::Sync } else if i < w.listed { SyncState::Potential } else { SyncState::Async };
                (NAMES[i].to_string(), st)
            })
            .collect();
        // What was acknowledged: at most what every sync standby flushed.
        let acked = (0..w.n as usize).map(|i| w.positions[i]).min().unwrap();
        let cands = w.candidates();
        let got = choose(&Ask { enforced: Some(&ssn), standbys: &standbys, states: Some(&states), candidates: &cands, to: None, allow_data_loss: false });
        let a_sync_reachable = (0..w.n as usize).any(|i| !w.down[i]);
        match got {
            Ok(c) => {
                let at = cands.iter().find(|x| x.node == c.node).unwrap().received.0;
                prop_assert!(at >= acked, "{} at {at} < {acked}", c.node);
            }
            Err(Refusal::NoCandidate) => prop_assert!(cands.is_empty()),
            Err(r) => prop_assert!(!a_sync_reachable, "refused with a sync standby reachable: {r}"),
        }
    }
}

#[test]
fn without_synchronous_standbys_nothing_is_guaranteed() {
    let cands = vec![Candidate {
        node: "s0".into(),
        received: Lsn(5),
    }];
    let r = choose(&Ask {
        enforced: None,
        standbys: &["s0"],
        states: None,
        candidates: &cands,
        to: None,
        allow_data_loss: false,
    });
    assert!(matches!(r, Err(Refusal::NotGuaranteed { .. })), "{r:?}");
}
