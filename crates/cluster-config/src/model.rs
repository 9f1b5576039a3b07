//! The topology of a replicated cluster, as a TOML file describes it.

use crate::diag::{Diagnostic, Location, Report, Severity};
use crate::guc::Value;
use crate::names::{
    BindDir, ClusterName, DatabaseName, ImageRef, NetworkName, NodeName, RoleName, SettingName,
    VolumeName,
};
use crate::net::Subnet;
use crate::version::Major;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

/// Per-node or cluster-wide PostgreSQL settings; each value keeps its place
/// in the file so problems can name the line.
pub type Settings = BTreeMap<SettingName, Spanned<Value>>;

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
    pub name: Spanned<ClusterName>,
    /// The PostgreSQL major every node runs. Without `image`, the image is
    /// `postgres:<major>` when present, else the project's own
    /// `pgrepl/postgres:<major>` (built when absent and buildable).
    #[serde(default)]
    pub postgres: Option<Spanned<Major>>,
    /// Image for every node; its major is read from the image itself and
    /// must agree with `postgres` when both are given. `PGREPL_IMAGE` in
    /// the environment overrides it.
    #[serde(default)]
    pub image: Option<Spanned<ImageRef>>,
    /// Run `initdb --data-checksums` (lets `pg_rewind` work without `wal_log_hints`).
    #[serde(default)]
    pub data_checksums: bool,
    /// Accept `trust` authentication beyond local sockets and loopback.
    #[serde(default)]
    pub allow_trust: bool,
}

impl Cluster {
    /// The major the topology names: `postgres`, else (with no `image`
    /// either) the default major. `None` when only `image` is given: its
    /// major is known once the image is read.
    pub fn declared_major(&self) -> Option<Major> {
        match (&self.postgres, &self.image) {
            (Some(m), _) => Some(*m.get_ref()),
            (None, None) => Some(crate::version::DEFAULT),
            (None, Some(_)) => None,
        }
    }

    /// The image named by the topology, if any.
    pub fn image(&self) -> Option<&ImageRef> {
        self.image.as_ref().map(|i| i.get_ref())
    }

    /// The image a Compose file names when PGREPL_IMAGE is not set: the
    /// topology's, else the official image of its major.
    pub fn compose_default_image(&self) -> String {
        match (self.image(), self.declared_major()) {
            (Some(i), _) => i.to_string(),
            (None, Some(m)) => format!("postgres:{m}"),
            (None, None) => format!("postgres:{}", crate::version::DEFAULT),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Compose network key (Compose prefixes it with the project name).
    #[serde(default = "default_network")]
    pub name: NetworkName,
    /// Fixed subnet; when absent Docker picks one and the tool discovers it.
    #[serde(default)]
    pub subnet: Option<Spanned<Subnet>>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            name: default_network(),
            subnet: None,
        }
    }
}

fn default_network() -> NetworkName {
    "pgnet".parse().expect("a valid network name")
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
    pub synchronous_standby_names: Option<Spanned<crate::syncrep::SyncNamesText>>,
    /// One physical replication slot per standby.
    #[serde(default)]
    pub slots: bool,
    /// Role the standbys connect as; created with a generated password.
    pub user: Spanned<RoleName>,
    /// Authentication for every non-local connection [default: scram-sha-256].
    #[serde(default)]
    pub auth: Option<Spanned<AuthMethod>>,
}

impl Replication {
    /// The configured `synchronous_standby_names`, parsed when the topology
    /// was read; `None` when unset, empty, or not parsing (validation
    /// refuses that).
    pub fn sync_names(&self) -> Option<&crate::syncrep::SyncStandbyNames> {
        self.synchronous_standby_names
            .as_ref()
            .and_then(|s| s.get_ref().parsed().ok().flatten())
    }

    pub fn auth(&self) -> AuthMethod {
        self.auth.as_ref().map(|a| *a.get_ref()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub name: Spanned<DatabaseName>,
    /// Superuser and owner created by the image (`POSTGRES_USER`).
    pub owner: Spanned<RoleName>,
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
    Bind(BindDir),
    /// A named Docker volume (Compose prefixes it with the project name).
    Volume(VolumeName),
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
    pub name: Spanned<NodeName>,
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
        self.name.get_ref().as_str()
    }

    /// Physical slot name for this node: slot names allow only `[a-z0-9_]`.
    /// Node names are `[a-z0-9-]`, so the mapping (`-` to `_`) is one to
    /// one: two nodes never share a slot.
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
    /// Parses a topology file's bytes (a UTF-8 BOM and CRLF line ends are
    /// accepted). The error names the file, line and column, with a rule
    /// code.
    pub fn from_bytes(path: &str, bytes: &[u8]) -> Result<Loaded, Report> {
        let decoded = crate::text::decode(path, bytes).map_err(|d| Report::of(vec![d]))?;
        Loaded::parse(path, &decoded.text)
    }

    /// Parses a topology file's text.
    pub fn parse(path: &str, text: &str) -> Result<Loaded, Report> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let topology: Topology = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| line_col(text, s.start))
                .map(|(l, c)| (Some(l), Some(c)))
                .unwrap_or((None, None));
            let raw = e.message().trim();
            let (code, message) = match crate::names::untag(raw, crate::names::PARSE_CODES) {
                Some((code, m)) => (code, m.to_string()),
                None => (classify(raw), raw.to_string()),
            };
            let message = match col {
                Some(c) => format!("{message} (column {c})"),
                None => message,
            };
            let mut location = Location::file(path);
            location.line = line;
            Report::of(vec![Diagnostic {
                severity: Severity::Error,
                code,
                location,
                message,
            }])
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

/// A rule code for a TOML or schema error that no name type raised.
fn classify(message: &str) -> &'static str {
    if message.starts_with("unknown field") {
        "unknown-key"
    } else if message.starts_with("missing field") {
        "missing-key"
    } else if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("unknown variant")
        || message.contains("data did not match any variant")
    {
        "value-type"
    } else if message.starts_with("duplicate key") {
        "duplicate-key"
    } else {
        "toml-syntax"
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
        self.cluster.name.get_ref().as_str()
    }

    pub fn subnet(&self) -> Option<Subnet> {
        self.network.subnet.as_ref().map(|s| *s.get_ref())
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
