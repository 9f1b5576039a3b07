//! The drill's writer: single-row transactions with `synchronous_commit =
//! on` over one real connection at a time, each attempt recorded with its
//! outcome. The thread is stopped and joined whenever the writer is
//! dropped, on every exit path of a round.

use crate::pg::client::connect;
use crate::runner::Secret;
use cluster_config::Topology;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Table the drill writes to: `run` tells one invocation's rows from another's.
pub const DRILL_TABLE: &str = "pgrepl_drill_writes";

/// What one write attempt ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// COMMIT returned success with no warning.
    Acknowledged,
    /// COMMIT errored or the connection broke: it may or may not have
    /// landed.
    Uncertain,
    /// COMMIT returned success with PostgreSQL's warning that the wait for
    /// synchronous replication was cancelled: committed locally only, never
    /// acknowledged by a standby.
    CancelledWait,
    /// The server refused the statement before anything was written (a
    /// read-only server: SQLSTATE 25006): it did not land. Counted as
    /// uncertain by the ledger all the same; the history says `fail`.
    Refused,
}

#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub id: i64,
    pub outcome: Outcome,
    /// When the answer (or error) came.
    pub at: Instant,
    pub port: u16,
    /// From sending the INSERT to its answer (or error).
    pub latency: Duration,
    /// The timeline the server wrote the row on, as it answered.
    pub timeline: Option<i32>,
}

impl Event {
    /// When the INSERT was sent.
    pub fn sent(&self) -> Instant {
        self.at - self.latency
    }
}

/// The writer's statement: the row carries the server's clock and the
/// timeline it was written on (the first 8 hex digits of the current WAL
/// file's name), and returns that timeline.
const INSERT: &str = "INSERT INTO pgrepl_drill_writes (run, round, id, at, tli) VALUES ($1, $2, $3, clock_timestamp(), \
     ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int) RETURNING tli";

/// Creates the writer's table (and the timeline column on a table an
/// earlier version created).
pub fn create_table_sql() -> String {
    format!(
        "SET synchronous_commit = on; \
         CREATE TABLE IF NOT EXISTS {DRILL_TABLE} (run text NOT NULL, round int NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL, tli int); \
         ALTER TABLE {DRILL_TABLE} ADD COLUMN IF NOT EXISTS tli int;"
    )
}

pub struct Writer {
    target: Arc<Mutex<Option<u16>>>,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<Event>>>,
    handle: Option<JoinHandle<()>>,
    started: Instant,
}

impl Writer {
    pub fn start(t: Topology, password: Secret, run: String, round: i32, port: u16) -> Writer {
        let target = Arc::new(Mutex::new(Some(port)));
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tg, st, ev) = (target.clone(), stop.clone(), events.clone());
        let handle = std::thread::spawn(move || {
            let mut next_id = i64::from(round) * 10_000_000;
            let mut conn: Option<(u16, postgres::Client)> = None;
            let warned = Arc::new(AtomicBool::new(false));
            while !st.load(Ordering::SeqCst) {
                let Some(port) = *tg.lock().unwrap_or_else(|e| e.into_inner()) else {
                    conn = None;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                if conn.as_ref().map(|c| c.0) != Some(port) {
                    match connect(&t, port, &password, warned.clone()) {
                        Ok(c) => conn = Some((port, c)),
                        Err(_) => {
                            conn = None;
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    }
                }
                let Some((_, client)) = conn.as_mut() else {
                    continue;
                };
                next_id += 1;
                warned.store(false, Ordering::SeqCst);
                let sent = Instant::now();
                let result = client.query(INSERT, &[&run, &round, &next_id]);
                let timeline = match &result {
                    Ok(rows) if rows.len() == 1 => {
                        rows[0].try_get::<_, Option<i32>>(0).ok().flatten()
                    }
                    _ => None,
                };
                let outcome = match &result {
                    Ok(rows) if rows.len() == 1 && warned.load(Ordering::SeqCst) => {
                        Outcome::CancelledWait
                    }
                    Ok(rows) if rows.len() == 1 => Outcome::Acknowledged,
                    Err(e)
                        if e.code()
                            == Some(&postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION) =>
                    {
                        Outcome::Refused
                    }
                    _ => Outcome::Uncertain,
                };
                if result.is_err() {
                    conn = None;
                }
                ev.lock().unwrap_or_else(|e| e.into_inner()).push(Event {
                    id: next_id,
                    outcome,
                    at: Instant::now(),
                    port,
                    latency: sent.elapsed(),
                    timeline,
                });
            }
        });
        Writer {
            target,
            stop,
            events,
            handle: Some(handle),
            started: Instant::now(),
        }
    }

    /// Where the writer connects; `None` pauses it.
    pub fn point_at(&self, port: Option<u16>) {
        *self.target.lock().unwrap_or_else(|e| e.into_inner()) = port;
    }

    pub fn acknowledged_on(&self, port: u16, after: Instant) -> usize {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.outcome == Outcome::Acknowledged && e.port == port && e.at > after)
            .count()
    }

    /// How long since the last acknowledged commit on `port` (since the
    /// writer started, if none).
    pub fn since_last_acknowledged(&self, port: u16) -> Duration {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events
            .iter()
            .rev()
            .find(|e| e.outcome == Outcome::Acknowledged && e.port == port)
            .map(|e| e.at.elapsed())
            .unwrap_or_else(|| self.started.elapsed())
    }

    /// Attempts with this outcome since `after`.
    pub fn count(&self, outcome: Outcome, after: Instant) -> usize {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.outcome == outcome && e.at > after)
            .count()
    }

    /// Stops the writer, joins its thread, and returns every attempt.
    pub fn finish(mut self) -> Vec<Event> {
        self.join();
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            // A statement in flight ends within the connection's timeouts.
            let _ = h.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.join();
    }
}
