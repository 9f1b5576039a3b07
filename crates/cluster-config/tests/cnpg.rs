//! The CloudNativePG export: every manifest is read back with a real YAML
//! parser and validated against CloudNativePG's own `Cluster` CRD schema
//! (v1.30.0, `tests/data/cnpg/`) with a JSON-Schema validator; the CEL
//! rules the schema carries but a validator does not evaluate are checked
//! here; the password is only in the `Secret`.

mod common;

use cluster_config::cnpg;
use common::{load, preset_text};
use serde_json::{json, Value};

fn crd_schema() -> Value {
    let text = std::fs::read_to_string(
        common::root()
            .join("crates/cluster-config/tests/data/cnpg/postgresql.cnpg.io_clusters.yaml"),
    )
    .unwrap();
    let crd = common::yaml(&text);
    let v1 = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1")
        .expect("the CRD has a v1 version")
        .clone();
    v1["schema"]["openAPIV3Schema"].clone()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&crd_schema()).expect("the CRD's schema compiles")
}

/// What the schema and the CEL rules say of a manifest.
fn problems(v: &jsonschema::Validator, manifest: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter_errors(manifest)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    out.extend(cel_problems(manifest));
    out
}

fn render(preset: &str, from: &str, to: &str) -> cnpg::Manifests {
    let text = preset_text(preset).replace(from, to);
    let t = load(preset, &text).topology;
    cnpg::render(&t, "s3cr3t-Pa55").unwrap()
}

#[test]
fn every_preset_and_both_quorum_methods_pass_the_crd_schema() {
    let v = validator();
    let cases = [
        ("semi-sync.toml", "", "", Some(("first", 1))),
        (
            "semi-sync.toml",
            r#"'FIRST 1 ("slave1-db", "slave2-db", "master-db")'"#,
            r#"'ANY 2 ("slave1-db", "slave2-db", "master-db")'"#,
            Some(("any", 2)),
        ),
        ("async-slots.toml", "", "", None),
    ];
    for (preset, from, to, sync) in cases {
        let m = render(preset, from, to);
        let cluster = common::yaml(&m.cluster);
        let secret = common::yaml(&m.secret);
        let found = problems(&v, &cluster);
        assert!(found.is_empty(), "{preset} {to}: {found:#?}\n{}", m.cluster);
        assert_eq!(cluster["kind"], "Cluster");
        assert_eq!(
            cluster["spec"]["instances"].as_u64().unwrap() as usize,
            load(preset, &preset_text(preset)).topology.nodes.len()
        );
        match sync {
            Some((method, n)) => {
                let s = &cluster["spec"]["postgresql"]["synchronous"];
                assert_eq!(s["method"], method, "{preset}");
                assert_eq!(s["number"], json!(n), "{preset}");
                assert_eq!(s["dataDurability"], "required");
            }
            None => assert!(cluster["spec"]["postgresql"]["synchronous"].is_null()),
        }
        // Every parameter is a string (CloudNativePG's map of strings), and
        // none is one the operator owns.
        for (k, val) in cluster["spec"]["postgresql"]["parameters"]
            .as_object()
            .unwrap()
        {
            assert!(val.is_string(), "{k}: {val}");
            assert!(
                !cnpg::OPERATOR_OWNS.contains(&k.as_str()),
                "{k} is the operator's"
            );
        }
        // The password is in the Secret only, which the Cluster names.
        assert!(!m.cluster.contains("s3cr3t-Pa55"));
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["type"], "kubernetes.io/basic-auth");
        assert_eq!(secret["stringData"]["password"], "s3cr3t-Pa55");
        assert_eq!(
            cluster["spec"]["bootstrap"]["initdb"]["secret"]["name"],
            secret["metadata"]["name"]
        );
        assert_eq!(
            cluster["spec"]["bootstrap"]["initdb"]["owner"],
            secret["stringData"]["username"]
        );
    }
}

#[test]
fn the_schema_and_the_cel_rules_catch_broken_manifests() {
    let v = validator();
    let m = render("semi-sync.toml", "", "");
    let good = common::yaml(&m.cluster);
    let mut bad = good.clone();
    bad["spec"]["instances"] = json!("three");
    assert!(
        !problems(&v, &bad).is_empty(),
        "a string instance count passed"
    );
    let mut bad = good.clone();
    bad["spec"]["postgresql"]["synchronous"]["method"] = json!("some");
    assert!(!problems(&v, &bad).is_empty(), "an unknown method passed");
    let mut bad = good.clone();
    bad["spec"]["postgresql"]["synchronous"]["number"] = json!(0);
    let p = problems(&v, &bad);
    assert!(p.iter().any(|x| x.contains("greater than zero")), "{p:?}");
    let mut bad = good.clone();
    bad["spec"]["imageName"] = json!("postgres:17");
    let p = problems(&v, &bad);
    assert!(p.iter().any(|x| x.contains("mutually exclusive")), "{p:?}");
}

#[test]
fn what_would_change_durability_is_refused_and_the_rest_noted() {
    let text = preset_text("semi-sync.toml").replace(
        r#"'FIRST 1 ("slave1-db", "slave2-db", "master-db")'"#,
        r#"'FIRST 3 ("slave1-db", "slave2-db", "master-db")'"#,
    );
    let t = load("semi-sync.toml", &text).topology;
    let e = cnpg::render(&t, "x").unwrap_err().join("\n");
    assert!(e.contains("would block every commit"), "{e}");
    let text = preset_text("semi-sync.toml").replace(
        r#"'FIRST 1 ("slave1-db", "slave2-db", "master-db")'"#,
        r#"'FIRST 1 ("slave1-db")'"#,
    );
    let m = cnpg::render(&load("semi-sync.toml", &text).topology, "x").unwrap();
    let notes = m.notes.join("\n");
    for want in [
        "names some nodes only",
        "node names",
        "streaming_replica",
        "bind-mounted folders",
    ] {
        assert!(notes.contains(want), "missing `{want}` in:\n{notes}");
    }
}

/// The `x-kubernetes-validations` (CEL) rules of the `Cluster` CRD that a
/// JSON-Schema validator does not evaluate and these manifests touch,
/// checked on the manifest as JSON: what each broken rule says.
fn cel_problems(cluster: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let spec = &cluster["spec"];
    let sync = &spec["postgresql"]["synchronous"];
    if !sync.is_null() {
        if sync["number"].as_i64().is_none_or(|n| n <= 0) {
            out.push("spec.postgresql.synchronous.number: the number of synchronous replicas should be greater than zero".into());
        }
        let empty = |k: &str| sync[k].as_array().is_none_or(|a| a.is_empty());
        if sync["dataDurability"] == "preferred"
            && !(empty("standbyNamesPre") && empty("standbyNamesPost"))
        {
            out.push("spec.postgresql.synchronous: dataDurability set to 'preferred' requires empty 'standbyNamesPre' and empty 'standbyNamesPost'".into());
        }
    }
    let cat = &spec["imageCatalogRef"];
    if !cat.is_null() {
        if !matches!(
            cat["kind"].as_str(),
            Some("ImageCatalog" | "ClusterImageCatalog")
        ) {
            out.push("spec.imageCatalogRef: only image catalogs are supported".into());
        }
        if cat["apiGroup"] != "postgresql.cnpg.io" {
            out.push("spec.imageCatalogRef: only image catalogs are supported (apiGroup)".into());
        }
        if !spec["imageName"].is_null() {
            out.push("spec: imageName and imageCatalogRef are mutually exclusive".into());
        }
    }
    out
}
