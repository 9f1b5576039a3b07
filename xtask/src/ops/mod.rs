//! The operations layer: every step on a live cluster, written once. The
//! tasks (setup, basebackup, status, down, failover, switchover, rejoin,
//! failover-drill) stand side by side on it and never import one another.

pub mod clone;
pub mod container;
pub mod down;
pub mod drill;
pub mod failover;
pub mod journal;
pub mod live;
pub mod patroni;
pub mod preflight;
pub mod server_check;
pub mod setup;
pub mod standby;
pub mod switchover;
pub mod sync;
