//! The soak table: drill reports (one run or several run side by side on
//! separate clusters) summarized per fault, as README's "Failover: the
//! drill's fault matrix" shows them. Pure: the task reads the files.

use super::RoundReport;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The rounds of several reports, in fault order of first appearance.
pub fn table(rounds: &[RoundReport]) -> String {
    let mut faults: Vec<&str> = Vec::new();
    for r in rounds {
        if !faults.contains(&r.fault.as_str()) {
            faults.push(&r.fault);
        }
    }
    let mut out = String::from(
        "| fault | rounds | acknowledged | lost | uncertain (landed) | cancelled waits (survived) \
         | fault to promoted (median) | RTO median / worst | write stall median / worst \
         | CloudNativePG measure (median) | rejoin (median) | how the failed nodes rejoined |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for fault in faults {
        let of: Vec<&RoundReport> = rounds.iter().filter(|r| r.fault == fault).collect();
        let promoted: Vec<&RoundReport> = of.iter().copied().filter(|r| r.failed_over()).collect();
        let sum = |f: fn(&RoundReport) -> usize| of.iter().map(|r| f(r)).sum::<usize>();
        let rto = figures(&promoted, |r| Some(r.rto_ms));
        let stall = figures(&of, |r| Some(r.write_stall_ms));
        let _ =
            writeln!(
            out,
            "| `{fault}` | {} | {} | {} | {} ({}) | {} ({}) | {} | {} | {} / {} | {} | {} | {} |",
            of.len(),
            sum(|r| r.acknowledged),
            sum(|r| r.lost),
            sum(|r| r.uncertain),
            sum(|r| r.uncertain_landed),
            sum(|r| r.cancelled_wait),
            sum(|r| r.cancelled_wait_survived),
            seconds(median(&figures(&promoted, |r| Some(r.crash_to_promoted_ms)))),
            if promoted.is_empty() {
                "no failover".to_string()
            } else {
                format!("{} / {}", seconds(median(&rto)), seconds(rto.last().copied()))
            },
            seconds(median(&stall)),
            seconds(stall.last().copied()),
            seconds(median(&figures(&of, |r| r.cnpg_failover_ms))),
            seconds(median(&figures(&of, |r| r.rejoin_ms))),
            rejoins(&of),
        );
    }
    out
}

/// The totals line under the table.
pub fn totals(rounds: &[RoundReport], reports: usize) -> String {
    let promoted: Vec<&RoundReport> = rounds.iter().filter(|r| r.failed_over()).collect();
    let rto = figures(&promoted, |r| Some(r.rto_ms));
    let most_writable = rounds
        .iter()
        .map(|r| r.writable_nodes.len())
        .max()
        .unwrap_or(0);
    format!(
        "{} rounds ({} report(s)), {} acknowledged commits, {} lost; at most {} writable node(s) after a round; \
         RTO median {}, worst {} (over the {} rounds that promoted); {} re-clone(s) of failed nodes, \
         {} of standbys that could not follow the new primary",
        rounds.len(),
        reports,
        rounds.iter().map(|r| r.acknowledged).sum::<usize>(),
        rounds.iter().map(|r| r.lost).sum::<usize>(),
        most_writable,
        seconds(median(&rto)),
        seconds(rto.last().copied()),
        promoted.len(),
        rounds.iter().map(|r| r.recloned).sum::<usize>(),
        rounds
            .iter()
            .map(|r| r.standbys_recloned.len())
            .sum::<usize>(),
    )
}

fn figures(rounds: &[&RoundReport], key: fn(&RoundReport) -> Option<u64>) -> Vec<u64> {
    let mut v: Vec<u64> = rounds.iter().filter_map(|r| key(r)).collect();
    v.sort_unstable();
    v
}

fn median(sorted: &[u64]) -> Option<u64> {
    (!sorted.is_empty()).then(|| super::median(sorted))
}

fn seconds(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => format!("{:.2} s", ms as f64 / 1000.0),
        None => "-".into(),
    }
}

/// How the failed nodes came back, counted by kind ("node: how, node: how"
/// in each round's report).
fn rejoins(rounds: &[&RoundReport]) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rounds {
        for part in r.rejoined_by.as_deref().unwrap_or("").split(", ") {
            if let Some((_, how)) = part.split_once(": ") {
                *kinds.entry(how).or_default() += 1;
            }
        }
    }
    if kinds.is_empty() {
        return "-".into();
    }
    let mut v: Vec<(&str, usize)> = kinds.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(how, n)| format!("{how} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(fault: &str, rto: u64, rejoined: &str) -> RoundReport {
        RoundReport {
            fault: fault.into(),
            promoted: if fault == "sync-standby-partition" {
                String::new()
            } else {
                "slave1-db".into()
            },
            acknowledged: 100,
            uncertain: 1,
            rto_ms: rto,
            write_stall_ms: rto + 1,
            crash_to_promoted_ms: rto / 2,
            rejoin_ms: Some(3000),
            rejoined_by: Some(rejoined.into()),
            writable_nodes: vec!["slave1-db".into()],
            ..RoundReport::default()
        }
    }

    #[test]
    fn rounds_of_several_reports_are_summarized_per_fault() {
        let rounds = vec![
            round("crash", 400, "master-db: pg_rewind"),
            round(
                "restart-old-primary",
                600,
                "master-db: already on the new timeline (no rewind required)",
            ),
            round("crash", 500, "slave1-db: pg_rewind"),
            round("crash", 900, "slave2-db: re-cloned (pg_rewind failed)"),
            round("sync-standby-partition", 5000, "slave1-db: re-pointed"),
        ];
        let t = table(&rounds);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert_eq!(
            lines[2],
            "| `crash` | 3 | 300 | 0 | 3 (0) | 0 (0) | 0.25 s | 0.50 s / 0.90 s | 0.50 s / 0.90 s | - | 3.00 s | pg_rewind 2, re-cloned (pg_rewind failed) 1 |"
        );
        assert!(lines[3].starts_with("| `restart-old-primary` | 1 |"), "{t}");
        assert!(lines[4].contains("| no failover |"), "{t}");
        let total = totals(&rounds, 2);
        assert!(
            total.starts_with(
                "5 rounds (2 report(s)), 500 acknowledged commits, 0 lost; at most 1 writable"
            ),
            "{total}"
        );
        assert!(
            total.contains("RTO median 0.55 s, worst 0.90 s (over the 4 rounds"),
            "{total}"
        );
    }
}
