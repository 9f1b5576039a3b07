//! The topology of a replicated cluster, as a TOML file describes it.

use crate::guc::Value;
use crate::net::Cidr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

/// Per-node or cluster-wide PostgreSQL settings; each value keeps its place
/// in the file so problems can name the line.
pub type Settings = BTreeMap<String, Spanned<Value>>;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub cluster: Cluster,
    #[serde(default)]
    pub network: Network,
    pub replication: Replication,
    pub database: Database,
    /// Settings applied to every node, over the tool's defaults.
    #[serde(default)]
    pub settings: Settings,
    #[serde(rename = "node", default)]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Compose project name; also prefixes networks and volumes.
    pub name: Spanned<String>,
    /// Image for every node. `PGREPL_IMAGE` in the environment overrides it.
    #[serde(default = "default_image")]
    pub image: String,
    /// Run `initdb --data-checksums` (lets `pg_rewind` work without `wal_log_hints`).
    #[serde(default)]
    pub data_checksums: bool,
    /// Accept `trust` authentication beyond local sockets and loopback.
    #[serde(default)]
    pub allow_trust: bool,
}

pub fn default_image() -> String {
    "postgres:15".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Compose network key (Compose prefixes it with the project name).
    #[serde(default = "default_network")]
    pub name: String,
    /// Fixed subnet; when absent Docker picks one and the tool discovers it.
    #[serde(default)]
    pub subnet: Option<Cidr>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            name: default_network(),
            subnet: None,
        }
    }
}

fn default_network() -> String {
    "pgnet".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Sync,
    Async,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum AuthMethod {
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "trust")]
    Trust,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ScramSha256 => "scram-sha-256",
            AuthMethod::Md5 => "md5",
            AuthMethod::Trust => "trust",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    pub mode: Mode,
    /// Required with `mode = "sync"`: `FIRST n (...)`, `ANY n (...)`, `n (...)`,
    /// a plain list or `*`, written as PostgreSQL parses it.
    #[serde(default)]
    pub synchronous_standby_names: Option<Spanned<String>>,
    /// One physical replication slot per standby.
    #[serde(default)]
    pub slots: bool,
    /// Role the standbys connect as; created with a generated password.
    pub user: Spanned<String>,
    /// Authentication for every non-local connection [default: scram-sha-256].
    #[serde(default)]
    pub auth: Option<Spanned<AuthMethod>>,
}

impl Replication {
    pub fn auth(&self) -> AuthMethod {
        self.auth.as_ref().map(|a| *a.get_ref()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub name: String,
    /// Superuser and owner created by the image (`POSTGRES_USER`).
    pub owner: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Standby,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
        })
    }
}

/// Where a node's files live on the Docker host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Storage {
    /// A folder under the cluster's state directory, bind-mounted.
    Bind(String),
    /// A named Docker volume (Compose prefixes it with the project name).
    Volume(String),
}

impl Storage {
    pub fn label(&self) -> String {
        match self {
            Storage::Bind(p) => format!("folder `{p}`"),
            Storage::Volume(v) => format!("volume `{v}`"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Compose service, container host name and `application_name`.
    pub name: Spanned<String>,
    /// Role at creation. The live role is read from the servers.
    pub role: Role,
    /// Port published on the host's loopback.
    pub port: Spanned<u16>,
    pub data: Storage,
    pub backup: Storage,
    #[serde(default)]
    pub settings: Settings,
}

impl Node {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// Physical slot name for this node: slot names allow only `[a-z0-9_]`.
    pub fn slot_name(&self) -> String {
        slot_name(self.name())
    }
}

pub fn slot_name(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A topology file's text, parsed; keeps the text to turn spans into lines.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: String,
    pub text: String,
    pub topology: Topology,
}

impl Loaded {
    /// Parses a topology file. The error names the file, line and column.
    pub fn parse(path: &str, text: &str) -> Result<Loaded, String> {
        let topology: Topology = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let (l, c) = line_col(text, s.start);
                    format!(":{l}:{c}")
                })
                .unwrap_or_default();
            format!("{path}{at}: {}", e.message())
        })?;
        Ok(Loaded {
            path: path.to_string(),
            text: text.to_string(),
            topology,
        })
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        line_col(&self.text, offset).0
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

impl Topology {
    pub fn name(&self) -> &str {
        self.cluster.name.get_ref()
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// The node configured as primary at creation (the first, if several).
    pub fn initial_primary(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.role == Role::Primary)
    }

    pub fn standbys(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role == Role::Standby)
    }
}
