//! The same topology as a CloudNativePG `Cluster` on Kubernetes: the
//! `Cluster` manifest and, apart, the `Secret` with the owner's password
//! (never inline in the `Cluster`), rendered to YAML strings (the caller
//! writes them). What CloudNativePG decides itself (node names, which
//! standbys are synchronous, storage, the replication user) is listed as a
//! note; what would change durability is refused.

use crate::compose::json_scalar as s;
use crate::model::{Mode, Topology};
use crate::syncrep::Method;

/// What the export writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifests {
    /// The `Cluster`.
    pub cluster: String,
    /// The `Secret` of the owner (`kubernetes.io/basic-auth`), with
    /// `password` in it: written owner-only.
    pub secret: String,
    /// What the topology says that CloudNativePG does its own way.
    pub notes: Vec<String>,
}

/// Settings CloudNativePG fixes or blocks (its operator refuses or
/// overrides them): left out of `postgresql.parameters`.
pub const OPERATOR_OWNS: &[&str] = &[
    "allow_system_table_mods",
    "archive_cleanup_command",
    "archive_command",
    "archive_mode",
    "bonjour",
    "bonjour_name",
    "cluster_name",
    "config_file",
    "data_directory",
    "data_sync_retry",
    "dynamic_shared_memory_type",
    "event_source",
    "external_pid_file",
    "hba_file",
    "hot_standby",
    "huge_pages",
    "ident_file",
    "jit_provider",
    "listen_addresses",
    "log_destination",
    "log_directory",
    "log_file_mode",
    "log_filename",
    "log_rotation_age",
    "log_rotation_size",
    "log_truncate_on_rotation",
    "logging_collector",
    "port",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restart_after_crash",
    "restore_command",
    "shared_preload_libraries",
    "ssl",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_crl_file",
    "ssl_dh_params_file",
    "ssl_ecdh_curve",
    "ssl_key_file",
    "ssl_passphrase_command",
    "ssl_passphrase_command_supports_reload",
    "ssl_prefer_server_ciphers",
    "stats_temp_directory",
    "synchronized_standby_slots",
    "synchronous_standby_names",
    "syslog_facility",
    "syslog_ident",
    "syslog_sequence_numbers",
    "syslog_split_messages",
    "temp_tablespaces",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
];

/// Settings the tool sets for its own engine that CloudNativePG sets its
/// own way: not carried over, and not worth a note.
const TOOL_DEFAULTS: &[&str] = &[
    "wal_level",
    "max_wal_senders",
    "max_replication_slots",
    "password_encryption",
    "synchronous_commit",
];

/// The owner's `Secret`'s name.
pub fn secret_name(t: &Topology) -> String {
    format!("{}-app", t.name())
}

/// The catalogue of images the `Cluster` takes its major from: a
/// `ClusterImageCatalog` of this name, as CloudNativePG publishes one.
pub const IMAGE_CATALOG: &str = "postgresql";

/// Renders the manifests. Errors (all of them) when the topology cannot run
/// on CloudNativePG without a change to durability or to its name.
pub fn render(t: &Topology, password: &str) -> Result<Manifests, Vec<String>> {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let name = t.name();
    // A Kubernetes object name: a DNS-1123 label here (the operator derives
    // services and pods from it).
    if name.contains('_') || name.len() > 50 {
        errors.push(format!(
            "cluster name `{name}` cannot name a Kubernetes object (lower-case letters, digits and `-`, at most 50 here): rename the cluster in the topology"
        ));
    }
    let instances = t.nodes.len();
    let mut synchronous = None;
    if t.replication.mode == Mode::Sync {
        match t
            .replication
            .synchronous_standby_names
            .as_ref()
            .map(|v| v.get_ref().parsed())
        {
            Some(Ok(Some(sn))) => {
                let n = sn.num_sync as usize;
                if n == 0 || n >= instances {
                    errors.push(format!(
                        "synchronous_standby_names asks for {n} synchronous standby(s), but {instances} instance(s) leave {} standby(s): CloudNativePG would block every commit",
                        instances.saturating_sub(1)
                    ));
                }
                let listed_all = sn.names.iter().any(|x| x == "*")
                    || t.nodes.iter().all(|node| sn.matches(node.name()));
                if !listed_all {
                    notes.push(format!(
                        "synchronous_standby_names '{sn}' names some nodes only: CloudNativePG chooses its synchronous standbys among all instances (the count, {n}, is kept)"
                    ));
                }
                if sn.method == Method::First && sn.names.len() > 1 {
                    notes.push(format!(
                        "the priority order of '{sn}' is not kept: CloudNativePG orders its instances itself"
                    ));
                }
                synchronous = Some((
                    match sn.method {
                        Method::Any => "any",
                        Method::First => "first",
                    },
                    n,
                ));
            }
            Some(Err(e)) => errors.push(format!("synchronous_standby_names: {e}")),
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    notes.push(format!(
        "node names ({}) are not kept: CloudNativePG names its instances {name}-1, {name}-2, ...",
        t.nodes
            .iter()
            .map(|n| n.name())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    notes.push(format!(
        "the replication user `{}` is not used: CloudNativePG replicates as its own `streaming_replica` with TLS certificates",
        t.replication.user.get_ref()
    ));
    if t.nodes.iter().any(|n| {
        matches!(n.data, crate::Storage::Bind(_)) || matches!(n.backup, crate::Storage::Bind(_))
    }) {
        notes.push(
            "bind-mounted folders become persistent volume claims of `storage.size` (1Gi here: set your own)".into(),
        );
    }
    let major = t
        .cluster
        .declared_major()
        .unwrap_or(crate::version::DEFAULT);
    let first = t
        .nodes
        .first()
        .map(|n| crate::render::effective_settings(t, n))
        .unwrap_or_default();
    let mut params: Vec<(String, String)> = Vec::new();
    let mut dropped = Vec::new();
    for st in &first {
        let key = st.name.to_ascii_lowercase();
        if OPERATOR_OWNS.contains(&key.as_str()) {
            if !TOOL_DEFAULTS.contains(&key.as_str())
                && !matches!(st.origin, crate::render::Origin::Default)
            {
                dropped.push(key);
            }
            continue;
        }
        if TOOL_DEFAULTS.contains(&key.as_str())
            && matches!(st.origin, crate::render::Origin::Default)
        {
            continue;
        }
        params.push((key, st.value.as_raw()));
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "set by CloudNativePG itself, not carried over: {}",
            dropped.join(", ")
        ));
    }
    if t.nodes.iter().any(|n| !n.settings.is_empty()) {
        notes.push("per-node settings are not carried over: every instance of a Cluster runs the same parameters".into());
    }
    let mut y = Yaml::default();
    y.line(0, &format!("# CloudNativePG Cluster of topology {name}, exported by `cargo xtask export --engine cloudnative-pg`."));
    y.line(
        0,
        &format!(
            "# The owner's password is in the Secret {} (secret.yaml), never here.",
            secret_name(t)
        ),
    );
    y.line(0, "apiVersion: postgresql.cnpg.io/v1");
    y.line(0, "kind: Cluster");
    y.line(0, "metadata:");
    y.line(2, &format!("name: {}", s(name)));
    y.line(0, "spec:");
    y.line(2, &format!("instances: {instances}"));
    y.line(2, "imageCatalogRef:");
    y.line(4, "apiGroup: postgresql.cnpg.io");
    y.line(4, "kind: ClusterImageCatalog");
    y.line(4, &format!("name: {}", s(IMAGE_CATALOG)));
    y.line(4, &format!("major: {major}"));
    y.line(2, "postgresql:");
    y.line(4, "parameters:");
    for (k, v) in &params {
        y.line(6, &format!("{}: {}", s(k), s(v)));
    }
    if let Some((method, number)) = synchronous {
        y.line(4, "synchronous:");
        y.line(6, &format!("method: {method}"));
        y.line(6, &format!("number: {number}"));
        // Commits wait when too few standbys remain, as this tool's do.
        y.line(6, "dataDurability: required");
    }
    y.line(4, "pg_hba:");
    y.line(
        6,
        &format!(
            "- {}",
            s(&format!(
                "host all all all {}",
                t.replication.auth().as_str()
            ))
        ),
    );
    y.line(2, "bootstrap:");
    y.line(4, "initdb:");
    y.line(
        6,
        &format!("database: {}", s(t.database.name.get_ref().as_str())),
    );
    y.line(
        6,
        &format!("owner: {}", s(t.database.owner.get_ref().as_str())),
    );
    y.line(6, &format!("dataChecksums: {}", t.cluster.data_checksums));
    y.line(6, "secret:");
    y.line(8, &format!("name: {}", s(&secret_name(t))));
    y.line(2, "storage:");
    y.line(4, "size: \"1Gi\"");
    let mut sec = Yaml::default();
    sec.line(0, &format!("# The owner's password of CloudNativePG Cluster {name}: apply it before cluster.yaml; never commit it."));
    sec.line(0, "apiVersion: v1");
    sec.line(0, "kind: Secret");
    sec.line(0, "metadata:");
    sec.line(2, &format!("name: {}", s(&secret_name(t))));
    sec.line(0, "type: kubernetes.io/basic-auth");
    sec.line(0, "stringData:");
    sec.line(
        2,
        &format!("username: {}", s(t.database.owner.get_ref().as_str())),
    );
    sec.line(2, &format!("password: {}", s(password)));
    Ok(Manifests {
        cluster: y.0,
        secret: sec.0,
        notes,
    })
}

#[derive(Default)]
struct Yaml(String);

impl Yaml {
    fn line(&mut self, indent: usize, text: &str) {
        self.0.push_str(&" ".repeat(indent));
        self.0.push_str(text);
        self.0.push('\n');
    }
}
