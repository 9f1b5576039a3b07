//! Real client connections (the `postgres` crate) to a node's published
//! port, for what must see each COMMIT's own result.

use crate::runner::Secret;
use anyhow::{Context, Result};
use cluster_config::Topology;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A connection to a node's published port on 127.0.0.1, as the database
/// owner to the topology's database.
fn owner_config(t: &Topology, port: u16, password: &Secret, app: &str) -> postgres::Config {
    let mut cfg = postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user(t.database.owner.get_ref().as_str())
        .dbname(t.database.name.get_ref().as_str())
        .password(password.expose())
        .application_name(app);
    cfg
}

pub fn connect(
    t: &Topology,
    port: u16,
    password: &Secret,
    warned: Arc<AtomicBool>,
) -> Result<postgres::Client> {
    let mut cfg = owner_config(t, port, password, "pgrepl-drill");
    cfg.connect_timeout(Duration::from_secs(3))
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

/// Control statements over direct client connections to each node's
/// published port: a few milliseconds each, where `docker exec psql` costs
/// two process launches. Every failure to connect falls back to the
/// container's `psql` (see `Cluster::sql`), so this is only ever a faster
/// way to the same answer.
///
/// A connection attempt and a statement each have a deadline: a frozen
/// server (`docker pause`) accepts TCP connections in its kernel but never
/// answers, and must not hang the tool. A connection whose statement ran
/// past its deadline is abandoned with its thread.
pub struct Direct {
    topology: Topology,
    password: Secret,
    nodes: std::collections::HashMap<String, Slot>,
}

struct Slot {
    port: u16,
    client: std::sync::Mutex<Option<postgres::Client>>,
    /// Set when the server refused this user (pg_hba, password): only
    /// `psql` inside the container is used for the node from then on.
    refused: AtomicBool,
}

/// Why a direct statement gave no answer.
pub enum Miss {
    /// No connection could be made: ask the container's `psql` instead.
    Unreachable,
    /// The statement ran and failed, or gave no answer in time.
    Failed(anyhow::Error),
}

const CONNECT_DEADLINE: Duration = Duration::from_secs(2);

impl Direct {
    pub fn new(t: &Topology, password: Secret) -> Direct {
        Direct {
            topology: t.clone(),
            password,
            nodes: t
                .nodes
                .iter()
                .map(|n| {
                    (
                        n.name().to_string(),
                        Slot {
                            port: *n.port.get_ref(),
                            client: std::sync::Mutex::new(None),
                            refused: AtomicBool::new(false),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Runs `statements` one after another on `node`, as `psql -A -t`
    /// would print their rows: columns joined by `|`, NULL as empty.
    pub fn run(
        &self,
        node: &str,
        statements: Vec<String>,
        deadline: Duration,
    ) -> Result<String, Miss> {
        let slot = self.nodes.get(node).ok_or(Miss::Unreachable)?;
        if slot.refused.load(Ordering::SeqCst) {
            return Err(Miss::Unreachable);
        }
        let cached = slot.client.lock().unwrap_or_else(|e| e.into_inner()).take();
        // A cached connection may be to a server that has restarted since:
        // one round trip tells (bounded, for a frozen server).
        let cached =
            cached.and_then(|mut c| c.is_valid(Duration::from_millis(500)).ok().map(|_| c));
        let client = match cached {
            Some(c) => c,
            None => self.connect(slot)?,
        };
        // Session settings (SET, BEGIN) must not outlive this call.
        let keep = !statements.iter().any(|s| {
            let head = s
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            matches!(head.as_str(), "SET" | "RESET" | "BEGIN" | "START")
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut client = client;
            let mut out: Vec<String> = Vec::new();
            let mut result = Ok(());
            for s in &statements {
                match client.simple_query(s) {
                    Ok(messages) => {
                        for m in messages {
                            if let postgres::SimpleQueryMessage::Row(row) = m {
                                let cols: Vec<&str> =
                                    (0..row.len()).map(|i| row.get(i).unwrap_or("")).collect();
                                out.push(cols.join("|"));
                            }
                        }
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            let _ = tx.send((client, result.map(|_| out.join("\n"))));
        });
        match rx.recv_timeout(deadline) {
            Ok((client, Ok(text))) => {
                if keep {
                    *slot.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client);
                }
                Ok(text.trim().to_string())
            }
            Ok((_, Err(e))) => {
                // A closed connection before anything ran: ask psql instead.
                if e.is_closed() {
                    return Err(Miss::Unreachable);
                }
                Err(Miss::Failed(anyhow::anyhow!(
                    "{}",
                    e.as_db_error()
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| e.to_string())
                )))
            }
            Err(_) => Err(Miss::Failed(anyhow::anyhow!(
                "no answer from {node} within {deadline:?}"
            ))),
        }
    }

    fn connect(&self, slot: &Slot) -> Result<postgres::Client, Miss> {
        let mut cfg = owner_config(&self.topology, slot.port, &self.password, "pgrepl-control");
        cfg.connect_timeout(CONNECT_DEADLINE);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cfg.connect(postgres::NoTls));
        });
        match rx.recv_timeout(CONNECT_DEADLINE) {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => {
                // Refused by the server itself for good (pg_hba, password,
                // role, database); not one that is starting or stopping.
                let code = e.code().map(|c| c.code()).unwrap_or("");
                if code.starts_with("28") || code == "3D000" {
                    slot.refused.store(true, Ordering::SeqCst);
                }
                Err(Miss::Unreachable)
            }
            Err(_) => Err(Miss::Unreachable),
        }
    }
}

/// Splits a script of the tool's own SQL into statements, or `None` when
/// it holds what only `psql` understands (a backslash command, dollar
/// quoting). Quotes, quoted identifiers and `--` comments are respected.
pub fn split_statements(sql: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' | '"' => {
                cur.push(ch);
                loop {
                    let c = chars.next()?;
                    cur.push(c);
                    if c == ch {
                        if chars.peek() == Some(&ch) {
                            cur.push(chars.next()?);
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        cur.push('\n');
                        break;
                    }
                }
            }
            '\\' | '$' => return None,
            ';' => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    Some(out)
}

/// [`Direct`] as a [`super::Transport`], made on its first statement once
/// the secrets file holds the owner's password: never in a dry run, never
/// for another database than the topology's, never for what only `psql`
/// understands (each of those asks the next transport).
pub struct Connections {
    topology: Topology,
    secrets: std::path::PathBuf,
    dry_run: bool,
    direct: std::sync::OnceLock<Option<Direct>>,
}

impl Connections {
    pub fn new(t: &Topology, secrets: std::path::PathBuf, dry_run: bool) -> Connections {
        Connections {
            topology: t.clone(),
            secrets,
            dry_run,
            direct: std::sync::OnceLock::new(),
        }
    }
}

impl super::Transport for Connections {
    fn commit_within(&self, node: &str, sql: &str, bound: Duration) -> Result<Option<Duration>> {
        if self.dry_run {
            return Ok(None);
        }
        let Some(n) = self.topology.node(node) else {
            return Ok(None);
        };
        let Some(text) = crate::secrets::read(&self.secrets).ok().flatten() else {
            return Ok(None);
        };
        let Some(pw) = crate::secrets::secret(&text, crate::secrets::OWNER) else {
            return Ok(None);
        };
        let (t, port, sql) = (self.topology.clone(), *n.port.get_ref(), sql.to_string());
        let (tx, rx) = std::sync::mpsc::channel();
        // A thread of its own, abandoned when the commit never returns.
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let r = connect(&t, port, &pw, Arc::new(AtomicBool::new(false)))
                .and_then(|mut client| client.batch_execute(&sql).map_err(anyhow::Error::from));
            let _ = tx.send(r.map(|_| started.elapsed()));
        });
        match rx.recv_timeout(bound) {
            Ok(Ok(d)) => Ok(Some(d)),
            Ok(Err(e)) => Err(e),
            Err(_) => anyhow::bail!("no commit on {node} returned within {bound:?}"),
        }
    }

    fn run(
        &self,
        node: &str,
        database: Option<&str>,
        sql: &str,
        mutating: bool,
    ) -> Result<Option<String>> {
        if self.dry_run || database.is_some() {
            return Ok(None);
        }
        let direct = self.direct.get_or_init(|| {
            let text = crate::secrets::read(&self.secrets).ok().flatten()?;
            let pw = crate::secrets::secret(&text, crate::secrets::OWNER)?;
            Some(Direct::new(&self.topology, pw))
        });
        let Some(direct) = direct else {
            return Ok(None);
        };
        let Some(statements) = split_statements(sql) else {
            return Ok(None);
        };
        match direct.run(node, statements, Duration::from_secs(90)) {
            Ok(text) => {
                if mutating {
                    crate::steps::done(&format_args!("sql {node}: {}", sql.trim()));
                }
                Ok(Some(text))
            }
            Err(Miss::Unreachable) => Ok(None),
            Err(Miss::Failed(e)) => Err(e.context(format!("SQL on {node} failed"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn statements_split_outside_quotes_and_comments() {
        assert_eq!(
            split_statements(
                "ALTER SYSTEM SET primary_conninfo = 'a=1; b=''x;y''';\nSELECT pg_reload_conf();\n"
            )
            .unwrap(),
            vec![
                "ALTER SYSTEM SET primary_conninfo = 'a=1; b=''x;y'''",
                "SELECT pg_reload_conf()"
            ]
        );
        assert_eq!(
            split_statements("SELECT \"a;b\" -- c;d\nFROM t").unwrap(),
            vec!["SELECT \"a;b\" \nFROM t"]
        );
        assert_eq!(split_statements(" ; ;").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn psql_only_scripts_are_left_to_psql() {
        assert!(split_statements("SELECT 1\\gexec").is_none());
        assert!(split_statements("DO $$ BEGIN END $$").is_none());
        // An unterminated quote is psql's to report.
        assert!(split_statements("SELECT 'x").is_none());
    }
}
