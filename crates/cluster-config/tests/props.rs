//! Property tests of everything the crate renders: topologies with arbitrary
//! valid names, users, settings and subnets are rendered, and each file is
//! parsed back with the crate's own parsers into exactly what the model
//! holds. A twin of each topology with plain placeholder names renders to the
//! same number of lines: no value can add a line or a field.

mod common;

use cluster_config::{compose, hba, pgconf, render, validate, Loaded, Role};
use proptest::prelude::*;
use proptest::test_runner::Config;

#[derive(Debug, Clone)]
struct Params {
    cluster: String,
    network: String,
    subnet: Option<String>,
    user: String,
    owner: String,
    db: String,
    image: String,
    nodes: Vec<String>,
    volumes: bool,
    sync_first: bool,
    settings: Vec<(String, toml::Value)>,
}

fn tq(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Params {
    fn toml(&self) -> String {
        let mut t = format!(
            "[cluster]\nname = {}\nimage = {}\n\n[network]\nname = {}\n",
            tq(&self.cluster),
            tq(&self.image),
            tq(&self.network)
        );
        if let Some(s) = &self.subnet {
            t += &format!("subnet = {}\n", tq(s));
        }
        let standbys: Vec<String> = self.nodes[1..].iter().map(|n| format!("\"{n}\"")).collect();
        let ssn = if self.sync_first {
            format!("FIRST 1 ({})", standbys.join(", "))
        } else {
            format!("ANY 1 ({})", standbys.join(", "))
        };
        t += &format!(
            "\n[replication]\nmode = \"sync\"\nsynchronous_standby_names = {}\nuser = {}\n\n[database]\nname = {}\nowner = {}\n\n[settings]\nwal_log_hints = true\n",
            tq(&ssn),
            tq(&self.user),
            tq(&self.db),
            tq(&self.owner)
        );
        for (k, v) in &self.settings {
            t += &format!("{} = {v}\n", tq(k));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let (data, backup) = if self.volumes {
                (
                    format!("{{ volume = {} }}", tq(&format!("{n}.data"))),
                    format!("{{ volume = {} }}", tq(&format!("{n}_backup"))),
                )
            } else {
                (
                    format!("{{ bind = {} }}", tq(&format!("d/{n}"))),
                    format!("{{ bind = {} }}", tq(&format!("b.{n}"))),
                )
            };
            t += &format!(
                "\n[[node]]\nname = {}\nrole = \"{}\"\nport = {}\ndata = {data}\nbackup = {backup}\n",
                tq(n),
                if i == 0 { "primary" } else { "standby" },
                20000 + i
            );
        }
        t
    }

    /// The same structure with plain placeholder names and values.
    fn twin(&self) -> Params {
        Params {
            cluster: "c".into(),
            network: "n".into(),
            subnet: self.subnet.as_ref().map(|_| "10.0.0.0/16".into()),
            user: "u".into(),
            owner: "o".into(),
            db: "d".into(),
            image: "i".into(),
            nodes: (0..self.nodes.len()).map(|i| format!("n{i}")).collect(),
            volumes: self.volumes,
            sync_first: self.sync_first,
            settings: self
                .settings
                .iter()
                .map(|(k, v)| {
                    let plain = match v {
                        toml::Value::String(_) => toml::Value::String("x".into()),
                        other => other.clone(),
                    };
                    (k.clone(), plain)
                })
                .collect(),
        }
    }
}

fn role() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_-]{0,62}",
        Just("all".to_string()),
        Just("replication".to_string()),
        Just("sameuser".to_string()),
        Just("replication_user_with_a_long_name".to_string()),
    ]
    .prop_filter("reserved", |s| {
        let l = s.to_ascii_lowercase();
        l != "public" && l != "none" && !l.starts_with("pg_")
    })
}

/// Text a string setting may hold: anything printable, quotes, backslashes,
/// `$`, `#`, `=`, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{42f}\u{1f600}]{0,40}"
}

fn settings() -> impl Strategy<Value = Vec<(String, toml::Value)>> {
    (
        text(),
        text(),
        1i64..=262143,
        prop_oneof![Just("4MB"), Just("64kB"), Just("1GB"), Just("1024")],
        prop_oneof![Just("5s"), Just("250ms"), Just("0"), Just("1min")],
    )
        .prop_map(|(cn, an, maxconn, mem, time)| {
            vec![
                ("cluster_name".to_string(), toml::Value::String(cn)),
                ("application_name".to_string(), toml::Value::String(an)),
                ("max_connections".to_string(), toml::Value::Integer(maxconn)),
                ("work_mem".to_string(), toml::Value::String(mem.into())),
                (
                    "statement_timeout".to_string(),
                    toml::Value::String(time.into()),
                ),
            ]
        })
}

/// A private subnet in network form: `first.b.c.0/prefix`.
fn private_block(first: u8, b: u8, c: u8, prefix: u8) -> Option<String> {
    let net = cluster_config::net::Cidr::new(std::net::IpAddr::from([first, b, c, 0]), prefix)
        .unwrap()
        .network();
    Some(format!("{net}/{prefix}"))
}

fn subnet() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        (0u8..=255, 8u8..=24).prop_map(|(b, p)| private_block(10, b, 7, p)),
        (16u8..=31, 16u8..=28).prop_map(|(b, p)| private_block(172, b, 9, p)),
    ]
}

fn params() -> impl Strategy<Value = Params> {
    (
        "[a-z0-9][a-z0-9_-]{0,39}",
        "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}",
        subnet(),
        role(),
        role(),
        "[A-Za-z_][A-Za-z0-9_-]{0,62}",
        prop_oneof![
            Just("postgres:15".to_string()),
            Just("pgrepl/postgres:15".to_string()),
            "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,10})?",
        ],
        proptest::collection::btree_set("[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", 2..5),
        any::<bool>(),
        any::<bool>(),
        settings(),
    )
        .prop_filter("distinct roles", |p| !p.3.eq_ignore_ascii_case(&p.4))
        .prop_filter("database", |p| p.5 != "template0" && p.5 != "template1")
        .prop_map(
            |(
                cluster,
                network,
                subnet,
                user,
                owner,
                db,
                image,
                nodes,
                volumes,
                sync_first,
                settings,
            )| {
                Params {
                    cluster,
                    network,
                    subnet,
                    user,
                    owner,
                    db,
                    image,
                    nodes: nodes.into_iter().collect(),
                    volumes,
                    sync_first,
                    settings,
                }
            },
        )
}

fn load(p: &Params) -> Loaded {
    let text = p.toml();
    Loaded::parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The double-quoted scalars of a line, each read as a JSON string; `None`
/// when one does not parse or is not closed on the line.
fn json_strings(line: &str) -> Option<Vec<String>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        if i >= b.len() {
            return None;
        }
        out.push(serde_json::from_str::<String>(&line[start..=i]).ok()?);
        i += 1;
    }
    Some(out)
}

fn lines(s: &str) -> usize {
    s.lines().count()
}

proptest! {
    #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

    #[test]
    fn rendered_files_parse_back_exactly(p in params()) {
        let l = load(&p);
        let t = &l.topology;
        let report = validate::validate_topology(&l);
        prop_assert!(!report.has_errors(), "{}\n{}", report, p.toml());
        let twin = load(&p.twin());
        let subnet = t.subnet().map(|s| s.cidr());
        let twin_subnet = twin.topology.subnet().map(|s| s.cidr());

        for (i, node) in t.nodes.iter().enumerate() {
            // postgresql.conf: exactly the effective settings.
            let conf = render::postgresql_conf(t, node);
            let parsed = pgconf::parse(&conf);
            prop_assert!(parsed.errors.is_empty(), "{:?}\n{conf}", parsed.errors);
            prop_assert!(parsed.includes.is_empty());
            let want: Vec<(String, String)> = render::effective_settings(t, node)
                .into_iter()
                .map(|s| (s.name.to_ascii_lowercase(), s.value.as_raw()))
                .collect();
            let got: Vec<(String, String)> = parsed
                .entries
                .iter()
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect();
            prop_assert_eq!(got, want);
            let twin_node = &twin.topology.nodes[i];
            prop_assert_eq!(lines(&conf), lines(&render::postgresql_conf(&twin.topology, twin_node)));

            // pg_hba.conf: exactly the model's rules, field by field.
            let hba_text = render::pg_hba_conf(t, node, subnet.as_ref());
            let f = hba::parse(&hba_text);
            prop_assert!(f.errors.is_empty(), "{:?}\n{hba_text}", f.errors);
            let strip = |rs: Vec<hba::Rule>| -> Vec<hba::Rule> {
                rs.into_iter().map(|mut r| { r.line = 0; r }).collect()
            };
            prop_assert_eq!(strip(f.rules.clone()), strip(render::hba_rules(t, subnet.as_ref())));
            prop_assert_eq!(
                lines(&hba_text),
                lines(&render::pg_hba_conf(&twin.topology, twin_node, twin_subnet.as_ref()))
            );

            // The rendered pair passes the checks hand-written files get.
            let files = vec![
                ("postgresql.conf".to_string(), conf.into_bytes()),
                ("pg_hba.conf".to_string(), hba_text.into_bytes()),
            ];
            let r = validate::validate_files(&files, Some(t.replication.user.get_ref()), subnet, false);
            prop_assert!(!r.has_errors(), "{}", r);

            // Standby settings: the connection string carries every value.
            if node.role == Role::Standby {
                let upstream = t.nodes[0].name();
                let auto = render::standby_settings(t, node, upstream, Some("p@ss w'o\\rd$#"));
                let parsed = pgconf::parse(&auto);
                prop_assert!(parsed.errors.is_empty());
                let ci = validate::parse_conninfo(&parsed.get("primary_conninfo").unwrap().value).unwrap();
                let get = |k: &str| ci.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                prop_assert_eq!(get("host"), Some(upstream.to_string()));
                prop_assert_eq!(get("user"), Some(t.replication.user.get_ref().to_string()));
                prop_assert_eq!(get("application_name"), Some(node.name().to_string()));
                prop_assert_eq!(get("password"), Some("p@ss w'o\\rd$#".to_string()));
            }
        }

        // Compose: only the tool's two variables are interpolated, every
        // quoted scalar is one JSON string on its line, and the structure
        // does not depend on the values.
        for preset in [true, false] {
            let loc = compose::location(t.name(), preset);
            let y = compose::render(t, "p.toml", &loc.state_ref);
            let mut vars = compose::interpolations(&y);
            vars.sort();
            vars.dedup();
            prop_assert_eq!(vars, vec![compose::IMAGE_ENV.to_string(), compose::USER_ENV.to_string()]);
            prop_assert!(!y.chars().any(|c| c.is_control() && c != '\n'));
            for line in y.lines().filter(|l| !l.trim_start().starts_with('#')) {
                prop_assert!(json_strings(line).is_some(), "a quoted scalar is not one JSON string: {line}");
            }
            let twin_loc = compose::location(twin.topology.name(), preset);
            prop_assert_eq!(
                lines(&y),
                lines(&compose::render(&twin.topology, "p.toml", &twin_loc.state_ref))
            );
            // Values come back as written once Compose unescapes `$$`.
            let owner_line = format!("POSTGRES_USER: {}", compose::q(t.database.owner.get_ref()));
            prop_assert!(y.contains(&owner_line));
            // Read as Compose reads it (a real YAML parser): one service per
            // node, each with its name, its published port on loopback only,
            // the owner and database as written.
            let doc = common::yaml(&y);
            let services = doc["services"].as_object().expect("services");
            prop_assert_eq!(services.len(), t.nodes.len());
            for node in &t.nodes {
                let svc = &services[node.name()];
                prop_assert_eq!(svc["hostname"].as_str(), Some(node.name()));
                let port = format!("127.0.0.1:{}:5432", node.port.get_ref());
                prop_assert_eq!(svc["ports"][0].as_str(), Some(port.as_str()));
                let owner = t.database.owner.get_ref().replace('$', "$$");
                prop_assert_eq!(svc["environment"]["POSTGRES_USER"].as_str(), Some(owner.as_str()));
            }
        }
    }

    /// Any text, control characters included (but NUL, which no file can
    /// hold), survives postgresql.conf quoting on a single line.
    #[test]
    fn any_text_round_trips_through_postgresql_conf(v in "[^\u{0}]{0,60}") {
        let conf = pgconf::render("h", [("cluster_name", cluster_config::guc::quote(&v))]);
        prop_assert_eq!(conf.lines().count(), 3);
        let parsed = pgconf::parse(&conf);
        prop_assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        prop_assert_eq!(&parsed.get("cluster_name").unwrap().value, &v);
    }

    /// Any text survives Compose quoting: one line, no interpolation.
    #[test]
    fn any_text_is_one_literal_yaml_scalar(v in "\\PC{0,40}|[$\"\\\\\n\t]{0,10}") {
        let q = compose::q(&v);
        prop_assert!(!q.contains('\n'));
        prop_assert!(compose::interpolations(&q).is_empty(), "{q}");
        let back: String = serde_json::from_str(&q).unwrap();
        prop_assert_eq!(back.replace("$$", "$"), v);
    }

    /// Every pg_hba.conf token the renderer writes comes back as one token.
    #[test]
    fn hba_tokens_stay_tokens(name in "[ -~]{1,30}") {
        let rule = hba::Rule {
            line: 1,
            conn: hba::ConnType::Host,
            databases: vec![hba::word("replication")],
            users: vec![hba::name(&name)],
            address: Some(hba::Address::Cidr("10.0.0.0/8".parse().unwrap())),
            method: "scram-sha-256".into(),
            options: vec![],
        };
        let f = hba::parse(&rule.render());
        prop_assert!(f.errors.is_empty(), "{:?}: {}", f.errors, rule.render());
        prop_assert_eq!(f.rules.len(), 1);
        prop_assert_eq!(&f.rules[0].users[0].text, &name);
        prop_assert_eq!(&f.rules[0].address, &rule.address);
    }

    /// hba.c joins a continued line with no blank: a rendered rule split by
    /// `\` and a line break at any point reads back as the same rule.
    #[test]
    fn a_rendered_hba_rule_continued_anywhere_is_the_same_rule(name in "[ -~]{1,20}", cut in 0usize..200) {
        let rule = hba::Rule {
            line: 1,
            conn: hba::ConnType::Host,
            databases: vec![hba::word("replication")],
            users: vec![hba::name(&name)],
            address: Some(hba::Address::Cidr("10.0.0.0/8".parse().unwrap())),
            method: "scram-sha-256".into(),
            options: vec![],
        };
        let text = rule.render();
        let at = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
        let split = format!("{}\\\n{}\n", &text[..at], &text[at..]);
        let whole = hba::parse(&format!("{text}\n"));
        let f = hba::parse(&split);
        prop_assert!(f.errors.is_empty(), "{:?}: {split:?}", f.errors);
        prop_assert_eq!(&f.rules[0].users, &whole.rules[0].users);
        prop_assert_eq!(&f.rules[0].address, &whole.rules[0].address);
        prop_assert_eq!(f.rules[0].line, 1);
    }

    /// An IPv4 address in dotted-quad form reads as itself, as PostgreSQL's
    /// getaddrinfo reads it; any other spelling of it reads as the same
    /// address too (inet_aton's forms).
    #[test]
    fn dotted_quads_read_as_themselves(a in any::<[u8; 4]>()) {
        let ip = std::net::Ipv4Addr::from(a);
        prop_assert_eq!(hba::inet_aton(&ip.to_string()), Some(ip));
        let hex = format!("0x{:x}.0x{:x}.0x{:x}.0x{:x}", a[0], a[1], a[2], a[3]);
        prop_assert_eq!(hba::inet_aton(&hex), Some(ip));
        let two = format!("{}.{}", a[0], u32::from_be_bytes([0, a[1], a[2], a[3]]));
        prop_assert_eq!(hba::inet_aton(&two), Some(ip));
    }

    /// A setting the tool owns with a value is refused in a topology unless
    /// it is exactly the tool's own value (any boolean spelling of it).
    #[test]
    fn owned_settings_accept_only_the_tools_value(
        which in 0usize..3,
        spelling in prop::sample::select(vec!["on", "off", "true", "false", "yes", "no", "1", "0", "latest", "current"]),
    ) {
        let (name, own) = [("hot_standby", "on"), ("default_transaction_read_only", "off"), ("recovery_target_timeline", "latest")][which];
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../conf/semi-sync.toml"))
            .unwrap()
            .replace("wal_keep_size = \"256MB\"", &format!("wal_keep_size = \"256MB\"\n{name} = \"{spelling}\""));
        let l = Loaded::parse("t.toml", &text).unwrap();
        let r = validate::validate_topology(&l);
        let same = match (cluster_config::guc::parse_bool(spelling), cluster_config::guc::parse_bool(own)) {
            (Some(a), Some(b)) => a == b,
            _ => spelling == own,
        };
        let refused = r.errors().any(|d| d.code == "managed-setting");
        prop_assert_eq!(refused, !same, "{} = {}: {}", name, spelling, r);
    }
}
