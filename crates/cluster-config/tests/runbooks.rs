//! The runbooks' configuration snippets, written to files as they stand, are
//! flagged for the problems the seeds' README lists; a topology with five
//! mistakes reports all five at once.

mod common;
use cluster_config::{validate, Report};
use common::*;

fn runbook(paths: &[&str], user: Option<&str>) -> Report {
    let files: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            let (path, text) = fixture(p);
            (path, text.into_bytes())
        })
        .collect();
    validate::validate_files(&files, user, None, false)
}

#[test]
fn runbook_000_is_flagged() {
    let r = runbook(
        &[
            "runbook-000/master.conf",
            "runbook-000/slave1.conf",
            "runbook-000/slave2.conf",
            "runbook-000/pg_hba.conf",
        ],
        None,
    );
    // trust for a /16
    assert_has(&r, "trust-remote", true);
    let trust = r.errors().find(|d| d.code == "trust-remote").unwrap();
    assert_eq!(trust.location.to_string(), "runbook-000/pg_hba.conf:1");
    // no rejoin possible: wal_log_hints is off everywhere
    assert_eq!(
        r.warnings().filter(|d| d.code == "no-rejoin").count(),
        3,
        "{r}"
    );
    // unquoted hyphenated standby names: the primary would not start
    let syn = r.errors().find(|d| d.code == "sync-names-syntax").unwrap();
    assert_eq!(syn.location.to_string(), "runbook-000/master.conf:11");
    // plain-text passwords in the standbys' configs
    assert_eq!(
        r.errors()
            .filter(|d| d.code == "plaintext-password")
            .count(),
        2,
        "{r}"
    );
    // hard-coded container addresses
    assert_has(&r, "hard-coded-ip", false);
    // 500 on the standbys vs 100 on the primary
    assert_has(&r, "params-unequal", false);
    // the replication user comes from primary_conninfo and the line matches it
    assert_lacks(&r, "hba-user");
    assert_lacks(&r, "hba-replication");
}

#[test]
fn runbook_003_is_flagged() {
    let r = runbook(
        &["runbook-003/postgresql.conf", "runbook-003/pg_hba.conf"],
        Some("repluser"),
    );
    // hba names `replicator`, the user created is `repluser`
    let user = r.errors().find(|d| d.code == "hba-user").unwrap();
    assert_eq!(user.location.to_string(), "runbook-003/pg_hba.conf:1");
    assert!(user.message.contains("replicator") && user.message.contains("repluser"));
    assert_has(&r, "hba-replication", true);
    // wal_keep_size = 32 means 32 MB, and no slot is used
    let keep = r.warnings().find(|d| d.code == "wal-keep").unwrap();
    assert!(keep.message.contains("32MB"), "{keep}");
    assert_eq!(keep.location.to_string(), "runbook-003/postgresql.conf:4");
    // no rejoin possible
    assert_has(&r, "no-rejoin", false);

    // The alternative line the runbook offers: trust for the whole network.
    let alt = runbook(
        &["runbook-003/postgresql.conf", "runbook-003/pg_hba.alt.conf"],
        Some("repluser"),
    );
    assert_has(&alt, "trust-remote", true);
    assert_lacks(&alt, "hba-replication");
}

#[test]
fn five_mistakes_reported_in_one_run() {
    let (path, text) = fixture("five-mistakes.toml");
    let r = validate::validate_topology(&load(&path, &text));
    let at = |code: &str| {
        r.errors()
            .find(|d| d.code == code)
            .unwrap_or_else(|| panic!("{code} missing:\n{r}"))
            .location
            .to_string()
    };
    assert_eq!(at("sync-names-unknown"), "five-mistakes.toml:9");
    assert_eq!(at("trust-remote"), "five-mistakes.toml:11");
    assert_eq!(
        at("duplicate-port"),
        "five-mistakes.toml:30 (node slave1-db)"
    );
    assert_eq!(
        at("standby-params"),
        "five-mistakes.toml:33 (node slave1-db)"
    );
    assert_eq!(
        at("storage-shared"),
        "five-mistakes.toml:36 (node slave2-db)"
    );
    let mut codes: Vec<_> = r.errors().map(|d| d.code).collect();
    codes.dedup();
    codes.sort();
    codes.dedup();
    assert_eq!(
        codes,
        [
            "duplicate-port",
            "standby-params",
            "storage-shared",
            "sync-names-unknown",
            "trust-remote"
        ],
        "{r}"
    );
}

#[test]
fn parse_errors_name_file_and_line() {
    let text = preset_text("semi-sync.toml").replace("port = 5433", "port = 5433\nprot = 1");
    let err = cluster_config::Loaded::parse("conf/semi-sync.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("error[unknown-key]: conf/semi-sync.toml:"),
        "{err}"
    );
    assert!(err.contains("prot"), "{err}");
    let bad_subnet = preset_text("semi-sync.toml").replace("172.21.0.0/16", "172.21.0.0/40");
    let err = cluster_config::Loaded::parse("x.toml", &bad_subnet)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("error[subnet-syntax]: x.toml:"), "{err}");
    // A name is checked while the file is read: the error names its line.
    let bad_name =
        preset_text("semi-sync.toml").replace("name = \"slave2-db\"", "name = \"slave_2\"");
    let err = cluster_config::Loaded::parse("x.toml", &bad_name)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("error[node-name]: x.toml:"), "{err}");
    assert!(err.contains("slave_2"), "{err}");
}
