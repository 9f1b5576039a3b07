//! `synchronous_standby_names` on a live primary: narrowed to the standbys
//! connected now, restored to the configured value, and proven by one
//! synchronous commit that must return in time.

use crate::cluster::ms;
use crate::cluster::{literal, Cluster, Secrets};
use crate::ops::client::connect;
use crate::ops::container::port_of;
use anyhow::{bail, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The configured `synchronous_standby_names`, narrowed to the standbys
/// streaming from `primary` now (empty: none is connected).
pub fn narrowed_sync_names(c: &Cluster, primary: &str) -> Result<String> {
    let t = c.topology();
    let connected = crate::ops::live::connected(c, primary)?;
    let connected: Vec<&str> = connected.iter().map(String::as_str).collect();
    let nodes: Vec<&str> = t.nodes.iter().map(|n| n.name()).collect();
    Ok(crate::ops::live::configured_sync_names(t)
        .and_then(|cfg| cluster_config::live::narrowed(&cfg, &connected, &nodes))
        .map(|s| s.to_string())
        .unwrap_or_default())
}

/// Back to the configured list when enough of the standbys it names are
/// connected for it to be satisfied; otherwise the list narrowed to the
/// connected ones (a primary must never wait for standbys that are not
/// there).
pub fn restore_sync_names(c: &Cluster, primary: &str) -> Result<()> {
    let t = c.topology();
    let Some(cfg) = crate::ops::live::configured_sync_names(t) else {
        return set_sync_names(c, primary, None);
    };
    let connected = crate::ops::live::connected(c, primary)?;
    let listed = connected.iter().filter(|n| cfg.matches(n)).count();
    if listed >= cfg.num_sync as usize {
        set_sync_names(c, primary, None)
    } else {
        let names = narrowed_sync_names(c, primary)?;
        set_sync_names(c, primary, Some(&names))
    }
}

/// `Some(v)`: ALTER SYSTEM SET to v; `None`: back to the configured value.
pub fn set_sync_names(c: &Cluster, primary: &str, value: Option<&str>) -> Result<()> {
    let sql = match value {
        Some(v) => format!(
            "ALTER SYSTEM SET synchronous_standby_names = {};\nSELECT pg_reload_conf();",
            literal(v)
        ),
        None => {
            "ALTER SYSTEM RESET synchronous_standby_names;\nSELECT pg_reload_conf();".to_string()
        }
    };
    c.sql_mut(primary, &sql)?;
    match value {
        Some("") => say!(
            "{primary}: no standby is connected yet; commits are not synchronous until one rejoins"
        ),
        Some(v) => say!("{primary}: synchronous_standby_names = '{v}'"),
        None => say!("{primary}: synchronous_standby_names back to the configured value"),
    }
    Ok(())
}

/// Commits one row with synchronous_commit = on and fails if it does not
/// return within `bound`.
pub fn prove_sync_commit(
    c: &Cluster,
    primary: &str,
    secrets: &Secrets,
    bound: Duration,
) -> Result<u64> {
    let t = c.topology().clone();
    let port = port_of(c, primary)?;
    let pw = secrets.owner.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let r = (|| -> Result<()> {
            let mut client = connect(&t, port, &pw, Arc::new(AtomicBool::new(false)))?;
            client.batch_execute(
                "CREATE TABLE IF NOT EXISTS pgrepl_check (token text PRIMARY KEY, at timestamptz DEFAULT now());\n\
                 INSERT INTO pgrepl_check (token) VALUES (md5(random()::text || clock_timestamp()::text));",
            )?;
            Ok(())
        })();
        let _ = tx.send(r.map(|_| started.elapsed()));
    });
    match rx.recv_timeout(bound) {
        Ok(Ok(d)) => {
            say!("{primary}: a synchronous commit returned in {} ms", d.as_millis());
            Ok(ms(d))
        }
        Ok(Err(e)) => Err(e.context(format!("synchronous commit on {primary}"))),
        Err(_) => bail!("a synchronous commit on {primary} did not return within {bound:?}: synchronous_standby_names names no connected standby"),
    }
}
