//! Load and watch for the interruption tests: a writer that commits
//! single-row transactions with `synchronous_commit = on` to whichever node
//! accepts writes, keeping the ids acknowledged, and a watcher that reads
//! every node's `pg_is_in_recovery()` every 50 ms and records any moment
//! two nodes accept writes (seen twice in a row, so a switchover's hand-off
//! between two reads is not mistaken for one). Written against PostgreSQL
//! directly, with nothing of the tool's code.
#![allow(clippy::disallowed_macros, dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub const TABLE: &str = "pgrepl_chaos";

/// A node the load reaches: its name and published port.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub port: u16,
}

fn connect(port: u16, password: &str) -> Option<postgres::Client> {
    let mut cfg = postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(port)
        .user("dbuser")
        .password(password)
        .dbname("legendarydb")
        .connect_timeout(Duration::from_secs(1))
        .options("-c statement_timeout=20s");
    cfg.connect(postgres::NoTls).ok()
}

fn writable(client: &mut postgres::Client) -> Option<bool> {
    client
        .query_one("SELECT NOT pg_is_in_recovery()", &[])
        .ok()
        .map(|r| r.get(0))
}

pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    violations: Arc<Mutex<Vec<String>>>,
    samples: Arc<Mutex<u64>>,
    threads: Vec<JoinHandle<()>>,
}

/// What a load saw.
pub struct Seen {
    pub acked: Vec<i64>,
    pub two_writable: Vec<String>,
    pub samples: u64,
}

impl Load {
    /// Starts the writer (ids from `first_id`) and the watcher.
    pub fn start(nodes: &[Node], password: &str, first_id: i64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(0));
        let writer = {
            let (nodes, pw, stop, acked) = (
                nodes.to_vec(),
                password.to_string(),
                stop.clone(),
                acked.clone(),
            );
            std::thread::spawn(move || {
                let mut id = first_id;
                let mut conn: Option<postgres::Client> = None;
                while !stop.load(Ordering::SeqCst) {
                    if conn.is_none() {
                        conn = nodes.iter().find_map(|n| {
                            let mut c = connect(n.port, &pw)?;
                            (writable(&mut c)?
                                && c.batch_execute("SET synchronous_commit = on").is_ok())
                            .then_some(c)
                        });
                        if conn.is_none() {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    }
                    id += 1;
                    let c = conn.as_mut().unwrap();
                    match c.execute(&format!("INSERT INTO {TABLE} (id) VALUES ($1)"), &[&id]) {
                        Ok(1) => acked.lock().unwrap().push(id),
                        _ => conn = None,
                    }
                }
            })
        };
        let watcher = {
            let (nodes, pw, stop, violations, samples) = (
                nodes.to_vec(),
                password.to_string(),
                stop.clone(),
                violations.clone(),
                samples.clone(),
            );
            std::thread::spawn(move || {
                let mut clients: Vec<Option<postgres::Client>> =
                    nodes.iter().map(|_| None).collect();
                let sweep = |clients: &mut Vec<Option<postgres::Client>>| -> Vec<String> {
                    let mut open = Vec::new();
                    for (i, n) in nodes.iter().enumerate() {
                        if clients[i].is_none() {
                            clients[i] = connect(n.port, &pw);
                        }
                        match clients[i].as_mut().and_then(writable) {
                            Some(true) => open.push(n.name.clone()),
                            Some(false) => {}
                            None => clients[i] = None,
                        }
                    }
                    open
                };
                while !stop.load(Ordering::SeqCst) {
                    let first = sweep(&mut clients);
                    *samples.lock().unwrap() += 1;
                    if first.len() > 1 {
                        let again = sweep(&mut clients);
                        if again.len() > 1 {
                            violations
                                .lock()
                                .unwrap()
                                .push(format!("{} accept writes at once", again.join(" and ")));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        Load {
            stop,
            acked,
            violations,
            samples,
            threads: vec![writer, watcher],
        }
    }

    /// Acknowledged ids so far.
    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    pub fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        Seen {
            acked: std::mem::take(&mut *self.acked.lock().unwrap()),
            two_writable: std::mem::take(&mut *self.violations.lock().unwrap()),
            samples: *self.samples.lock().unwrap(),
        }
    }
}

/// The ids `node` holds, once each or not.
pub fn ids_on(node: &Node, password: &str) -> Vec<i64> {
    let mut c = connect(node.port, password).expect("connecting to read the ids");
    c.query(&format!("SELECT id FROM {TABLE} ORDER BY id"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}
