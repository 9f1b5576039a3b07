//! What the presets render to: parses back with the crate's own parsers, and
//! holds no secret.

mod common;
use cluster_config::{compose, hba, pgconf, render, syncrep, validate, Role};
use common::*;

#[test]
fn postgresql_conf_round_trips_and_quotes_standby_names() {
    let l = load("conf/semi-sync.toml", &preset_text("semi-sync.toml"));
    for node in &l.topology.nodes {
        let text = render::postgresql_conf(&l.topology, node);
        let parsed = pgconf::parse(&text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let ssn = parsed
            .get("synchronous_standby_names")
            .expect("sync names rendered");
        assert_eq!(
            ssn.value,
            "FIRST 1 (\"slave1-db\", \"slave2-db\", \"master-db\")"
        );
        assert!(syncrep::parse(&ssn.value).unwrap().is_some());
        assert_eq!(parsed.get("listen_addresses").unwrap().value, "*");
        assert_eq!(parsed.get("wal_log_hints").unwrap().value, "on");
        assert_eq!(parsed.get("shared_buffers").unwrap().value, "1GB");
        assert!(parsed.get("primary_conninfo").is_none());
        // Rendered files pass the same checks as hand-written ones.
        let files = vec![("postgresql.conf".to_string(), text.into_bytes())];
        let r = validate::validate_files(&files, Some("replicator"), None, false);
        assert!(!r.has_errors(), "{r}");
    }
}

#[test]
fn hba_uses_subnet_or_samenet_and_scram() {
    let l = load("conf/semi-sync.toml", &preset_text("semi-sync.toml"));
    let node = &l.topology.nodes[0];
    let text = render::pg_hba_conf(
        &l.topology,
        node,
        l.topology.subnet().map(|s| s.cidr()).as_ref(),
    );
    let f = hba::parse(&text);
    assert!(f.errors.is_empty(), "{:?}", f.errors);
    let repl = f
        .rules
        .iter()
        .find(|r| r.databases[0].is_keyword("replication") && r.address.is_some())
        .unwrap();
    assert_eq!(repl.address.as_ref().unwrap().to_string(), "172.21.0.0/16");
    assert_eq!(repl.users[0].text, "replicator");
    assert_eq!(repl.method, "scram-sha-256");
    assert!(f
        .rules
        .iter()
        .filter(|r| r.method == "trust")
        .all(|r| !r.is_remote()));

    let a = load("conf/async-slots.toml", &preset_text("async-slots.toml"));
    let discovered = "192.168.192.0/20".parse().unwrap();
    let text = render::pg_hba_conf(&a.topology, &a.topology.nodes[0], Some(&discovered));
    assert!(
        text.contains("repluser") && text.contains("192.168.192.0/20"),
        "{text}"
    );
    let no_subnet = render::pg_hba_conf(&a.topology, &a.topology.nodes[0], None);
    assert!(no_subnet.contains("samenet"), "{no_subnet}");
}

#[test]
fn standby_settings_name_the_node_and_slot() {
    let l = load("conf/async-slots.toml", &preset_text("async-slots.toml"));
    let t = &l.topology;
    let standby = t.nodes.iter().find(|n| n.role == Role::Standby).unwrap();
    let text = render::standby_settings(t, standby, "db-counter-master", Some("s3cr'et"));
    let parsed = pgconf::parse(&text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let ci = validate::parse_conninfo(&parsed.get("primary_conninfo").unwrap().value).unwrap();
    let get = |k: &str| ci.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    assert_eq!(get("application_name"), Some("db-counter-slave"));
    assert_eq!(get("host"), Some("db-counter-master"));
    assert_eq!(get("user"), Some("repluser"));
    assert_eq!(get("password"), Some("s3cr'et"));
    assert_eq!(
        parsed.get("primary_slot_name").unwrap().value,
        "db_counter_slave"
    );
    assert_eq!(render::slots(t), ["db_counter_slave"]);
    // Without a password (plans, dry runs) none is written.
    let redacted = render::standby_settings(t, standby, "db-counter-master", None);
    assert!(!redacted.contains("password"));
    // Sync preset: no slots.
    let s = load("conf/semi-sync.toml", &preset_text("semi-sync.toml"));
    let n = s.topology.node("slave1-db").unwrap();
    let text = render::standby_settings(&s.topology, n, "master-db", None);
    assert!(
        text.contains("application_name=slave1-db") && !text.contains("primary_slot_name"),
        "{text}"
    );
}

#[test]
fn compose_labels_everything_and_holds_no_secret() {
    for (p, volumes) in [("semi-sync.toml", 0), ("async-slots.toml", 4)] {
        let l = load(p, &preset_text(p));
        let y = compose::render(
            &l.topology,
            p,
            &compose::location(l.topology.name(), true).state_ref,
        );
        assert!(
            !y.to_lowercase().contains("password"),
            "{p} mentions a password"
        );
        assert!(
            !y.contains("\nversion:"),
            "no version key (obsolete in Compose v2)"
        );
        let labels = y
            .matches(&format!(
                "{}: \"{}\"",
                compose::LABEL_CLUSTER,
                l.topology.name()
            ))
            .count();
        // One per service, one for the network, one per named volume.
        assert_eq!(labels, l.topology.nodes.len() + 1 + volumes, "{y}");
        for n in &l.topology.nodes {
            assert!(y.contains(&format!("{}: \"{}\"", compose::LABEL_NODE, n.name())));
            assert!(y.contains(&format!("127.0.0.1:{}:5432", n.port.get_ref())));
        }
        assert!(y.contains("secrets.env"));
    }
}

#[test]
fn yaml_and_conninfo_quoting() {
    assert_eq!(compose::q("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(render::conninfo_value("it's a"), "'it\\'s a'");
    assert_eq!(render::conninfo_value("plain"), "plain");
    assert_eq!(render::conninfo_value(""), "''");
}
