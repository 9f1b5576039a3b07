//! `render`: writes the Compose file of each topology (a preset's into
//! `compose/`, any other's into `state/<cluster>/`), or with `--check` fails
//! when one is stale.

use crate::project;
use anyhow::{bail, Result};
use clap::Args;
use cluster_config::compose;
use std::path::PathBuf;

/// Generate the Compose files from topologies (all presets by default): a preset's into compose/, any other's into state/<cluster>/compose.yml.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Topology file(s) to render [default: every conf/*.toml]
    #[arg(
        long = "topology",
        short = 't',
        value_name = "FILE",
        env = "PGREPL_TOPOLOGY"
    )]
    pub topologies: Vec<PathBuf>,
    /// Change nothing; fail if a generated file is missing or differs
    #[arg(long)]
    pub check: bool,
}

/// One generated file: where it goes and what it must contain.
pub struct Generated {
    pub path: PathBuf,
    pub contents: String,
}

/// Renders every file generated from the given topologies. A topology with
/// validation errors is refused, with all of its errors.
pub fn generate(topologies: &[PathBuf]) -> Result<Vec<Generated>> {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for path in topologies {
        let loaded = project::load(path)?;
        let report = crate::project::check(&loaded);
        if report.has_errors() {
            refused.push(format!("{}:\n{report}", loaded.path));
            continue;
        }
        let (file, state_ref) = project::compose_location(path, &loaded);
        out.push(Generated {
            path: file,
            contents: compose::render(&loaded.topology, &loaded.path, &state_ref),
        });
    }
    if !refused.is_empty() {
        bail!("not rendering invalid topologies:\n{}", refused.join("\n"));
    }
    Ok(out)
}

pub fn run(args: &RenderArgs) -> Result<()> {
    let topologies = if args.topologies.is_empty() {
        project::presets()?
    } else {
        args.topologies.clone()
    };
    let files = generate(&topologies)?;
    if args.check {
        let stale: Vec<String> = files
            .iter()
            .filter(|g| {
                std::fs::read_to_string(&g.path).ok().as_deref() != Some(g.contents.as_str())
            })
            .map(|g| project::display(&g.path))
            .collect();
        if !stale.is_empty() {
            bail!(
                "generated files are stale: {}\nrun `cargo xtask render` and commit the result",
                stale.join(", ")
            );
        }
        say!("render --check: {} file(s) up to date", files.len());
        return Ok(());
    }
    for g in &files {
        let changed = project::write_if_changed(&g.path, &g.contents)?;
        say!(
            "{} {}",
            if changed { "wrote" } else { "unchanged" },
            project::display(&g.path)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed Compose files are what the presets render to.
    #[test]
    fn compose_files_are_fresh() {
        run(&RenderArgs {
            topologies: vec![],
            check: true,
        })
        .unwrap();
    }

    #[test]
    fn stale_file_is_detected() {
        let dir = std::env::temp_dir().join(format!("xtask-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let topo = dir.join("t.toml");
        let text = std::fs::read_to_string(project::root().join("conf/semi-sync.toml"))
            .unwrap()
            .replace("name = \"semi-sync\"", "name = \"render-stale-test\"");
        std::fs::write(&topo, text).unwrap();
        let err = run(&RenderArgs {
            topologies: vec![topo],
            check: true,
        })
        .unwrap_err();
        // Not a preset: its Compose file belongs in its own state folder.
        assert!(
            err.to_string()
                .contains("state/render-stale-test/compose.yml"),
            "{err}"
        );
        assert!(!project::root().join("state/render-stale-test").exists());
        assert!(!project::root()
            .join("compose/render-stale-test.yml")
            .exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
