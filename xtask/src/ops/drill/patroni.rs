//! `failover-drill --engine patroni`: the same writer, ledger and crash of
//! the leader's container, but Patroni detects the failure and promotes;
//! the tool only watches (Patroni's REST API) and measures. RTO therefore
//! contains detection: the leader key's expiry in etcd and Patroni's loop.

use super::history::Nemesis;
use super::{Plan, RoundReport};
use crate::cluster::Cluster;
use crate::ops::container;
use crate::ops::patroni::{self as engine, leader, members, wait_healthy};
use crate::secrets::Secrets;
use crate::wait::ms;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::time::{Duration, Instant};

/// Sets Patroni's DCS timings on the running cluster (REST `PATCH
/// /config`), as `patronictl edit-config` would.
pub fn apply_timings(c: &Cluster, t: cluster_config::patroni::Timings) -> Result<()> {
    let body = format!(
        "{{\"ttl\": {}, \"loop_wait\": {}, \"retry_timeout\": {}}}",
        t.ttl, t.loop_wait, t.retry_timeout
    );
    let mut last = None;
    for n in &c.topology().nodes {
        let port = cluster_config::patroni::rest_port(*n.port.get_ref());
        match engine::http(port, "PATCH", "/config", Some(&body)) {
            Ok((200, _)) => {
                say!(
                    "Patroni timings: ttl {} s, loop_wait {} s, retry_timeout {} s",
                    t.ttl,
                    t.loop_wait,
                    t.retry_timeout
                );
                return Ok(());
            }
            Ok((code, text)) => {
                last = Some(anyhow::anyhow!("{} answered {code}: {text}", n.name()))
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no node"))).context("setting Patroni's timings")
}

pub fn round(
    c: &Cluster,
    secrets: &Secrets,
    args: &Plan,
    run_id: &str,
    round: u32,
) -> Result<RoundReport> {
    let timeout = Duration::from_secs(args.timeout);
    let mut report = RoundReport {
        round,
        engine: "patroni".into(),
        fault: "crash".into(),
        ..Default::default()
    };
    let before = wait_healthy(c, timeout)?;
    let old = leader(&before).context("no leader")?;
    report.failed_primary = old.clone();
    let (writer, _) = super::round::warm_writer(c, secrets, args, run_id, round, &old)?;

    say!("killing the leader {old}'s container under write load; Patroni must notice and promote");
    let crashed_at = Instant::now();
    report.ops.nemesis.push(Nemesis {
        at: crashed_at,
        f: "fault",
        value: json!({"fault": "crash", "node": old}),
    });
    container::kill(c, &old)?;
    // The writer keeps trying the old leader's port, as a client with a
    // fixed address would, until the tool sees the new leader.
    let new = c.poll("Patroni to promote a new leader", timeout, || {
        let m = members(c)?;
        Ok(leader(&m).filter(|l| *l != old))
    })?;
    let promoted_at = Instant::now();
    report.promoted = new.clone();
    report.promoted_because =
        "Patroni's choice: the healthiest synchronous standby that won the leader race in etcd"
            .into();
    report.crash_to_promoted_ms = ms(promoted_at - crashed_at);
    report.ops.nemesis.push(Nemesis {
        at: promoted_at,
        f: "promoted",
        value: json!({"node": new, "seen_by": "Patroni's REST API"}),
    });
    // Patroni's re-pointing is its own: the new leader seen marks both.
    super::round::observe_new_primary(
        c,
        &mut report,
        writer,
        &new,
        run_id,
        super::round::Marks {
            fault: crashed_at,
            promoted: promoted_at,
            repointed: promoted_at,
        },
        timeout,
    )?;

    // The old leader comes back as a supervisor would start it; Patroni
    // rejoins it (pg_rewind) by itself.
    if !args.no_rejoin {
        let id = container::id_of(c, &old)?;
        let started = Instant::now();
        c.runner().run(&c.docker().cmd().args(["start", &id]))?;
        let after = wait_healthy(c, timeout)?;
        report.rejoin_ms = Some(ms(started.elapsed()));
        report.rejoined_by = Some(format!("{old}: Patroni (use_pg_rewind)"));
        report.new_timeline = after
            .iter()
            .find(|m| m.name == new)
            .and_then(|m| m.timeline)
            .unwrap_or(0) as u32;
    }
    // Writable nodes, from the servers themselves.
    for n in &c.topology().nodes {
        if c.sql(n.name(), "SELECT pg_is_in_recovery()")
            .ok()
            .as_deref()
            == Some("f")
        {
            report.writable_nodes.push(n.name().to_string());
        }
    }
    if report.writable_nodes.len() > 1 {
        bail!(
            "round {round}: {} writable nodes after Patroni's failover: {}",
            report.writable_nodes.len(),
            report.writable_nodes.join(", ")
        );
    }
    Ok(report)
}
