//! The Patroni export: every rendered `patroni.yml` is read back (by the
//! block-YAML reader below: mappings, sequences of scalars, JSON scalars,
//! exactly what the renderer writes) and checked against the topology;
//! what Patroni cannot express is refused with the reason.

mod common;

use cluster_config::patroni::{self, Host};
use common::{load, preset_text};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Reads the block YAML the renderer writes into JSON values.
/// Read with a real YAML parser (see `common::yaml`).
fn read_yaml(text: &str) -> Value {
    common::yaml(text)
}

fn hosts(pairs: &[(&str, &str)]) -> BTreeMap<String, Host> {
    pairs
        .iter()
        .map(|(n, h)| (n.to_string(), h.parse().unwrap()))
        .collect()
}

fn three() -> BTreeMap<String, Host> {
    hosts(&[
        ("master-db", "10.0.0.1"),
        ("slave1-db", "db2.example.internal"),
        ("slave2-db", "10.0.0.3"),
    ])
}

#[test]
fn the_semi_sync_preset_exports_and_reads_back() {
    let t = load("semi-sync.toml", &preset_text("semi-sync.toml")).topology;
    let files = patroni::render(&t, &patroni::Layout::hosts(&t, three())).unwrap();
    assert_eq!(files.nodes.len(), 3);
    assert_eq!(files.etcd.len(), 3);
    for (name, yml) in &files.nodes {
        let v = read_yaml(yml);
        assert_eq!(v["scope"], json!("semi-sync"));
        assert_eq!(v["name"], json!(name));
        let dcs = &v["bootstrap"]["dcs"];
        assert_eq!(dcs["synchronous_mode"], json!(true));
        assert_eq!(dcs["synchronous_node_count"], json!(1));
        assert_eq!(dcs["postgresql"]["use_pg_rewind"], json!(true));
        assert_eq!(dcs["postgresql"]["use_slots"], json!(false));
        let params = dcs["postgresql"]["parameters"].as_object().unwrap();
        assert_eq!(params["wal_log_hints"], json!("on"));
        assert_eq!(params["max_connections"], json!("100"));
        assert!(!params.contains_key("synchronous_standby_names"));
        assert!(!params.contains_key("listen_addresses"));
        assert_eq!(v["tags"]["nosync"], json!(false), "every node is listed");
        assert_eq!(
            v["etcd3"]["hosts"],
            json!([
                "10.0.0.1:2379",
                "db2.example.internal:2379",
                "10.0.0.3:2379"
            ])
        );
        assert_eq!(
            v["postgresql"]["authentication"]["superuser"]["username"],
            json!("dbuser")
        );
        assert!(v["postgresql"]["authentication"]["superuser"]
            .get("password")
            .is_none());
        assert_eq!(v["postgresql"]["data_dir"], json!(patroni::DATA_DIR));
        let hba: Vec<&str> = v["postgresql"]["pg_hba"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert!(
            hba.contains(&"host replication replicator 10.0.0.1/32 scram-sha-256"),
            "{hba:?}"
        );
        assert!(
            hba.contains(&"host replication replicator db2.example.internal scram-sha-256"),
            "{hba:?}"
        );
        // Every pg_hba line the export writes is one the project's parser accepts.
        let parsed = cluster_config::hba::parse(&hba.join("\n"));
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.rules.len(), hba.len());
    }
    let slave1 = &files.nodes[1].1;
    assert!(slave1.contains("connect_address: \"db2.example.internal:5432\""));
    let etcd = &files.etcd[0].1;
    assert!(etcd.contains(
        "ETCD_INITIAL_CLUSTER=master-db=http://10.0.0.1:2380,slave1-db=http://db2.example.internal:2380,slave2-db=http://10.0.0.3:2380"
    ));
    assert!(files.warnings.iter().any(|w| w.contains("priority order")));
}

#[test]
fn a_standby_left_out_of_the_list_is_nosync() {
    let text = preset_text("semi-sync.toml").replace(
        r#"'FIRST 1 ("slave1-db", "slave2-db", "master-db")'"#,
        r#"'FIRST 1 ("slave1-db", "master-db")'"#,
    );
    let t = load("semi-sync.toml", &text).topology;
    let files = patroni::render(&t, &patroni::Layout::hosts(&t, three())).unwrap();
    let tags: Vec<Value> = files
        .nodes
        .iter()
        .map(|(_, y)| read_yaml(y)["tags"]["nosync"].clone())
        .collect();
    assert_eq!(tags, [json!(false), json!(false), json!(true)]);
}

#[test]
fn any_n_is_a_quorum_and_first_n_synchronous_mode_on() {
    for (list, mode, count) in [
        (
            r#"'ANY 2 ("slave1-db", "slave2-db", "master-db")'"#,
            json!("quorum"),
            2,
        ),
        (
            r#"'FIRST 1 ("slave1-db", "slave2-db", "master-db")'"#,
            json!(true),
            1,
        ),
    ] {
        let text = preset_text("semi-sync.toml")
            .replace(r#"'FIRST 1 ("slave1-db", "slave2-db", "master-db")'"#, list);
        let t = load("semi-sync.toml", &text).topology;
        let files = patroni::render(&t, &patroni::Layout::hosts(&t, three())).unwrap();
        for (_, y) in &files.nodes {
            let dcs = &read_yaml(y)["bootstrap"]["dcs"];
            assert_eq!(dcs["synchronous_mode"], mode, "{list}");
            assert_eq!(dcs["synchronous_node_count"], json!(count), "{list}");
            // The major's own programs (the presets run 17).
            assert_eq!(
                read_yaml(y)["postgresql"]["bin_dir"],
                json!("/usr/lib/postgresql/17/bin")
            );
        }
    }
}

#[test]
fn what_patroni_cannot_express_is_refused_with_every_reason() {
    let text = preset_text("semi-sync.toml").replace(
        r#"'FIRST 1 ("slave1-db", "slave2-db", "master-db")'"#,
        r#"'ANY 1 ("slave1-db", "slave2-db", "master-db")'"#,
    );
    let t = load("semi-sync.toml", &text).topology;
    let mut h = three();
    h.remove("slave2-db");
    h.insert("ghost-db".into(), "10.0.0.9".parse().unwrap());
    h.insert("slave1-db".into(), "10.0.0.1".parse().unwrap());
    let errors = patroni::render(&t, &patroni::Layout::hosts(&t, h)).unwrap_err();
    let all = errors.join("\n");
    for want in [
        "node slave2-db has no host",
        "--host ghost-db: the topology has no such node",
        "are both on 10.0.0.1",
    ] {
        assert!(all.contains(want), "missing `{want}` in:\n{all}");
    }
}

#[test]
fn hosts_are_validated() {
    for good in [
        "10.1.2.3",
        "fd00::1",
        "[fd00::2]",
        "db-1.example.com",
        "DB2",
        "db.example.",
    ] {
        assert!(good.parse::<Host>().is_ok(), "{good}");
    }
    for bad in [
        "",
        "-db",
        "db_1",
        "a b",
        "x\n",
        "db$1",
        "a..b",
        &"a".repeat(64),
        // Addresses as text that is not an address, or names a resolver
        // reads as one.
        "010.0.0.2",
        "10.2",
        "999.999.999.999",
        "1.2.3.4.5",
        // No other host is reached at these.
        "0.0.0.0",
        "::",
        "127.0.0.1",
        "::1",
        "localhost",
        "db.localhost",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "169.254.1.1",
        "fe80::1",
        "[10.0.0.1]",
        "fd00::1::2",
    ] {
        assert!(bad.parse::<Host>().is_err(), "{bad:?} was accepted");
    }
    // One address, however it is written.
    let a: Host = "fd00::1".parse().unwrap();
    assert_eq!(a, "fd00:0::1".parse::<Host>().unwrap());
    assert_eq!(a, "[fd00:0:0::1]".parse::<Host>().unwrap());
    let v4: Host = "10.0.0.2".parse().unwrap();
    assert_eq!(v4, "::ffff:10.0.0.2".parse::<Host>().unwrap());
    assert_eq!(
        "DB.Example.".parse::<Host>().unwrap(),
        "db.example".parse::<Host>().unwrap()
    );
    // IPv6 in URLs and host:port is bracketed.
    assert_eq!(a.with_port(8008), "[fd00::1]:8008");
    assert_eq!(v4.with_port(8008), "10.0.0.2:8008");
}

#[test]
fn ipv6_hosts_are_bracketed_in_every_url_and_two_spellings_are_one_host() {
    let (t, _) = {
        let text = preset_text("semi-sync.toml");
        (load("semi-sync.toml", &text).topology, ())
    };
    let mut h: BTreeMap<String, Host> = BTreeMap::new();
    h.insert("master-db".into(), "fd00::1".parse().unwrap());
    h.insert("slave1-db".into(), "fd00::2".parse().unwrap());
    h.insert("slave2-db".into(), "fd00:0::2".parse().unwrap());
    let errors = patroni::render(&t, &patroni::Layout::hosts(&t, h.clone())).unwrap_err();
    assert!(
        errors.join("\n").contains("are both on fd00::2"),
        "{errors:?}"
    );
    h.insert("slave2-db".into(), "fd00::3".parse().unwrap());
    let files = patroni::render(&t, &patroni::Layout::hosts(&t, h)).unwrap();
    let yml = &files.nodes[0].1;
    assert!(
        yml.contains("[fd00::1]:8008") && yml.contains("[fd00::1]:5432"),
        "{yml}"
    );
    assert!(yml.contains("[fd00::2]:2379"), "{yml}");
    assert!(
        yml.contains("fd00::2/128"),
        "pg_hba takes a bare address: {yml}"
    );
    let etcd = &files.etcd[0].1;
    assert!(etcd.contains("http://[fd00::1]:2380"), "{etcd}");
}

#[test]
fn setting_values_with_yaml_syntax_come_back_exactly() {
    let value = r#"%m [%p] #1: "x" - {y} $HOME \ '"#;
    let text = preset_text("semi-sync.toml").replace(
        "wal_keep_size = \"256MB\"",
        &format!(
            "wal_keep_size = \"256MB\"\nlog_line_prefix = {}",
            toml::Value::from(value)
        ),
    );
    let t = load("semi-sync.toml", &text).topology;
    let files = patroni::render(&t, &patroni::Layout::hosts(&t, three())).unwrap();
    let v = read_yaml(&files.nodes[0].1);
    assert_eq!(
        v["bootstrap"]["dcs"]["postgresql"]["parameters"]["log_line_prefix"],
        json!(value)
    );
}
