//! Real client connections (the `postgres` crate) to a node's published
//! port, for what must see each COMMIT's own result.

use crate::runner::Secret;
use anyhow::{Context, Result};
use cluster_config::Topology;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn connect(
    t: &Topology,
    port: u16,
    password: &Secret,
    warned: Arc<AtomicBool>,
) -> Result<postgres::Client> {
    let mut cfg = postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(t.database.owner.get_ref().as_str())
        .dbname(t.database.name.get_ref().as_str())
        .password(password.expose())
        .application_name("pgrepl-drill")
        .connect_timeout(Duration::from_secs(3))
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .notice_callback(move |n| {
            if n.message().contains("synchronous replication") {
                warned.store(true, Ordering::SeqCst);
            }
        });
    let mut client = cfg
        .connect(postgres::NoTls)
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    client.batch_execute("SET synchronous_commit = on")?;
    Ok(client)
}
