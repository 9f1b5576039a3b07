//! PostgreSQL from the tool's side, below the cluster and the operations:
//! two ways to run SQL on a node behind one trait ([`Transport`]: a direct
//! client connection to its published port, or `psql` inside its
//! container), SQL literals and identifiers, and the statements the tool
//! runs in more than one place, written once.

pub mod client;
pub mod psql;
pub mod sql;

use anyhow::Result;

/// One way to run SQL on a node.
pub trait Transport: Sync {
    /// Runs `sql` on `node` (in `database`, or the topology's when `None`)
    /// and returns its rows as `|`-separated lines. `Ok(None)`: this way
    /// cannot reach the node now, ask the next one; `Err`: the SQL ran and
    /// failed, or the node answered nothing in time.
    fn run(
        &self,
        node: &str,
        database: Option<&str>,
        sql: &str,
        mutating: bool,
    ) -> Result<Option<String>>;

    /// Runs `sql` (which commits) on `node` and returns how long it took,
    /// failing when it does not return within `bound` (a synchronous commit
    /// that waits for a standby that is not there). `Ok(None)`: this way
    /// cannot reach the node, ask the next one.
    fn commit_within(
        &self,
        node: &str,
        sql: &str,
        bound: std::time::Duration,
    ) -> Result<Option<std::time::Duration>>;
}
