//! Validation of a topology, or of hand-written `postgresql.conf` and
//! `pg_hba.conf` files, returning every problem at once.
//!
//! Both inputs are turned into a [`ClusterView`] (each node's settings with
//! where they were set, and the `pg_hba.conf` rules), and the same rules run
//! over it, so a rule written once checks the tool's own output and a
//! runbook's files alike.

use crate::diag::{Location, Report};
use crate::guc;
use crate::hba::{self, Attempt, ConnType, HbaFile};
use crate::model::{Loaded, Mode, Role, Storage};
use crate::net::{Cidr, Subnet};
use crate::pgconf::ConfFile;
use crate::policy::{self, Hold};
use crate::render::{self, Origin};
use crate::settings::{self, Catalogue};
use crate::syncrep;
use crate::version::Major;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Settings a hot standby needs at least as high as its primary's, or it
/// refuses to start.
pub const STANDBY_MIN_PARAMS: &[&str] = &[
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
];

/// Below this, an async standby without a slot can fall behind for good.
pub const MIN_SAFE_WAL_KEEP: i128 = 1 << 30;

/// PostgreSQL's defaults for the settings the rules read (the same in
/// every major the tool drives).
pub fn pg_default(name: &str) -> Option<&'static str> {
    Some(match name {
        "superuser_reserved_connections" => "3",
        "reserved_connections" => "0",
        "synchronous_commit" => "on",
        "max_slot_wal_keep_size" => "-1",
        "max_wal_size" => "1GB",
        "archive_mode" => "off",
        "ssl" => "off",
        "recovery_min_apply_delay" => "0",
        "shared_buffers" => "128MB",
        "password_encryption" => "scram-sha-256",
        "default_transaction_read_only" => "off",
        "recovery_target_timeline" => "latest",
        "wal_level" => "replica",
        "max_wal_senders" => "10",
        "max_replication_slots" => "10",
        "max_connections" => "100",
        "max_worker_processes" => "8",
        "max_prepared_transactions" => "0",
        "max_locks_per_transaction" => "64",
        "wal_log_hints" => "off",
        "hot_standby" => "on",
        "wal_keep_size" => "0",
        "synchronous_standby_names" => "",
        "listen_addresses" => "localhost",
        _ => return None,
    })
}

/// One server's configuration as the rules see it.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Node name, or the file's path.
    pub label: String,
    pub role: Role,
    /// Lower-case name → (value as PostgreSQL sees it, where it was set).
    pub settings: BTreeMap<String, (String, Location)>,
    /// Where to point when a setting is not set at all.
    pub home: Location,
    /// The `application_name` this node connects with as a standby.
    pub application_name: Option<String>,
}

impl NodeView {
    fn raw(&self, name: &str) -> (String, Location) {
        match self.settings.get(name) {
            Some((v, l)) => (v.clone(), l.clone()),
            None => (
                pg_default(name).unwrap_or_default().to_string(),
                self.home.clone(),
            ),
        }
    }

    fn is_set(&self, name: &str) -> bool {
        self.settings.contains_key(name)
    }

    fn quantity(&self, name: &str) -> Option<(i128, Location)> {
        let (raw, loc) = self.raw(name);
        guc::parse_quantity(&raw, settings::kind_of(name))
            .ok()
            .map(|v| (v, loc))
    }

    fn flag(&self, name: &str) -> bool {
        guc::parse_bool(&self.raw(name).0).unwrap_or(false)
    }
}

/// A cluster's configuration as the rules see it.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<NodeView>,
    /// `pg_hba.conf` files with where they are.
    pub hba: Vec<(Location, HbaFile)>,
    /// Include directives and syntax errors met while reading files.
    pub file_notes: Vec<(Location, FileNote)>,
    pub repl_user: Option<String>,
    /// The users standbys' `primary_conninfo` name (hand-written files).
    pub conninfo_users: Vec<String>,
    pub subnet: Option<Cidr>,
    pub allow_trust: bool,
    pub data_checksums: bool,
    pub slots_in_use: bool,
    /// Whether every node of the cluster is known (a topology), so names in
    /// `synchronous_standby_names` can be checked against them.
    pub complete: bool,
}

#[derive(Debug, Clone)]
pub enum FileNote {
    Include(String),
    Syntax(String),
    /// A `pg_hba.conf` line that does not mean what it seems to.
    Hba(String),
}

/// What validation checks against: the major that will run, its
/// catalogue of settings, and the Docker host's memory when known.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub major: Major,
    pub catalogue: &'a Catalogue,
    /// Bytes of memory of the machine the nodes run on.
    pub memory: Option<u64>,
    /// The major was not named (an image whose major was not read yet):
    /// the checks used `major` as a stand-in.
    pub major_assumed: bool,
}

impl Options<'static> {
    /// A major's committed catalogue, else the nearest committed one.
    pub fn for_major(major: Major) -> Options<'static> {
        Options {
            major,
            catalogue: settings::committed(major).unwrap_or_else(|| settings::nearest(major)),
            memory: None,
            major_assumed: false,
        }
    }

    /// The topology's declared major (the default when only an image is
    /// named, whose major is read at setup).
    pub fn for_topology(loaded: &Loaded) -> Options<'static> {
        match loaded.topology.cluster.declared_major() {
            Some(m) => Options::for_major(m),
            None => Options {
                major_assumed: true,
                ..Options::for_major(crate::version::DEFAULT)
            },
        }
    }
}

/// Validates a topology against its declared major: its own rules, then
/// the shared rules over what it renders.
pub fn validate_topology(loaded: &Loaded) -> Report {
    validate_topology_with(loaded, &Options::for_topology(loaded))
}

/// Validates a topology against `opts`.
pub fn validate_topology_with(loaded: &Loaded, opts: &Options) -> Report {
    let mut report = Report::default();
    check_topology(loaded, &mut report);
    check_view(&topology_view(loaded), opts, &mut report);
    report
}

/// Validates hand-written files, given as their bytes (a UTF-8 BOM and CRLF
/// line ends are read; text that is not UTF-8 is reported with its line).
/// `repl_user` and `subnet` come from the command line or a topology when
/// the files themselves do not say.
pub fn validate_files(
    files: &[(String, Vec<u8>)],
    repl_user: Option<&str>,
    subnet: Option<Cidr>,
    allow_trust: bool,
) -> Report {
    validate_files_with(
        files,
        repl_user,
        subnet,
        allow_trust,
        &Options::for_major(crate::version::DEFAULT),
    )
}

/// [`validate_files`] against `opts`.
pub fn validate_files_with(
    files: &[(String, Vec<u8>)],
    repl_user: Option<&str>,
    subnet: Option<Cidr>,
    allow_trust: bool,
    opts: &Options,
) -> Report {
    let mut report = Report::default();
    let mut texts = Vec::new();
    for (path, bytes) in files {
        match crate::text::decode(path, bytes) {
            Ok(d) => {
                if d.had_bom {
                    report.error(
                        "bom",
                        Location::file(path).at(1),
                        "the file starts with a UTF-8 byte order mark: PostgreSQL reads it as part of the first line and refuses to start (`unrecognized configuration parameter` or `invalid connection type`); save the file as UTF-8 without BOM. The rest of the file was checked as if it were absent",
                    );
                }
                texts.push((path.clone(), d.text));
            }
            Err(d) => report.extend(Report::of(vec![d])),
        }
    }
    let view = files_view(&texts, repl_user, subnet, allow_trust, opts.major);
    check_view(&view, opts, &mut report);
    report
}

/// Tells a `pg_hba.conf` from a `postgresql.conf` by name, then by content.
pub fn is_hba_file(path: &str, text: &str) -> bool {
    let base = path
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    if base.contains("hba") {
        return true;
    }
    if base.contains("postgresql") {
        return false;
    }
    text.lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            matches!(
                first,
                "local" | "host" | "hostssl" | "hostnossl" | "hostgssenc" | "hostnogssenc"
            )
        })
        .unwrap_or(false)
}

fn loc_of(loaded: &Loaded, node: Option<&str>, offset: usize) -> Location {
    let mut l = Location::file(&loaded.path).at(loaded.line_of(offset));
    l.node = node.map(str::to_string);
    l
}

fn topology_view(loaded: &Loaded) -> ClusterView {
    let t = &loaded.topology;
    let mut nodes = Vec::new();
    for node in &t.nodes {
        let home = loc_of(loaded, Some(node.name()), node.name.span().start);
        let mut settings = BTreeMap::new();
        for s in render::effective_settings(t, node) {
            let loc = match s.origin {
                Origin::Default => home.clone(),
                Origin::Cluster(o) => loc_of(loaded, Some(node.name()), o),
                Origin::Node(o) => loc_of(loaded, Some(node.name()), o),
                Origin::Replication(o) => loc_of(loaded, None, o),
            };
            settings.insert(s.name.to_ascii_lowercase(), (s.value.as_raw(), loc));
        }
        nodes.push(NodeView {
            label: node.name().to_string(),
            role: node.role,
            settings,
            home,
            application_name: Some(node.name().to_string()),
        });
    }
    let subnet = t.subnet().map(|s| s.cidr());
    let rules = render::hba_rules(t, subnet.as_ref());
    // The rendered rules follow from `user` and `auth`: point at `auth` when set.
    let hba_at = t
        .replication
        .auth
        .as_ref()
        .map(|a| a.span().start)
        .unwrap_or(t.replication.user.span().start);
    let hba_loc = Location::file(&loaded.path).at(loaded.line_of(hba_at));
    ClusterView {
        nodes,
        hba: vec![(
            hba_loc,
            HbaFile {
                rules,
                ..HbaFile::default()
            },
        )],
        file_notes: vec![],
        repl_user: Some(t.replication.user.get_ref().to_string()),
        conninfo_users: vec![],
        subnet,
        allow_trust: t.cluster.allow_trust,
        data_checksums: t.cluster.data_checksums,
        slots_in_use: t.replication.slots,
        complete: true,
    }
}

/// Splits a libpq connection string into key/value pairs.
pub fn parse_conninfo(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("missing `=` after `{key}` in connection string"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted value in connection string".into()),
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                if c == '\\' {
                    chars.next();
                    value.extend(chars.next());
                    continue;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

fn files_view(
    files: &[(String, String)],
    repl_user: Option<&str>,
    subnet: Option<Cidr>,
    allow_trust: bool,
    major: Major,
) -> ClusterView {
    let mut view = ClusterView {
        repl_user: repl_user.map(str::to_string),
        subnet,
        allow_trust,
        ..ClusterView::default()
    };
    for (path, text) in files {
        if is_hba_file(path, text) {
            let parsed = hba::parse_for(text, major);
            for (line, e) in &parsed.errors {
                view.file_notes
                    .push((Location::file(path).at(*line), FileNote::Syntax(e.clone())));
            }
            for (line, w) in &parsed.warnings {
                view.file_notes
                    .push((Location::file(path).at(*line), FileNote::Hba(w.clone())));
            }
            for inc in &parsed.includes {
                view.file_notes.push((
                    Location::file(path).at(inc.line),
                    FileNote::Include(format!("{} {}", inc.keyword, inc.path)),
                ));
            }
            view.hba.push((Location::file(path), parsed));
            continue;
        }
        let conf: ConfFile = crate::pgconf::parse(text);
        for (line, e) in &conf.errors {
            view.file_notes
                .push((Location::file(path).at(*line), FileNote::Syntax(e.clone())));
        }
        for inc in &conf.includes {
            view.file_notes.push((
                Location::file(path).at(inc.line),
                FileNote::Include(format!("{} '{}'", inc.kind.keyword(), inc.path)),
            ));
        }
        let mut settings = BTreeMap::new();
        for e in &conf.entries {
            settings.insert(
                e.name.clone(),
                (e.value.clone(), Location::file(path).at(e.line)),
            );
        }
        let mut application_name = None;
        let role = match conf.get("primary_conninfo") {
            Some(ci) if !ci.value.trim().is_empty() => {
                if let Ok(pairs) = parse_conninfo(&ci.value) {
                    for (k, v) in pairs {
                        match k.as_str() {
                            "application_name" => application_name = Some(v),
                            "user" if !view.conninfo_users.contains(&v) => {
                                view.conninfo_users.push(v)
                            }
                            _ => {}
                        }
                    }
                }
                if conf
                    .get("primary_slot_name")
                    .is_some_and(|s| !s.value.is_empty())
                {
                    view.slots_in_use = true;
                }
                Role::Standby
            }
            _ => Role::Primary,
        };
        view.nodes.push(NodeView {
            label: path.clone(),
            role,
            settings,
            home: Location::file(path),
            application_name,
        });
    }
    if view.repl_user.is_none() {
        view.repl_user = view.conninfo_users.first().cloned();
    }
    view
}

fn check_topology(loaded: &Loaded, r: &mut Report) {
    let t = &loaded.topology;
    check_repl_user(loaded, r);
    check_subnet(loaded, r);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut ports: HashMap<u16, &str> = HashMap::new();
    let mut storages: HashMap<&Storage, String> = HashMap::new();
    let mut binds: Vec<(&str, String, Location)> = Vec::new();
    for node in &t.nodes {
        let name = node.name();
        let at = loc_of(loaded, Some(name), node.name.span().start);
        if let Some(prev) = seen.insert(name, loaded.line_of(node.name.span().start)) {
            r.error(
                "duplicate-node",
                at.clone(),
                format!("node `{name}` is defined twice (first on line {prev})"),
            );
        }
        check_port(loaded, node, &mut ports, r);
        check_storage(node, &at, &mut storages, &mut binds, r);
        check_owned_settings(loaded, node, r);
    }
    check_nested_binds(&binds, r);
    check_primary_count(loaded, r);
    check_sync_mode(loaded, r);
    if t.replication.auth() == crate::model::AuthMethod::Md5 {
        r.warning(
            "auth-md5",
            Location::file(&loaded.path),
            "md5 password authentication is deprecated; use scram-sha-256",
        );
    }
}

/// The replication user must not be the owner (the superuser).
fn check_repl_user(loaded: &Loaded, r: &mut Report) {
    let t = &loaded.topology;
    if t.replication
        .user
        .get_ref()
        .eq_ignore_ascii_case(t.database.owner.get_ref())
    {
        r.error(
            "repl-user-is-owner",
            loc_of(loaded, None, t.replication.user.span().start),
            format!(
                "the replication user `{}` is also the database owner (the superuser): setup would give the superuser the replication password, and standbys would connect as the superuser; name a separate role",
                t.replication.user.get_ref()
            ),
        );
    }
}

/// A node's published port: not 0, warned below 1024, not another's.
fn check_port<'a>(
    loaded: &Loaded,
    node: &'a crate::Node,
    ports: &mut HashMap<u16, &'a str>,
    r: &mut Report,
) {
    let name = node.name();
    let port = *node.port.get_ref();
    let port_at = loc_of(loaded, Some(name), node.port.span().start);
    if port == 0 {
        r.error(
            "port-zero",
            port_at.clone(),
            "port 0 cannot be published; give the node a port from 1024 to 65535",
        );
    } else if port < 1024 {
        r.warning(
            "port-privileged",
            port_at.clone(),
            format!("port {port} is below 1024: publishing it needs privileges on many hosts"),
        );
    }
    if port == 0 {
        // Reported above; 0 is never a clash.
    } else if let Some(other) = ports.insert(port, name) {
        r.error(
            "duplicate-port",
            port_at,
            format!("port {port} is already published by node `{other}`"),
        );
    }
}

/// A node's data and backup storage: not another's; bind folders kept for
/// the nesting check.
fn check_storage<'a>(
    node: &'a crate::Node,
    at: &Location,
    storages: &mut HashMap<&'a Storage, String>,
    binds: &mut Vec<(&'a str, String, Location)>,
    r: &mut Report,
) {
    let name = node.name();
    for (what, st) in [("data", &node.data), ("backup", &node.backup)] {
        let here = format!("{what} of node `{name}`");
        if let Some(prev) = storages.insert(st, here.clone()) {
            r.error(
                "storage-shared",
                at.clone(),
                format!("{} is used both as {prev} and as {here}: one node's files would overwrite another's", st.label()),
            );
        }
        if let Storage::Bind(p) = st {
            binds.push((p.as_str(), here, at.clone()));
        }
    }
}

/// Settings the tool owns, in `[settings]` and the node's own: refused.
fn check_owned_settings(loaded: &Loaded, node: &crate::Node, r: &mut Report) {
    let t = &loaded.topology;
    let name = node.name();
    for (key, v) in t
        .settings
        .iter()
        .map(|s| (s, None))
        .chain(node.settings.iter().map(|s| (s, Some(name))))
    {
        let (k, val) = key;
        let k = k.as_str();
        if let Some(e) = policy::entry(k) {
            let refused = match e.hold {
                Hold::Owned(None) => true,
                Hold::Owned(Some(v)) => !same_value(&val.get_ref().as_raw(), v),
                Hold::Constrained(_) => false,
            };
            if refused {
                let allowed = match e.hold {
                    Hold::Owned(Some(v)) => {
                        format!(" (only `{v}`, the tool's own value, may be written)")
                    }
                    _ => String::new(),
                };
                r.error(
                    "managed-setting",
                    loc_of(loaded, v, val.span().start),
                    format!("`{k}` is managed by the tool{allowed}: {}", e.why),
                );
            }
        }
    }
}

/// One folder inside another: deleting or replacing one (basebackup, a
/// data move) would take the other with it.
fn check_nested_binds(binds: &[(&str, String, Location)], r: &mut Report) {
    for (i, (a, what_a, at)) in binds.iter().enumerate() {
        for (b, what_b, _) in binds.iter().skip(i + 1) {
            let (outer, inner) = if b.starts_with(&format!("{a}/")) {
                (a, b)
            } else if a.starts_with(&format!("{b}/")) {
                (b, a)
            } else {
                continue;
            };
            r.error(
                "storage-nested",
                at.clone(),
                format!("folder `{inner}` lies inside folder `{outer}` ({what_a} and {what_b}): replacing one would destroy the other"),
            );
        }
    }
}

/// Exactly one primary.
fn check_primary_count(loaded: &Loaded, r: &mut Report) {
    let t = &loaded.topology;
    let file = &loaded.path;
    let primaries: Vec<&str> = t
        .nodes
        .iter()
        .filter(|n| n.role == Role::Primary)
        .map(|n| n.name())
        .collect();
    if primaries.len() != 1 {
        // Point at the second primary, or at the first node when none is.
        let node = t
            .nodes
            .iter()
            .filter(|n| n.role == Role::Primary)
            .nth(1)
            .or(t.nodes.first());
        let at = match node {
            Some(n) => loc_of(loaded, Some(n.name()), n.name.span().start),
            None => Location::file(file).at(1),
        };
        r.error(
            "primary-count",
            at,
            format!(
                "exactly one node must have role = \"primary\"; found {} ({})",
                primaries.len(),
                primaries.join(", ")
            ),
        );
    }
}

/// The mode and `synchronous_standby_names` agree.
fn check_sync_mode(loaded: &Loaded, r: &mut Report) {
    let t = &loaded.topology;
    match (t.replication.mode, &t.replication.synchronous_standby_names) {
        (Mode::Sync, None) => r.error(
            "sync-names-empty",
            loc_of(loaded, None, t.replication.user.span().start),
            "mode = \"sync\" needs synchronous_standby_names, e.g. 'FIRST 1 (\"slave1-db\", \"slave2-db\")'; without it every commit is asynchronous",
        ),
        (Mode::Sync, Some(s)) if s.get_ref().text().trim().is_empty() => r.error(
            "sync-names-empty",
            loc_of(loaded, None, s.span().start),
            "mode = \"sync\" but synchronous_standby_names is empty: every commit would be asynchronous; name the standbys, e.g. 'FIRST 1 (\"slave1-db\", \"slave2-db\")'",
        ),
        (Mode::Async, Some(s)) if !s.get_ref().text().trim().is_empty() => r.error(
            "sync-mode",
            loc_of(loaded, None, s.span().start),
            "mode = \"async\" but synchronous_standby_names is set: commits would wait for standbys",
        ),
        _ => {}
    }
}

fn check_subnet(loaded: &Loaded, r: &mut Report) {
    let t = &loaded.topology;
    let Some(spanned) = &t.network.subnet else {
        return;
    };
    let subnet = *spanned.get_ref();
    let at = loc_of(loaded, None, spanned.span().start);
    // Containers, the gateway, and the one-off containers setup runs.
    let need = t.nodes.len() as u128 + 2;
    if subnet.usable_hosts() < need {
        r.error(
            "subnet-too-small",
            at.clone(),
            format!(
                "subnet {subnet} has room for {} container address(es); the cluster needs {need} ({} node(s) and its one-off containers)",
                subnet.usable_hosts(),
                t.nodes.len()
            ),
        );
    }
    warn_subnet(&subnet, at, r);
}

/// Warnings for a subnet that replication is admitted from.
pub fn warn_subnet(subnet: &Subnet, at: Location, r: &mut Report) {
    if subnet.cidr().prefix() < 8 {
        r.warning(
            "subnet-wide",
            at,
            format!("subnet {subnet} spans a large part of the address space: the replication rule admits every address in it"),
        );
    } else if !subnet.is_private() {
        r.warning(
            "subnet-public",
            at,
            format!("subnet {subnet} is not a private range (10/8, 172.16/12, 192.168/16): Docker would route those addresses to the containers, hiding real hosts"),
        );
    } else if subnet.cidr().prefix() == 32 {
        r.warning(
            "subnet-single-host",
            at,
            format!("subnet {subnet} is a single address: only that host may replicate"),
        );
    }
}

fn standby_count(view: &ClusterView) -> usize {
    view.nodes
        .iter()
        .filter(|n| n.role == Role::Standby)
        .count()
}

/// Two spellings of one setting value: booleans as PostgreSQL reads them,
/// anything else without case or surrounding blanks.
fn same_value(a: &str, b: &str) -> bool {
    match (guc::parse_bool(a), guc::parse_bool(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

fn check_view(view: &ClusterView, opts: &Options, r: &mut Report) {
    for (loc, note) in &view.file_notes {
        match note {
            FileNote::Syntax(e) => r.error("syntax", loc.clone(), e.clone()),
            FileNote::Hba(w) => r.warning("hba-meaning", loc.clone(), w.clone()),
            FileNote::Include(what) => r.warning(
                "include",
                loc.clone(),
                format!("`{what}` is not followed: settings there are not checked"),
            ),
        }
    }
    check_values(view, opts, r);
    check_wal(view, opts, r);
    check_standby_params(view, r);
    check_sync_names(view, r);
    check_conninfo(view, r);
    check_hba(view, r);
    check_owned_in_files(view, r);
    check_constrained(view, opts, r);
}

fn check_values(view: &ClusterView, opts: &Options, r: &mut Report) {
    let cat = opts.catalogue;
    // Checked against another major's catalogue (the image's major is not
    // known yet, or has none committed): what it says is a warning here,
    // and setup checks against the image's own catalogue as errors.
    let exact = !opts.major_assumed && cat.major() == opts.major;
    let flag = |r: &mut Report, code: &'static str, loc: Location, msg: String| {
        if exact {
            r.error(code, loc, msg)
        } else {
            r.warning(code, loc, msg)
        }
    };
    // A did-you-mean costs a scan of the catalogue: the first ones get it,
    // so that a file of a hundred thousand unknown names stays linear.
    let mut suggestions_left = 50usize;
    for n in &view.nodes {
        for (name, (raw, loc)) in &n.settings {
            if let Some(c) = raw.chars().find(|c| c.is_control()) {
                r.error(
                    "setting-control-char",
                    loc.clone(),
                    format!(
                        "{name}: the value holds the control character {}; settings are single-line text",
                        c.escape_default()
                    ),
                );
                continue;
            }
            if name.contains('.') {
                // An extension's own setting: PostgreSQL accepts any value
                // until the extension loads.
                continue;
            }
            let Some(setting) = cat.lookup(name) else {
                let elsewhere = settings::other_majors(cat, name);
                let hint = match &elsewhere {
                    Some(why) => format!(" ({why})"),
                    None if suggestions_left > 0 => {
                        suggestions_left -= 1;
                        cat.suggest(name)
                            .map(|s| format!(" (did you mean `{s}`?)"))
                            .unwrap_or_default()
                    }
                    None => String::new(),
                };
                let assumed = if opts.major_assumed {
                    " (the image's major is read at setup; checked against this one until then)"
                        .to_string()
                } else if cat.major() != opts.major {
                    format!(
                        " (PostgreSQL {} has no committed catalogue: checked against {}'s; setup checks the image's own)",
                        opts.major,
                        cat.major()
                    )
                } else {
                    String::new()
                };
                flag(
                    r,
                    "setting-unknown",
                    loc.clone(),
                    format!(
                        "`{}` is not a PostgreSQL {}{assumed} setting{hint}: the server refuses to start with it in postgresql.conf",
                        crate::names::shown(name),
                        cat.major()
                    ),
                );
                continue;
            };
            if setting.context == settings::Context::Internal {
                flag(
                    r,
                    "setting-internal",
                    loc.clone(),
                    format!("`{name}` cannot be set: it is fixed when PostgreSQL is built or the data folder initialised"),
                );
                continue;
            }
            if let Err(p) = setting.check(raw) {
                flag(r, "setting-value", loc.clone(), format!("{name}: {p}"));
            }
        }
        let (listen, loc) = n.raw("listen_addresses");
        if n.is_set("listen_addresses")
            && listen.split(',').any(|a| {
                a.trim()
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified())
            })
        {
            r.warning(
                "hard-coded-ip",
                loc,
                format!("listen_addresses = '{listen}' names a container address; Docker may assign another on re-creation. Use '*' and restrict access in pg_hba.conf"),
            );
        }
    }
}

fn check_wal(view: &ClusterView, opts: &Options, r: &mut Report) {
    // From 18 on initdb enables data checksums unless told not to.
    let checksums = view.data_checksums || opts.major.initdb_checksums_by_default();
    let nodes = view.nodes.len().max(2);
    let standbys = standby_count(view).max(nodes - 1);
    let async_mode = !view.nodes.iter().any(|n| {
        n.role == Role::Primary && !n.raw("synchronous_standby_names").0.trim().is_empty()
    });
    for n in &view.nodes {
        let (level, loc) = n.raw("wal_level");
        if level.eq_ignore_ascii_case("minimal") {
            r.error(
                "wal-level",
                loc,
                "wal_level = minimal cannot feed a standby; use replica (or logical)",
            );
        }
        if let Some((senders, loc)) = n.quantity("max_wal_senders") {
            // Any node may become the primary: it then serves every other node
            // plus one pg_basebackup stream.
            let need = standbys as i128 + 1;
            if senders < need {
                r.error(
                    "wal-senders",
                    loc,
                    format!("max_wal_senders = {senders} leaves no room: {standbys} standby stream(s) plus one pg_basebackup need {need}"),
                );
            }
        }
        // pg_basebackup streams through a temporary slot (a clone, a
        // re-clone), beside one slot per standby when slots are on.
        if let Some((slots, loc)) = n.quantity("max_replication_slots") {
            let held = if view.slots_in_use {
                standbys as i128
            } else {
                0
            };
            if slots < held + 1 {
                let what = if view.slots_in_use {
                    format!("the {standbys} slot(s) the standbys hold plus the temporary slot of a pg_basebackup")
                } else {
                    "the temporary slot a pg_basebackup streams through: every clone fails"
                        .to_string()
                };
                r.error(
                    "replication-slots",
                    loc,
                    format!(
                        "max_replication_slots = {slots} leaves no room for {what} (need {})",
                        held + 1
                    ),
                );
            }
        }
        if !checksums && !n.flag("wal_log_hints") {
            let (_, loc) = n.raw("wal_log_hints");
            r.warning(
                "no-rejoin",
                loc,
                "neither wal_log_hints = on nor data checksums: after a failover pg_rewind refuses this node, and a failed primary can only be re-cloned",
            );
        }
        if n.role == Role::Primary && async_mode && !view.slots_in_use {
            if let Some((keep, loc)) = n.quantity("wal_keep_size") {
                if keep < MIN_SAFE_WAL_KEEP {
                    r.warning(
                        "wal-keep",
                        loc,
                        format!(
                            "asynchronous standbys without replication slots and wal_keep_size = {}: a standby that falls further behind than that can never catch up (use slots, or at least {})",
                            guc::human_bytes(keep),
                            guc::human_bytes(MIN_SAFE_WAL_KEEP)
                        ),
                    );
                }
            }
        }
    }
}

fn check_standby_params(view: &ClusterView, r: &mut Report) {
    let Some(primary) = view.nodes.iter().find(|n| n.role == Role::Primary) else {
        return;
    };
    for s in view.nodes.iter().filter(|n| n.role == Role::Standby) {
        for p in STANDBY_MIN_PARAMS {
            let (Some((pv, _)), Some((sv, sloc))) = (primary.quantity(p), s.quantity(p)) else {
                continue;
            };
            if sv < pv {
                r.error(
                    "standby-params",
                    sloc,
                    format!("{p} = {sv} is lower than the primary's ({pv} on {}): a hot standby refuses to start", primary.label),
                );
            } else if sv > pv {
                r.warning(
                    "params-unequal",
                    sloc,
                    format!("{p} = {sv} here but {pv} on the primary {}: after a failover to this node, the old primary cannot follow it until the values are equal", primary.label),
                );
            }
        }
    }
}

fn check_sync_names(view: &ClusterView, r: &mut Report) {
    let known: Vec<&str> = view
        .nodes
        .iter()
        .filter_map(|n| n.application_name.as_deref())
        .collect();
    let standby_names: Vec<&str> = view
        .nodes
        .iter()
        .filter(|n| n.role == Role::Standby)
        .filter_map(|n| n.application_name.as_deref())
        .collect();
    let mut done: Vec<String> = Vec::new();
    for n in &view.nodes {
        let (raw, loc) = n.raw("synchronous_standby_names");
        if raw.trim().is_empty() || done.contains(&raw) && n.role == Role::Standby {
            continue;
        }
        match syncrep::parse(&raw) {
            Err(e) => r.error(
                "sync-names-syntax",
                loc,
                format!("synchronous_standby_names = '{raw}': {e}; the server refuses to start"),
            ),
            Ok(None) => {}
            Ok(Some(s)) => {
                if n.role != Role::Primary {
                    continue;
                }
                done.push(raw.clone());
                if view.complete {
                    for name in s.names.iter().filter(|x| *x != "*") {
                        if !known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                            r.error(
                                "sync-names-unknown",
                                loc.clone(),
                                format!("synchronous_standby_names lists `{name}`, which is not a node of this cluster"),
                            );
                        }
                    }
                }
                if view.complete || !standby_names.is_empty() {
                    let candidates = standby_names.iter().filter(|a| s.matches(a)).count();
                    if s.num_sync as usize > candidates {
                        r.error(
                            "sync-count",
                            loc.clone(),
                            format!(
                                "synchronous_standby_names waits for {} standby(s) but only {candidates} standby of this cluster matches it: every commit would wait forever",
                                s.num_sync
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Settings the tool owns, as they appear in hand-written files (a
/// topology cannot set them at all: `managed-setting`).
fn check_owned_in_files(view: &ClusterView, r: &mut Report) {
    for n in &view.nodes {
        for (name, (raw, loc)) in &n.settings {
            let name = name.as_str();
            let refused = match name {
                "promote_trigger_file" => (!raw.trim().is_empty()).then_some("promote-trigger"),
                "recovery_target"
                | "recovery_target_name"
                | "recovery_target_time"
                | "recovery_target_xid"
                | "recovery_target_lsn" => (!raw.trim().is_empty()).then_some("recovery-target"),
                "recovery_target_timeline" => {
                    (!raw.trim().eq_ignore_ascii_case("latest")).then_some("recovery-target")
                }
                "hot_standby" if n.role == Role::Standby => {
                    (guc::parse_bool(raw) == Some(false)).then_some("hot-standby-off")
                }
                "default_transaction_read_only" => {
                    (guc::parse_bool(raw) == Some(true)).then_some("read-only-default")
                }
                "unix_socket_directories" => raw.trim().is_empty().then_some("socket-dirs-empty"),
                _ => None,
            };
            if let Some(code) = refused {
                r.error(
                    code,
                    loc.clone(),
                    format!("{name} = '{}': {}", crate::names::shown(raw), why(name)),
                );
            }
        }
    }
    // A password stored as md5 cannot pass scram-sha-256 authentication.
    let scram_lines: Vec<(usize, &Location)> = view
        .hba
        .iter()
        .flat_map(|(loc, f)| {
            f.rules
                .iter()
                .filter(|rl| rl.method == "scram-sha-256")
                .map(move |rl| (rl.line, loc))
        })
        .collect();
    if let Some((line, hloc)) = scram_lines.first() {
        for n in &view.nodes {
            if let Some((raw, loc)) = n.settings.get("password_encryption") {
                if raw.trim().eq_ignore_ascii_case("md5") {
                    let mut at = (*hloc).clone();
                    at.line = at.line.or(Some(*line));
                    r.error(
                        "password-encryption",
                        loc.clone(),
                        format!("password_encryption = md5 stores passwords as md5, but {at} requires scram-sha-256: every such login is refused; use scram-sha-256"),
                    );
                }
            }
        }
    }
}

/// What the constrained rules read besides the node they judge.
struct Rules<'a> {
    primary: Option<&'a NodeView>,
    sync_names: Option<syncrep::SyncStandbyNames>,
    opts: &'a Options<'a>,
}

impl Rules<'_> {
    /// A quantity setting of `n` in its base unit (bytes, microseconds).
    fn kb(&self, n: &NodeView, name: &str) -> Option<i128> {
        let (raw, _) = n.raw(name);
        let s = self.opts.catalogue.lookup(name)?;
        guc::parse_quantity(&raw, s.kind()).ok()
    }
}

/// Why the policy holds `name`.
fn why(name: &str) -> &'static str {
    policy::entry(name).map(|e| e.why).unwrap_or_default()
}

/// The constrained settings' rules (see [`crate::policy`]), each node
/// against each rule, then the cluster's shared memory.
fn check_constrained(view: &ClusterView, opts: &Options, r: &mut Report) {
    let primary = view.nodes.iter().find(|n| n.role == Role::Primary);
    let cx = Rules {
        primary,
        sync_names: primary.and_then(|p| {
            syncrep::parse(&p.raw("synchronous_standby_names").0)
                .ok()
                .flatten()
        }),
        opts,
    };
    const NODE_RULES: [fn(&Rules, &NodeView, &mut Report); 7] = [
        sync_commit_rule,
        stall_rule,
        connections_rule,
        archive_rule,
        ssl_rule,
        slot_keep_rule,
        apply_delay_rule,
    ];
    let mut shared_total: i128 = 0;
    for n in &view.nodes {
        for rule in NODE_RULES {
            rule(&cx, n, r);
        }
        if let Some(sb) = cx.kb(n, "shared_buffers") {
            // Bytes.
            shared_total += sb;
        }
    }
    // Every node shares one Docker host's memory.
    if let (Some(mem), Some(first)) = (opts.memory, view.nodes.first()) {
        let total = shared_total;
        if total > 0 && total as u128 > u128::from(mem) {
            let (raw, loc) = first.raw("shared_buffers");
            r.error(
                "shared-buffers-memory",
                loc,
                format!(
                    "shared_buffers = {raw} on each of {} node(s) is {} together, more than the Docker host's {} of memory: {}",
                    view.nodes.len(),
                    guc::human_bytes(total),
                    guc::human_bytes(mem as i128),
                    why("shared_buffers")
                ),
            );
        }
    }
}

/// Synchronous commit as strong as the mode promises.
fn sync_commit_rule(cx: &Rules, n: &NodeView, r: &mut Report) {
    if cx.sync_names.is_some() {
        let (raw, loc) = n.raw("synchronous_commit");
        let v = raw.trim().to_ascii_lowercase();
        let strong = v == "remote_apply" || guc::parse_bool(&v) == Some(true);
        if !strong {
            r.error(
                "sync-commit-weak",
                loc,
                format!(
                    "synchronous_commit = {raw} with synchronous standbys named: {}",
                    why("synchronous_commit")
                ),
            );
        }
    }
}

/// A cut-off synchronous standby holds commits for wal_sender_timeout.
fn stall_rule(cx: &Rules, n: &NodeView, r: &mut Report) {
    if cx.sync_names.is_some() && n.is_set("wal_sender_timeout") {
        // Microseconds.
        if let Some(us) = cx.kb(n, "wal_sender_timeout") {
            let (raw, loc) = n.raw("wal_sender_timeout");
            let message = format!(
                "wal_sender_timeout = {raw}{}: {}",
                if us == 0 { " disables the timeout" } else { "" },
                why("wal_sender_timeout")
            );
            // No bound at all is refused; a long one is the user's call.
            if us == 0 {
                r.error("sync-stall-unbounded", loc, message);
            } else if us > 60_000_000 {
                r.warning("sync-stall-unbounded", loc, message);
            }
        }
    }
}

/// Connections: the reserved ones must leave room.
fn connections_rule(cx: &Rules, n: &NodeView, r: &mut Report) {
    if let (Some((max, loc)), Some((su, _))) = (
        n.quantity("max_connections"),
        n.quantity("superuser_reserved_connections"),
    ) {
        let reserved = if cx.opts.major.has_reserved_connections() {
            n.quantity("reserved_connections").map(|q| q.0).unwrap_or(0)
        } else {
            0
        };
        if su + reserved >= max {
            r.error(
                "connections-reserved",
                loc,
                format!(
                    "max_connections = {max} is not above the {} reserved connection(s) (superuser_reserved_connections{}): the server refuses to start",
                    su + reserved,
                    if cx.opts.major.has_reserved_connections() { " + reserved_connections" } else { "" }
                ),
            );
        }
    }
}

/// Archiving with nowhere to archive to.
fn archive_rule(_: &Rules, n: &NodeView, r: &mut Report) {
    let (mode, mode_loc) = n.raw("archive_mode");
    let archiving = matches!(mode.trim().to_ascii_lowercase().as_str(), "always")
        || guc::parse_bool(&mode) == Some(true);
    if archiving
        && n.raw("archive_command").0.trim().is_empty()
        && n.raw("archive_library").0.trim().is_empty()
    {
        r.error(
            "archive-no-command",
            mode_loc,
            format!(
                "archive_mode = {mode} with no archive_command nor archive_library: {}",
                why("archive_mode")
            ),
        );
    }
}

/// SSL without a certificate.
fn ssl_rule(_: &Rules, n: &NodeView, r: &mut Report) {
    let (ssl, ssl_loc) = n.raw("ssl");
    if guc::parse_bool(&ssl) == Some(true)
        && !(n.is_set("ssl_cert_file") && n.is_set("ssl_key_file"))
    {
        r.error(
            "ssl-no-certificate",
            ssl_loc,
            format!("ssl = on without ssl_cert_file and ssl_key_file: {}. Mount a certificate and name it, or keep ssl = off", why("ssl")),
        );
    }
}

/// Slots invalidated by an ordinary checkpoint.
fn slot_keep_rule(cx: &Rules, n: &NodeView, r: &mut Report) {
    if let (Some(keep), Some(max_wal)) =
        (cx.kb(n, "max_slot_wal_keep_size"), cx.kb(n, "max_wal_size"))
    {
        if keep >= 0 && keep < max_wal {
            let (raw, loc) = n.raw("max_slot_wal_keep_size");
            r.error(
                "slot-wal-keep",
                loc,
                format!("max_slot_wal_keep_size = {raw} is below max_wal_size ({}): {}; use -1 or at least max_wal_size", n.raw("max_wal_size").0, why("max_slot_wal_keep_size")),
            );
        }
    }
}

/// An apply delay where commits wait for apply.
fn apply_delay_rule(cx: &Rules, n: &NodeView, r: &mut Report) {
    if n.role == Role::Standby {
        let delay = cx.kb(n, "recovery_min_apply_delay").unwrap_or(0);
        let listed = match (&cx.sync_names, &n.application_name) {
            (Some(s), Some(app)) => s.matches(app),
            _ => false,
        };
        let remote_apply = cx.primary.is_some_and(|p| {
            p.raw("synchronous_commit")
                .0
                .trim()
                .eq_ignore_ascii_case("remote_apply")
        });
        if delay > 0 && listed && remote_apply {
            let (raw, loc) = n.raw("recovery_min_apply_delay");
            r.error(
                "apply-delay-sync",
                loc,
                format!("recovery_min_apply_delay = {raw} on a synchronous standby under synchronous_commit = remote_apply: {}", why("recovery_min_apply_delay")),
            );
        }
    }
}

fn check_conninfo(view: &ClusterView, r: &mut Report) {
    // Two standbys with one application_name: both match the same name in
    // synchronous_standby_names, and the primary's view cannot tell them
    // apart.
    let mut seen: HashMap<String, &str> = HashMap::new();
    for n in view.nodes.iter().filter(|n| n.role == Role::Standby) {
        if let Some(app) = &n.application_name {
            let key = app.to_ascii_lowercase();
            if let Some(other) = seen.insert(key, &n.label) {
                let loc = n
                    .settings
                    .get("primary_conninfo")
                    .map(|(_, l)| l.clone())
                    .unwrap_or_else(|| n.home.clone());
                r.error(
                    "conninfo-appname-duplicate",
                    loc,
                    format!("application_name `{}` is also {other}'s: both standbys match the same name in synchronous_standby_names, which cannot tell them apart", crate::names::shown(app)),
                );
            }
        }
    }
    let primary_ssl = view
        .nodes
        .iter()
        .find(|n| n.role == Role::Primary)
        .map(|p| guc::parse_bool(&p.raw("ssl").0) == Some(true));
    let sync_names = view
        .nodes
        .iter()
        .filter(|n| n.role == Role::Primary)
        .find_map(|n| {
            syncrep::parse(&n.raw("synchronous_standby_names").0)
                .ok()
                .flatten()
        });
    for n in view.nodes.iter().filter(|n| n.role == Role::Standby) {
        let Some((ci, loc)) = n.settings.get("primary_conninfo") else {
            continue;
        };
        let pairs = match parse_conninfo(ci) {
            Ok(p) => p,
            Err(e) => {
                r.error(
                    "setting-value",
                    loc.clone(),
                    format!("primary_conninfo: {e}"),
                );
                continue;
            }
        };
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if let (Some(mode), Some(false)) = (get("sslmode"), primary_ssl) {
            if matches!(mode, "require" | "verify-ca" | "verify-full") {
                r.error(
                    "conninfo-ssl",
                    loc.clone(),
                    format!("sslmode={mode}, but the primary has ssl = off: the standby is refused (\"server does not support SSL, but SSL was required\")"),
                );
            }
        }
        if get("password").is_some() {
            r.error(
                "plaintext-password",
                loc.clone(),
                "primary_conninfo holds a password in plain text; keep it out of config files (a passfile, or the tool's generated secrets)",
            );
        }
        if let Some(host) = get("host") {
            if host.parse::<IpAddr>().is_ok() {
                r.warning("hard-coded-ip", loc.clone(), format!("primary_conninfo connects to the address {host}; use the primary's host name (its Compose service)"));
            }
        }
        if let Some(s) = &sync_names {
            match get("application_name") {
                None => r.error(
                    "conninfo-appname-missing",
                    loc.clone(),
                    "primary_conninfo has no application_name: the standby connects as `walreceiver` and never matches synchronous_standby_names, so synchronous commits wait forever",
                ),
                Some(app) if !s.matches(app) => r.warning(
                    "conninfo-appname-unlisted",
                    loc.clone(),
                    format!("application_name `{app}` is not listed in the primary's synchronous_standby_names: this standby is never synchronous"),
                ),
                _ => {}
            }
        }
    }
}

fn is_host_conn(c: ConnType) -> bool {
    !matches!(c, ConnType::Local)
}

fn check_hba(view: &ClusterView, r: &mut Report) {
    for (file_loc, hba) in &view.hba {
        let at = |line: usize| {
            let mut l = file_loc.clone();
            if l.line.is_none() {
                l.line = Some(line);
            }
            l
        };
        for rule in &hba.rules {
            if rule.method == "trust" && rule.is_remote() {
                let what = format!(
                    "`{}` grants trust (no password) to {} from {}",
                    rule.render()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                    rule.users
                        .iter()
                        .map(|u| u.text.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    rule.address
                        .as_ref()
                        .map(|a| a.to_string())
                        .unwrap_or_default()
                );
                if view.allow_trust {
                    r.warning(
                        "trust-remote",
                        at(rule.line),
                        format!("{what} (allowed by allow_trust)"),
                    );
                } else {
                    r.error("trust-remote", at(rule.line), format!("{what}: anyone who reaches the server from there connects without a password; use scram-sha-256 (or set allow_trust = true)"));
                }
            }
            if rule.method == "password" && rule.is_remote() {
                r.warning(
                    "hba-cleartext",
                    at(rule.line),
                    "method `password` sends the password in clear text; use scram-sha-256",
                );
            }
        }
        let Some(user) = view.repl_user.as_deref() else {
            continue;
        };
        // Rules meant for replication that name some other role.
        for rule in &hba.rules {
            let is_repl = rule.databases.iter().any(|d| d.is_keyword("replication"));
            if !is_repl || !is_host_conn(rule.conn) {
                continue;
            }
            for u in &rule.users {
                let special = !u.quoted
                    && (u.text == "all" || u.text.starts_with('+') || u.text.starts_with('@'));
                if !special && u.text != user {
                    r.error(
                        "hba-user",
                        at(rule.line),
                        format!("replication line names role `{}`, but the standbys connect as `{user}`: it never matches", u.text),
                    );
                }
            }
        }
        // Every role a standby connects as must be admitted (each standby's
        // primary_conninfo may name its own).
        let mut users: Vec<&str> = vec![user];
        for u in &view.conninfo_users {
            if !users.contains(&u.as_str()) {
                users.push(u);
            }
        }
        for user in users {
            check_repl_admitted(view, hba, user, &at, r);
        }
    }
}

/// The replication role must be admitted from the cluster network by the
/// first line that matches it.
fn check_repl_admitted(
    view: &ClusterView,
    hba: &HbaFile,
    user: &str,
    at: &dyn Fn(usize) -> Location,
    r: &mut Report,
) {
    let from = view.subnet.map(|s| representative(&s));
    let attempt = Attempt {
        from,
        database: "replication",
        replication: true,
        user,
        server_net: view.subnet,
    };
    let chosen = match from {
        Some(_) => hba.first_match(&attempt),
        // The network is not known: each line is tried from an address it
        // names (as if the network were that one).
        None => hba.rules.iter().find_map(|rule| {
            if !is_host_conn(rule.conn) {
                return None;
            }
            let (from, net) = match &rule.address {
                Some(hba::Address::Cidr(c)) => (representative(c), Some(*c)),
                // `samenet` names the server's own network, whatever it is.
                Some(hba::Address::SameNet) => {
                    let net: Cidr = "10.0.0.0/8".parse().expect("a valid block");
                    (representative(&net), Some(net))
                }
                _ => (IpAddr::from([10, 0, 0, 2]), None),
            };
            let m = rule.matching(&Attempt {
                from: Some(from),
                server_net: net,
                ..attempt.clone()
            });
            (m != hba::Match::No).then_some((rule, m))
        }),
    };
    let net = view
        .subnet
        .map(|s| format!(" from {s}"))
        .unwrap_or_default();
    match chosen {
        Some((rule, hba::Match::Maybe)) => r.warning(
            "hba-replication-unknown",
            at(rule.line),
            format!(
                "whether this line admits replication by `{user}`{net} depends on what cannot be checked offline \
                 (role membership, a file of names, DNS, or the server's own network): make sure it does"
            ),
        ),
        Some((rule, _)) if rule.method != "reject" => {}
        Some((rule, _)) => r.error(
            "hba-replication-rejected",
            at(rule.line),
            format!("replication by `{user}`{net} is rejected by this line"),
        ),
        None => {
            let all_only = hba.rules.iter().any(|rl| {
                is_host_conn(rl.conn) && rl.databases.iter().any(|d| d.is_keyword("all"))
            });
            let hint = if all_only {
                " (`all` in the DATABASE column does not match replication connections; name `replication`)"
            } else {
                ""
            };
            // Where such a line belongs: after the last rule.
            let after = hba.rules.last().map(|rl| rl.line).unwrap_or(1);
            r.error(
                "hba-replication",
                at(after),
                format!("no line lets `{user}` connect for replication{net}: standbys and pg_basebackup are refused{hint}"),
            );
        }
    }
}

/// An address a container on this network would have (the first after the gateway).
fn representative(c: &Cidr) -> IpAddr {
    match c.network() {
        IpAddr::V4(a) if c.prefix() <= 30 => IpAddr::V4((u32::from(a) + 2).into()),
        IpAddr::V6(a) if c.prefix() <= 126 => IpAddr::V6((u128::from(a) + 2).into()),
        other => other,
    }
}
