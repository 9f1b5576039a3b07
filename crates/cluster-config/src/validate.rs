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
use crate::render::{self, Origin};
use crate::settings;
use crate::syncrep;
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

/// PostgreSQL 15's defaults for the settings the rules read.
pub fn pg_default(name: &str) -> Option<&'static str> {
    Some(match name {
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
        guc::parse_quantity(&raw, guc::kind_of(name))
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
}

/// Validates a topology: its own rules, then the shared rules over what it
/// renders.
pub fn validate_topology(loaded: &Loaded) -> Report {
    let mut report = Report::default();
    check_topology(loaded, &mut report);
    check_view(&topology_view(loaded), &mut report);
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
            Err(d) => report.extend(Report {
                diagnostics: vec![d],
            }),
        }
    }
    let view = files_view(&texts, repl_user, subnet, allow_trust);
    check_view(&view, &mut report);
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
) -> ClusterView {
    let mut view = ClusterView {
        repl_user: repl_user.map(str::to_string),
        subnet,
        allow_trust,
        ..ClusterView::default()
    };
    let mut conninfo_user = None;
    for (path, text) in files {
        if is_hba_file(path, text) {
            let parsed = hba::parse(text);
            for (line, e) in &parsed.errors {
                view.file_notes
                    .push((Location::file(path).at(*line), FileNote::Syntax(e.clone())));
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
                            "user" => conninfo_user = conninfo_user.or(Some(v)),
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
        view.repl_user = conninfo_user;
    }
    view
}

fn check_topology(loaded: &Loaded, r: &mut Report) {
    let t = &loaded.topology;
    let file = &loaded.path;
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
        for (key, v) in t
            .settings
            .iter()
            .map(|s| (s, None))
            .chain(node.settings.iter().map(|s| (s, Some(name))))
        {
            let (k, val) = key;
            let k = k.as_str();
            if let Some((_, why)) = render::MANAGED
                .iter()
                .find(|(m, _)| m.eq_ignore_ascii_case(k))
            {
                r.error(
                    "managed-setting",
                    loc_of(loaded, v, val.span().start),
                    format!("`{k}` is managed by the tool: {why}"),
                );
            }
        }
    }
    // One folder inside another: deleting or replacing one (basebackup, a
    // data move) would take the other with it.
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
    match (t.replication.mode, &t.replication.synchronous_standby_names) {
        (Mode::Sync, None) => r.error(
            "sync-names-empty",
            loc_of(loaded, None, t.replication.user.span().start),
            "mode = \"sync\" needs synchronous_standby_names, e.g. 'FIRST 1 (\"slave1-db\", \"slave2-db\")'; without it every commit is asynchronous",
        ),
        (Mode::Sync, Some(s)) if s.get_ref().trim().is_empty() => r.error(
            "sync-names-empty",
            loc_of(loaded, None, s.span().start),
            "mode = \"sync\" but synchronous_standby_names is empty: every commit would be asynchronous; name the standbys, e.g. 'FIRST 1 (\"slave1-db\", \"slave2-db\")'",
        ),
        (Mode::Async, Some(s)) if !s.get_ref().trim().is_empty() => r.error(
            "sync-mode",
            loc_of(loaded, None, s.span().start),
            "mode = \"async\" but synchronous_standby_names is set: commits would wait for standbys",
        ),
        _ => {}
    }
    if t.replication.auth() == crate::model::AuthMethod::Md5 {
        r.warning(
            "auth-md5",
            Location::file(file),
            "md5 password authentication is deprecated; use scram-sha-256",
        );
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

fn check_view(view: &ClusterView, r: &mut Report) {
    for (loc, note) in &view.file_notes {
        match note {
            FileNote::Syntax(e) => r.error("syntax", loc.clone(), e.clone()),
            FileNote::Include(what) => r.warning(
                "include",
                loc.clone(),
                format!("`{what}` is not followed: settings there are not checked"),
            ),
        }
    }
    check_values(view, r);
    check_wal(view, r);
    check_standby_params(view, r);
    check_sync_names(view, r);
    check_conninfo(view, r);
    check_hba(view, r);
}

fn check_values(view: &ClusterView, r: &mut Report) {
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
            let Some(setting) = settings::lookup(name) else {
                let hint = settings::suggest(name)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                r.error(
                    "setting-unknown",
                    loc.clone(),
                    format!("`{name}` is not a PostgreSQL 15 setting{hint}: the server refuses to start with it in postgresql.conf"),
                );
                continue;
            };
            if setting.context == settings::Context::Internal {
                r.error(
                    "setting-internal",
                    loc.clone(),
                    format!("`{name}` cannot be set: it is fixed when PostgreSQL is built or the data folder initialised"),
                );
                continue;
            }
            if let Err(p) = setting.check(raw) {
                r.error("setting-value", loc.clone(), format!("{name}: {p}"));
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

fn check_wal(view: &ClusterView, r: &mut Report) {
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
        if view.slots_in_use {
            if let Some((slots, loc)) = n.quantity("max_replication_slots") {
                if slots < standbys as i128 {
                    r.error(
                        "replication-slots",
                        loc,
                        format!("max_replication_slots = {slots} is fewer than the {standbys} slot(s) the standbys use"),
                    );
                }
            }
        }
        if !view.data_checksums && !n.flag("wal_log_hints") {
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

fn check_conninfo(view: &ClusterView, r: &mut Report) {
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
        let from = view.subnet.map(|s| representative(&s));
        let attempt = Attempt {
            from,
            database: "replication",
            replication: true,
            user,
        };
        let chosen = match from {
            Some(_) => hba.first_match(&attempt, true),
            None => hba.rules.iter().find(|rule| {
                is_host_conn(rule.conn)
                    && rule.matches(
                        &Attempt {
                            from: Some(match &rule.address {
                                Some(hba::Address::Cidr(c)) => representative(c),
                                _ => IpAddr::from([10, 0, 0, 2]),
                            }),
                            ..attempt.clone()
                        },
                        true,
                    )
            }),
        };
        let net = view
            .subnet
            .map(|s| format!(" from {s}"))
            .unwrap_or_default();
        match chosen {
            Some(rule) if rule.method != "reject" => {}
            Some(rule) => r.error(
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
}

/// An address a container on this network would have (the first after the gateway).
fn representative(c: &Cidr) -> IpAddr {
    match c.network() {
        IpAddr::V4(a) if c.prefix() <= 30 => IpAddr::V4((u32::from(a) + 2).into()),
        IpAddr::V6(a) if c.prefix() <= 126 => IpAddr::V6((u128::from(a) + 2).into()),
        other => other,
    }
}
