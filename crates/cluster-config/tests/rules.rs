//! One test per validation rule: each breaks a valid preset (or file set) in
//! exactly the way the rule guards against and asserts the rule reports it,
//! so removing a rule fails its test.

mod common;
use common::*;

#[test]
fn presets_are_clean() {
    for p in ["semi-sync.toml", "async-slots.toml"] {
        let r = cluster_config::validate::validate_topology(&load(p, &preset_text(p)));
        assert!(r.diagnostics.is_empty(), "{p}:\n{r}");
    }
}

#[test]
fn cluster_name() {
    for bad in ["Semi Sync", "..", "a/b", "", "x${HOME}"] {
        assert_eq!(
            refused_with(
                "semi-sync.toml",
                "name = \"semi-sync\"",
                &format!("name = \"{bad}\"")
            ),
            "cluster-name",
            "{bad}"
        );
    }
}

#[test]
fn node_name() {
    for bad in ["slave_2", "Slave2", "-s2", "s2\\n"] {
        assert_eq!(
            refused_with(
                "semi-sync.toml",
                "name = \"slave2-db\"",
                &format!("name = \"{bad}\"")
            ),
            "node-name",
            "{bad}"
        );
    }
}

#[test]
fn duplicate_node() {
    assert_has(
        &sync_with("name = \"slave2-db\"", "name = \"slave1-db\""),
        "duplicate-node",
        true,
    );
}

#[test]
fn duplicate_port() {
    assert_has(
        &sync_with("port = 5434", "port = 5433"),
        "duplicate-port",
        true,
    );
}

#[test]
fn primary_count() {
    assert_has(
        &sync_with("role = \"primary\"", "role = \"standby\""),
        "primary-count",
        true,
    );
    let two = sync_with(
        "name = \"slave2-db\"\nrole = \"standby\"",
        "name = \"slave2-db\"\nrole = \"primary\"",
    );
    assert_has(&two, "primary-count", true);
}

#[test]
fn storage_shared() {
    let r = sync_with(
        "data = { bind = \"postgres_data_slave2\" }",
        "data = { bind = \"postgres_data_slave1\" }",
    );
    assert_has(&r, "storage-shared", true);
    for bad in ["../elsewhere", "${X-..}/${X-..}/etc", "/etc", "conf"] {
        assert_eq!(
            refused_with(
                "semi-sync.toml",
                "data = { bind = \"postgres_data_slave2\" }",
                &format!("data = {{ bind = \"{bad}\" }}")
            ),
            "bind-path",
            "{bad}"
        );
    }
    let nested = sync_with(
        "data = { bind = \"postgres_data_slave2\" }",
        "data = { bind = \"postgres_data_slave1/inner\" }",
    );
    assert_has(&nested, "storage-nested", true);
    assert_lacks(&nested, "storage-shared");
}

#[test]
fn managed_setting() {
    let r = sync_with(
        "max_wal_senders = 8\n",
        "max_wal_senders = 8\nlisten_addresses = '172.21.0.2'\n",
    );
    assert_has(&r, "managed-setting", true);
}

#[test]
fn sync_mode() {
    let r = sync_with(
        "synchronous_standby_names = 'FIRST 1 (\"slave1-db\", \"slave2-db\", \"master-db\")'\n",
        "",
    );
    assert_has(&r, "sync-names-empty", true);
    assert_lacks(&r, "sync-mode");
    let blank = sync_with(
        "synchronous_standby_names = 'FIRST 1 (\"slave1-db\", \"slave2-db\", \"master-db\")'",
        "synchronous_standby_names = '   '",
    );
    assert_has(&blank, "sync-names-empty", true);
    let r = async_with(
        "mode = \"async\"",
        "mode = \"async\"\nsynchronous_standby_names = 'db-counter-slave'",
    );
    assert_has(&r, "sync-mode", true);
}

#[test]
fn auth_md5() {
    assert_has(
        &sync_with("auth = \"scram-sha-256\"", "auth = \"md5\""),
        "auth-md5",
        false,
    );
}

#[test]
fn setting_value() {
    let r = sync_with("shared_buffers = \"1GB\"", "shared_buffers = \"1gb\"");
    assert_has(&r, "setting-value", true);
    assert!(r.to_string().contains("case-sensitive"), "{r}");
    assert_has(
        &sync_with("wal_log_hints = true", "wal_log_hints = \"sometimes\""),
        "setting-value",
        true,
    );
}

#[test]
fn wal_level() {
    assert_has(
        &sync_with(
            "max_wal_senders = 8\n",
            "max_wal_senders = 8\nwal_level = \"minimal\"\n",
        ),
        "wal-level",
        true,
    );
}

#[test]
fn wal_senders() {
    // Three nodes: two standby streams plus a pg_basebackup need 3.
    assert_has(
        &sync_with("max_wal_senders = 8", "max_wal_senders = 2"),
        "wal-senders",
        true,
    );
    assert_lacks(
        &sync_with("max_wal_senders = 8", "max_wal_senders = 3"),
        "wal-senders",
    );
}

#[test]
fn replication_slots() {
    assert_has(
        &async_with("max_replication_slots = 4", "max_replication_slots = 0"),
        "replication-slots",
        true,
    );
}

#[test]
fn no_rejoin() {
    let r = sync_with("wal_log_hints = true", "wal_log_hints = false");
    assert_has(&r, "no-rejoin", false);
    assert!(!r.has_errors(), "{r}");
    // Data checksums make pg_rewind possible too.
    let text = preset_text("semi-sync.toml")
        .replace("wal_log_hints = true", "wal_log_hints = false")
        .replace("postgres = 17", "postgres = 17\ndata_checksums = true");
    let with_sums = cluster_config::validate::validate_topology(&load("s.toml", &text));
    assert_lacks(&with_sums, "no-rejoin");
}

#[test]
fn wal_keep() {
    let r = async_with("slots = true", "slots = false");
    assert_has(&r, "wal-keep", false);
    assert!(r.to_string().contains("32MB"), "{r}");
    let big = edited("async-slots.toml", "slots = true", "slots = false");
    let big = big
        .diagnostics
        .iter()
        .filter(|d| d.code == "wal-keep")
        .count();
    assert_eq!(big, 1);
    let text = preset_text("async-slots.toml")
        .replace("slots = true", "slots = false")
        .replace("wal_keep_size = \"32MB\"", "wal_keep_size = \"2GB\"");
    let r = cluster_config::validate::validate_topology(&load("a.toml", &text));
    assert_lacks(&r, "wal-keep");
}

#[test]
fn standby_params() {
    let r = sync_with(
        "backup = { bind = \"postgres_backup_slave1\" }",
        "backup = { bind = \"postgres_backup_slave1\" }\nsettings = { max_connections = 50 }",
    );
    assert_has(&r, "standby-params", true);
    for p in cluster_config::validate::STANDBY_MIN_PARAMS {
        let r = sync_with(
            "backup = { bind = \"postgres_backup_master\" }",
            &format!(
                "backup = {{ bind = \"postgres_backup_master\" }}\nsettings = {{ {p} = 1000 }}"
            ),
        );
        assert_has(&r, "standby-params", true);
        assert!(r.to_string().contains(p), "{p}: {r}");
    }
}

#[test]
fn params_unequal() {
    let r = sync_with(
        "backup = { bind = \"postgres_backup_slave1\" }",
        "backup = { bind = \"postgres_backup_slave1\" }\nsettings = { max_connections = 500 }",
    );
    assert_has(&r, "params-unequal", false);
    assert_lacks(&r, "standby-params");
}

#[test]
fn sync_names_syntax() {
    let r = sync_with(
        "'FIRST 1 (\"slave1-db\", \"slave2-db\", \"master-db\")'",
        "'FIRST 1 (slave1-db, slave2-db)'",
    );
    assert_has(&r, "sync-names-syntax", true);
    let d = r.errors().find(|d| d.code == "sync-names-syntax").unwrap();
    let line = preset_text("semi-sync.toml")
        .lines()
        .position(|l| l.starts_with("synchronous_standby_names"))
        .unwrap()
        + 1;
    assert_eq!(d.location.line, Some(line), "{r}");
}

#[test]
fn sync_names_unknown() {
    assert_has(
        &sync_with("\"master-db\")'", "\"slave3-db\")'"),
        "sync-names-unknown",
        true,
    );
}

#[test]
fn sync_count() {
    assert_has(&sync_with("FIRST 1 (", "FIRST 3 ("), "sync-count", true);
    assert_lacks(&sync_with("FIRST 1 (", "ANY 2 ("), "sync-count");
    // Naming the primary does not make it a candidate.
    let r = sync_with(
        "(\"slave1-db\", \"slave2-db\", \"master-db\")",
        "(\"master-db\", \"slave1-db\")",
    );
    assert_lacks(&r, "sync-count");
    assert_has(
        &sync_with(
            "FIRST 1 (\"slave1-db\", \"slave2-db\", \"master-db\")",
            "FIRST 2 (\"master-db\", \"slave1-db\")",
        ),
        "sync-count",
        true,
    );
}

#[test]
fn plaintext_password_and_conninfo_appname() {
    let primary = "synchronous_standby_names = 'FIRST 1 (s1)'\nwal_log_hints = on\n";
    let with_pw = "primary_conninfo = 'host=p user=r password=secret application_name=s1'\nwal_log_hints = on\n";
    let r = files(&[("p.conf", primary), ("s1.conf", with_pw)], None, None);
    assert_has(&r, "plaintext-password", true);
    assert_lacks(&r, "conninfo-appname-missing");
    assert_lacks(&r, "conninfo-appname-unlisted");
    // What `pg_basebackup -R` writes: no application_name.
    let r_written =
        "primary_conninfo = 'user=r host=p port=5432 sslmode=prefer'\nwal_log_hints = on\n";
    let r = files(&[("p.conf", primary), ("s1.conf", r_written)], None, None);
    assert_has(&r, "conninfo-appname-missing", true);
    assert_lacks(&r, "plaintext-password");
    let other = "primary_conninfo = 'host=p user=r application_name=s2'\n";
    assert_has(
        &files(&[("p.conf", primary), ("s2.conf", other)], None, None),
        "conninfo-appname-unlisted",
        false,
    );
}

#[test]
fn hard_coded_ip() {
    let r = files(
        &[("p.conf", "listen_addresses = 'localhost,172.21.0.2'\n")],
        None,
        None,
    );
    assert_has(&r, "hard-coded-ip", false);
    assert_lacks(
        &files(&[("p.conf", "listen_addresses = '*'\n")], None, None),
        "hard-coded-ip",
    );
    let s = "primary_conninfo = 'host=172.21.0.2 user=r application_name=s'\n";
    assert_has(&files(&[("s.conf", s)], None, None), "hard-coded-ip", false);
}

#[test]
fn trust_remote() {
    let r = sync_with("auth = \"scram-sha-256\"", "auth = \"trust\"");
    assert_has(&r, "trust-remote", true);
    let text = preset_text("semi-sync.toml")
        .replace("auth = \"scram-sha-256\"", "auth = \"trust\"")
        .replace("postgres = 17", "postgres = 17\nallow_trust = true");
    let r = cluster_config::validate::validate_topology(&load("t.toml", &text));
    assert_has(&r, "trust-remote", false);
    assert!(!r.has_errors(), "{r}");
    let loopback = files(&[("pg_hba.conf", "host all all 127.0.0.1/32 trust\nlocal all all trust\nhost replication r 10.0.0.0/8 scram-sha-256\n")], Some("r"), None);
    assert_lacks(&loopback, "trust-remote");
}

#[test]
fn hba_cleartext() {
    let r = files(
        &[("pg_hba.conf", "host replication r 10.0.0.0/8 password\n")],
        Some("r"),
        None,
    );
    assert_has(&r, "hba-cleartext", false);
}

#[test]
fn hba_user() {
    let r = files(
        &[(
            "pg_hba.conf",
            "host replication replicator 10.0.0.0/8 scram-sha-256\n",
        )],
        Some("repluser"),
        None,
    );
    assert_has(&r, "hba-user", true);
    assert_lacks(
        &files(
            &[(
                "pg_hba.conf",
                "host replication repluser 10.0.0.0/8 scram-sha-256\n",
            )],
            Some("repluser"),
            None,
        ),
        "hba-user",
    );
}

#[test]
fn hba_replication() {
    // `all` does not match replication connections.
    let r = files(
        &[("pg_hba.conf", "host all all 10.0.0.0/8 scram-sha-256\n")],
        Some("r"),
        Some("10.0.0.0/8"),
    );
    assert_has(&r, "hba-replication", true);
    assert!(r.to_string().contains("does not match replication"), "{r}");
    // Wrong network.
    let r = files(
        &[(
            "pg_hba.conf",
            "host replication r 10.0.0.0/8 scram-sha-256\n",
        )],
        Some("r"),
        Some("172.21.0.0/16"),
    );
    assert_has(&r, "hba-replication", true);
    // An earlier reject wins.
    let r = files(&[("pg_hba.conf", "host replication r 172.21.0.0/16 reject\nhost replication r 172.21.0.0/16 scram-sha-256\n")], Some("r"), Some("172.21.0.0/16"));
    assert_has(&r, "hba-replication-rejected", true);
    assert_lacks(&r, "hba-replication");
    let ok = files(
        &[(
            "pg_hba.conf",
            "host replication r 172.21.0.0/16 scram-sha-256\n",
        )],
        Some("r"),
        Some("172.21.0.0/16"),
    );
    assert_lacks(&ok, "hba-replication");
    assert_lacks(&ok, "hba-replication-rejected");
}

#[test]
fn syntax_and_include() {
    let r = files(
        &[("p.conf", "include 'more.conf'\nwal_level = replica extra\n")],
        None,
        None,
    );
    assert_has(&r, "include", false);
    assert_has(&r, "syntax", true);
    let d = r.errors().find(|d| d.code == "syntax").unwrap();
    assert_eq!(d.location.line, Some(2));
    let r = files(
        &[(
            "pg_hba.conf",
            "include_dir hba.d\nhostx all all all trust\n",
        )],
        None,
        None,
    );
    assert_has(&r, "include", false);
    assert_has(&r, "syntax", true);
}

const PRIMARY: &str =
    "synchronous_standby_names = 'FIRST 1 (\"slave1-db\", \"slave2-db\")'\nwal_log_hints = on\n";
const HBA: &str = "local all all trust\nhost replication replicator 172.21.0.0/16 scram-sha-256\n";

fn standby(app: &str, user: &str, extra: &str) -> String {
    format!("primary_conninfo = 'host=master-db user={user} application_name={app}{extra}'\nwal_log_hints = on\n")
}

#[test]
fn two_standbys_with_one_application_name() {
    let (a, b) = (
        standby("slave1-db", "replicator", ""),
        standby("slave1-db", "replicator", ""),
    );
    let r = files(
        &[
            ("postgresql.conf", PRIMARY),
            ("slave1.conf", &a),
            ("slave2.conf", &b),
            ("pg_hba.conf", HBA),
        ],
        None,
        Some("172.21.0.0/16"),
    );
    assert_has(&r, "conninfo-appname-duplicate", true);
}

#[test]
fn every_standbys_conninfo_user_is_admitted() {
    // The first standby's user is admitted; the second's is not.
    let (a, b) = (
        standby("slave1-db", "replicator", ""),
        standby("slave2-db", "repluser", ""),
    );
    let r = files(
        &[
            ("postgresql.conf", PRIMARY),
            ("slave1.conf", &a),
            ("slave2.conf", &b),
            ("pg_hba.conf", HBA),
        ],
        None,
        Some("172.21.0.0/16"),
    );
    assert_has(&r, "hba-replication", true);
    assert!(r.to_string().contains("`repluser`"), "{r}");
}

#[test]
fn sslmode_require_against_a_primary_without_ssl() {
    let a = standby("slave1-db", "replicator", " sslmode=require");
    let r = files(
        &[
            ("postgresql.conf", PRIMARY),
            ("slave1.conf", &a),
            ("pg_hba.conf", HBA),
        ],
        None,
        Some("172.21.0.0/16"),
    );
    assert_has(&r, "conninfo-ssl", true);
    let prefer = standby("slave1-db", "replicator", " sslmode=prefer");
    let r = files(
        &[
            ("postgresql.conf", PRIMARY),
            ("slave1.conf", &prefer),
            ("pg_hba.conf", HBA),
        ],
        None,
        Some("172.21.0.0/16"),
    );
    assert_lacks(&r, "conninfo-ssl");
}

#[test]
fn md5_passwords_under_scram_authentication() {
    let primary = format!("{PRIMARY}password_encryption = md5\n");
    let r = files(
        &[("postgresql.conf", &primary), ("pg_hba.conf", HBA)],
        Some("replicator"),
        Some("172.21.0.0/16"),
    );
    assert_has(&r, "password-encryption", true);
    let md5_hba = "local all all trust\nhost replication replicator 172.21.0.0/16 md5\n";
    let r = files(
        &[("postgresql.conf", &primary), ("pg_hba.conf", md5_hba)],
        Some("replicator"),
        Some("172.21.0.0/16"),
    );
    assert_lacks(&r, "password-encryption");
}

#[test]
fn an_apply_delay_on_a_synchronous_standby_under_remote_apply() {
    let primary = format!("{PRIMARY}synchronous_commit = remote_apply\n");
    let delayed = format!(
        "{}recovery_min_apply_delay = '5min'\nsynchronous_commit = remote_apply\n",
        standby("slave1-db", "replicator", "")
    );
    let r = files(
        &[
            ("postgresql.conf", &primary),
            ("slave1.conf", &delayed),
            ("pg_hba.conf", HBA),
        ],
        None,
        Some("172.21.0.0/16"),
    );
    assert_has(&r, "apply-delay-sync", true);
    // Under `on`, commits do not wait for the apply: no error.
    let delayed_on = format!(
        "{}recovery_min_apply_delay = '5min'\n",
        standby("slave1-db", "replicator", "")
    );
    let r = files(
        &[
            ("postgresql.conf", PRIMARY),
            ("slave1.conf", &delayed_on),
            ("pg_hba.conf", HBA),
        ],
        None,
        Some("172.21.0.0/16"),
    );
    assert_lacks(&r, "apply-delay-sync");
}

#[test]
fn a_group_or_a_file_of_names_is_a_warning_not_a_verdict() {
    for user in ["+replicators", "@replicators.txt"] {
        let hba =
            format!("local all all trust\nhost replication {user} 172.21.0.0/16 scram-sha-256\n");
        let r = files(
            &[("pg_hba.conf", &hba)],
            Some("replicator"),
            Some("172.21.0.0/16"),
        );
        assert_has(&r, "hba-replication-unknown", false);
        assert!(!r.has_errors(), "{r}");
    }
}

#[test]
fn data_checksums_by_default_from_18_make_pg_rewind_possible() {
    for (major, warned) in [(15, true), (17, true), (18, false)] {
        let text = preset_text("semi-sync.toml")
            .replace("wal_log_hints = true", "wal_log_hints = false")
            .replace("postgres = 17", &format!("postgres = {major}"));
        let r = cluster_config::validate::validate_topology(&load("s.toml", &text));
        assert_eq!(
            r.codes().contains(&"no-rejoin"),
            warned,
            "PostgreSQL {major}: {r}"
        );
    }
}
