//! The settings the tool depends on, in one table: each is **owned** (the
//! tool sets it, and a topology may not set another value) or
//! **constrained** (a topology may set it within a rule, checked by
//! validation with the reason and what the server would do). Every entry
//! says why; `validate` reads this table for the owned ones, and names the
//! constrained ones' rules; the corpus holds a refused case for each.

/// How the tool holds a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The tool sets it. `Some(v)`: a topology may repeat `v` and nothing
    /// else; `None`: a topology may not set it at all (the tool writes it
    /// per node or per run, or it must stay unset).
    Owned(Option<&'static str>),
    /// A topology may set it; the named rule (a diagnostic code) refuses
    /// values that break replication or the tool's guarantees.
    Constrained(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    pub hold: Hold,
    /// Why the tool holds it, and what happens otherwise.
    pub why: &'static str,
}

const fn owned(name: &'static str, value: Option<&'static str>, why: &'static str) -> Entry {
    Entry {
        name,
        hold: Hold::Owned(value),
        why,
    }
}

const fn constrained(name: &'static str, rule: &'static str, why: &'static str) -> Entry {
    Entry {
        name,
        hold: Hold::Constrained(rule),
        why,
    }
}

/// The table. Names are PostgreSQL's, lower case.
pub const POLICY: &[Entry] = &[
    owned("port", None, "the server listens on 5432 inside its container; set the node's `port` to publish another"),
    owned("listen_addresses", None, "the tool sets '*' (container addresses change; hard-coding one breaks on re-creation)"),
    owned("config_file", None, "the Compose file passes it"),
    owned("hba_file", None, "the Compose file passes it"),
    owned("ident_file", None, "the image's default is used; the tool's pg_hba.conf has no ident maps"),
    owned("data_directory", None, "the image's PGDATA is used"),
    owned("primary_conninfo", None, "written per standby with the right application_name and the generated password"),
    owned("primary_slot_name", None, "set per standby from `replication.slots`"),
    owned("synchronous_standby_names", None, "set it in [replication]; a failover narrows it and setup restores it"),
    owned("hot_standby", Some("on"), "the tool reads every standby over SQL (status, failover's choice, rejoin's checks); with hot_standby = off a standby refuses every connection"),
    owned("password_encryption", None, "follows [replication] auth: a password stored as md5 cannot log in under scram-sha-256 authentication (every login is refused), and the other way round"),
    owned("unix_socket_directories", None, "the image's entrypoint and the tool's psql fallback connect over the socket in /var/run/postgresql; an empty or other value leaves them no way in"),
    owned("default_transaction_read_only", Some("off"), "the tool writes on the primary (the replication role, the check table, the drill's writes); with it on every write fails and a primary looks like a standby to clients"),
    owned("promote_trigger_file", None, "a standby that promotes itself when a file appears becomes a second writable node behind the tool's back; the tool promotes with pg_promote() after fencing the old primary"),
    owned("recovery_target", None, "a standby with a recovery target stops following (or promotes itself) when it reaches it: two writable nodes, or a standby that silently falls behind"),
    owned("recovery_target_name", None, "as recovery_target"),
    owned("recovery_target_time", None, "as recovery_target"),
    owned("recovery_target_xid", None, "as recovery_target"),
    owned("recovery_target_lsn", None, "as recovery_target"),
    owned("recovery_target_inclusive", None, "only meaningful with a recovery target, which the tool refuses"),
    owned("recovery_target_action", None, "only meaningful with a recovery target, which the tool refuses"),
    owned("recovery_target_timeline", Some("latest"), "a standby must follow the new timeline a promotion starts; any other value leaves it on the old primary's timeline, unable to follow the new primary"),
    constrained("synchronous_commit", "sync-commit-weak", "in sync mode every commit must wait for the synchronous standbys to flush it (on) or apply it (remote_apply); remote_write, local and off acknowledge commits a failover can lose"),
    constrained("wal_sender_timeout", "sync-stall-unbounded", "a synchronous standby cut off the network (not cleanly disconnected) holds every commit on the primary until its WAL sender gives up on it after wal_sender_timeout, and only then can another standby take over: 0 (no timeout) leaves it to the operating system's TCP timeouts, minutes to hours, and anything above the default 60 s stalls commits that long; the presets use 5s"),
    constrained("wal_level", "wal-level", "minimal WAL cannot feed a standby"),
    constrained("max_wal_senders", "wal-senders", "every standby's stream and one pg_basebackup need a sender on whichever node is primary"),
    constrained("max_replication_slots", "replication-slots", "pg_basebackup streams through a temporary slot, and each standby holds one when slots are on: 0 fails every clone"),
    constrained("max_connections", "connections-reserved", "it must exceed the reserved connections (superuser_reserved_connections, and reserved_connections from 16): the server refuses to start otherwise"),
    constrained("superuser_reserved_connections", "connections-reserved", "as max_connections"),
    constrained("reserved_connections", "connections-reserved", "as max_connections"),
    constrained("recovery_min_apply_delay", "apply-delay-sync", "under synchronous_commit = remote_apply a commit waits until a synchronous standby applies it: an apply delay there delays every commit by that much"),
    constrained("archive_mode", "archive-no-command", "archiving with no archive_command nor archive_library keeps every WAL segment until the disk is full"),
    constrained("ssl", "ssl-no-certificate", "ssl = on with no certificate and key: the image ships none at the default paths, and the server refuses to start"),
    constrained("max_slot_wal_keep_size", "slot-wal-keep", "a slot that falls further behind is invalidated: below max_wal_size, the temporary slot of a clone (and a standby's slot) can be lost to an ordinary checkpoint"),
    constrained("shared_buffers", "shared-buffers-memory", "every node runs on one Docker host: their shared_buffers together must fit in its memory, or servers fail to start or are killed"),
];

/// The entry of a setting (any case).
pub fn entry(name: &str) -> Option<&'static Entry> {
    POLICY.iter().find(|e| e.name.eq_ignore_ascii_case(name))
}

/// Whether the tool owns a setting that a topology may not set at all.
pub fn is_owned_outright(name: &str) -> bool {
    matches!(
        entry(name),
        Some(Entry {
            hold: Hold::Owned(None),
            ..
        })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lower_case_and_explained() {
        for (i, e) in POLICY.iter().enumerate() {
            assert_eq!(e.name, e.name.to_ascii_lowercase());
            assert!(!e.why.is_empty());
            assert!(
                POLICY[..i].iter().all(|o| o.name != e.name),
                "{} twice",
                e.name
            );
        }
        assert!(is_owned_outright("PROMOTE_TRIGGER_FILE"));
        assert!(!is_owned_outright("hot_standby"));
        assert_eq!(
            entry("ssl").unwrap().hold,
            Hold::Constrained("ssl-no-certificate")
        );
    }
}
