//! Tests that keep README in step with the code: its subcommand table lists
//! exactly the CLI's subcommands, and its Layout table is generated from the
//! tree (each module's own opening documentation, by layer). Run with
//! `PGREPL_BLESS=1` to rewrite the Layout table after moving code.

use crate::project;
use std::path::Path;

const START: &str = "<!-- layout: generated from each module's opening documentation; `PGREPL_BLESS=1 cargo test -p xtask readme` rewrites it -->";
const END: &str = "<!-- layout end -->";

/// Folders that hold no Rust module, with what they hold.
const FOLDERS: &[(&str, &str)] = &[
    ("conf/", "the presets: `semi-sync.toml` (runbook 000) and `async-slots.toml` (runbook 003)"),
    ("compose/", "the presets' generated Compose files (do not edit; `cargo xtask render`); other topologies' go to `state/<cluster>/compose.yml`"),
    ("state/", "git-ignored runtime state: data and backup folders, rendered node configs, the generated `secrets.env`, the image record; `state/.images/` caches each image's version and catalogue"),
    ("crates/cluster-config/tests/corpus/", "the bad-input corpus: one file per case with the rule it must raise (`topology/`, `conf/`, `cli/`); run through the library (`tests/corpus.rs`, also under Wine) and through the binary (`xtask/tests/corpus.rs`)"),
    ("xtask/tests/", "end-to-end tests on real clusters (`e2e.rs`, `majors.rs`, every command interrupted at its steps in `interrupt.rs`, the Patroni export on three plain hosts in `hosts.rs`) around a shared harness (`common/`), the corpus through the binary (`corpus.rs`), files and inputs (`files.rs`)"),
    ("xtask/assets/", "fixed scripts run inside containers: the image's entrypoint, the settings catalogue reader"),
    (".ci/", "`test` (the test command), `deps` (what it installs first), `compose-v2`, `run` (CI: runs `test`), `windows-lane`"),
];

/// The first paragraph of a module's `//!` documentation, on one line.
fn opening(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut words = Vec::new();
    for line in text.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            break;
        };
        let doc = doc.trim();
        if doc.is_empty() {
            if words.is_empty() {
                continue;
            }
            break;
        }
        words.push(doc.to_string());
    }
    words.join(" ")
}

/// Which layer a module of `xtask/src` is in.
fn layer(rel: &str) -> &'static str {
    const FOUNDATION: &[&str] = &[
        "cli.rs",
        "cluster.rs",
        "debian_image.rs",
        "docker.rs",
        "fsx.rs",
        "out.rs",
        "owner_only.rs",
        "pg/",
        "pg_image.rs",
        "project.rs",
        "runner.rs",
        "secrets.rs",
        "steps.rs",
        "wait.rs",
    ];
    let name = rel.strip_prefix("xtask/src/").unwrap_or(rel);
    if name.starts_with("ops/") {
        "operations"
    } else if name.starts_with("pg/") {
        "foundation"
    } else if matches!(name, "readme.rs" | "testing.rs") {
        "tests"
    } else if name == "main.rs" {
        "entry"
    } else if FOUNDATION.contains(&name) {
        "foundation"
    } else {
        "task"
    }
}

/// The Layout table as the tree is now.
pub fn layout() -> String {
    let root = project::root();
    let mut rows: Vec<(String, &'static str, String)> = Vec::new();
    for krate in ["cluster-config", "data-move"] {
        let src = root.join("crates").join(krate).join("src");
        let mut files: Vec<_> = std::fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .collect();
        files.sort();
        for f in files {
            let rel = project::display(&f);
            rows.push((rel, "library (no I/O)", opening(&f)));
        }
    }
    let src = root.join("xtask").join("src");
    let mut entries: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            let rel = format!("{}/", project::display(&e));
            rows.push((rel.clone(), layer(&rel), opening(&e.join("mod.rs"))));
            let mut inner: Vec<_> = std::fs::read_dir(&e)
                .unwrap()
                .map(|x| x.unwrap().path())
                .collect();
            inner.sort();
            for i in inner {
                let file = if i.is_dir() {
                    i.join("mod.rs")
                } else {
                    i.clone()
                };
                if i.file_name().is_some_and(|n| n == "mod.rs") {
                    continue;
                }
                let rel = if i.is_dir() {
                    format!("{}/", project::display(&i))
                } else {
                    project::display(&i)
                };
                rows.push((rel.clone(), layer(&rel), opening(&file)));
            }
        } else if e.extension().is_some_and(|x| x == "rs") {
            let rel = project::display(&e);
            rows.push((rel.clone(), layer(&rel), opening(&e)));
        }
    }
    let mut out = format!("{START}\n\n| path | layer | holds |\n| --- | --- | --- |\n");
    for (path, layer, doc) in rows {
        out.push_str(&format!(
            "| `{path}` | {layer} | {} |\n",
            doc.replace('|', "\\|")
        ));
    }
    for (path, what) in FOLDERS {
        out.push_str(&format!("| `{path}` | - | {what} |\n"));
    }
    out.push('\n');
    out.push_str(END);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn readme() -> String {
        std::fs::read_to_string(project::root().join("README.md")).unwrap()
    }

    #[test]
    fn readme_lists_exactly_the_subcommands() {
        let text = readme();
        let mut listed: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains("`cargo xtask "))
            .filter_map(|l| l.split("`cargo xtask ").nth(1))
            .filter_map(|rest| rest.split([' ', '`']).next())
            .map(str::to_string)
            .collect();
        listed.sort();
        listed.dedup();
        let mut cli: Vec<String> = crate::Cli::command()
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        cli.sort();
        assert_eq!(listed, cli, "README's subcommand table and the CLI differ");
        // And a section for each.
        for name in &cli {
            let heading = text
                .lines()
                .any(|l| l.starts_with("### ") && l.split([' ', ',']).any(|w| w == name));
            assert!(heading, "README has no section for `{name}`");
        }
    }

    #[test]
    fn readme_layout_is_the_tree() {
        let text = readme();
        let want = layout();
        let (Some(a), Some(b)) = (text.find(START), text.find(END)) else {
            panic!("README has no generated Layout table (markers missing)");
        };
        let have = &text[a..b + END.len()];
        if have != want {
            if std::env::var("PGREPL_BLESS").is_ok_and(|v| v == "1") {
                let new = format!("{}{}{}", &text[..a], want, &text[b + END.len()..]);
                std::fs::write(project::root().join("README.md"), new).unwrap();
                return;
            }
            panic!(
                "README's Layout table is stale: run `PGREPL_BLESS=1 cargo test -p xtask --bin xtask readme`"
            );
        }
        // Every module opens with its own documentation.
        for line in want
            .lines()
            .filter(|l| l.starts_with("| `") && !l.contains("| - |"))
        {
            assert!(
                !line.ends_with("|  |"),
                "a module without opening documentation: {line}"
            );
        }
    }

    const STEPS_START: &str = "<!-- patroni-steps: generated from cluster_config::patroni::host_steps; the several-hosts test runs the same steps -->\n";
    const STEPS_END: &str = "<!-- patroni-steps end -->";

    /// The several-hosts steps in README are the ones the test runs.
    #[test]
    fn readme_patroni_steps_are_the_tested_ones() {
        let text = readme();
        let preset = std::fs::read_to_string(project::root().join("conf/semi-sync.toml")).unwrap();
        let t = cluster_config::Loaded::parse("semi-sync.toml", &preset)
            .unwrap()
            .topology;
        let want = format!(
            "{STEPS_START}{}{STEPS_END}",
            cluster_config::patroni::host_steps_markdown(&cluster_config::patroni::host_steps(&t))
        );
        let (Some(a), Some(b)) = (text.find(STEPS_START), text.find(STEPS_END)) else {
            panic!("README has no generated Patroni steps (markers missing)");
        };
        let have = &text[a..b + STEPS_END.len()];
        if have != want {
            if std::env::var("PGREPL_BLESS").is_ok_and(|v| v == "1") {
                let new = format!("{}{}{}", &text[..a], want, &text[b + STEPS_END.len()..]);
                std::fs::write(project::root().join("README.md"), new).unwrap();
                return;
            }
            panic!("README's Patroni steps are stale: run `PGREPL_BLESS=1 cargo test -p xtask --bin xtask readme`");
        }
    }

    /// The layer of a top-level module of `xtask/src` by its name.
    fn module_layer(module: &str) -> &'static str {
        let src = project::root().join("xtask/src");
        if src.join(module).is_dir() {
            layer(&format!("xtask/src/{module}/"))
        } else {
            layer(&format!("xtask/src/{module}.rs"))
        }
    }

    /// No module reaches up: foundation below operations below tasks, and
    /// tasks never use one another (a task's own folder, such as `bench/`,
    /// is one task). Read from every `crate::<module>` path in the code,
    /// test modules excluded.
    #[test]
    fn no_module_imports_from_a_layer_above_it() {
        let rank = |l: &str| match l {
            "foundation" => 0,
            "operations" => 1,
            "task" => 2,
            _ => 3,
        };
        let src = project::root().join("xtask/src");
        let mut wrong = Vec::new();
        for e in walkdir::WalkDir::new(&src) {
            let e = e.unwrap();
            if e.path().extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = e
                .path()
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let top = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            let from = module_layer(&top);
            if from == "tests" || from == "entry" {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap();
            // Unit tests may reach anywhere.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            // Code only: a doc link is not an import.
            let code: String = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty() || name == top {
                    continue;
                }
                let to = module_layer(&name);
                let up = rank(to) > rank(from);
                let sideways = from == "task" && to == "task";
                if up || sideways || to == "tests" {
                    wrong.push(format!("{rel} ({from}) uses crate::{name} ({to})"));
                }
            }
        }
        wrong.sort();
        wrong.dedup();
        assert!(
            wrong.is_empty(),
            "imports against the layers:\n{}",
            wrong.join("\n")
        );
    }
}
