//! Model, rendering, parsing and validation of a replicated PostgreSQL
//! cluster's configuration. No processes, no network, no file writes: every
//! function takes text or values and returns text or values.

pub mod cnpg;
pub mod compose;
pub mod diag;
pub mod guc;
pub mod hba;
pub mod live;
pub mod model;
pub mod names;
pub mod net;
pub mod patroni;
pub mod pgconf;
pub mod policy;
pub mod render;
pub mod settings;
pub mod status;
pub mod syncrep;
pub mod text;
pub mod validate;
pub mod version;

pub use diag::{Diagnostic, Location, Report, Severity};
pub use model::{Loaded, Mode, Node, Role, Storage, Topology};
