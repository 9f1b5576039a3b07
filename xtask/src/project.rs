//! Where things are: the repository root, presets, topology loading, and
//! writing files so that an interrupted write never leaves half a file.

use anyhow::{bail, Context, Result};
use clap::Args;
use cluster_config::{compose, validate, Loaded};
use std::fs;
use std::path::{Path, PathBuf};

/// The repository root (the directory holding `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the repository root")
        .to_path_buf()
}

/// The preset topologies in `conf/`, sorted.
pub fn presets() -> Result<Vec<PathBuf>> {
    let dir = root().join("conf");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// A path as shown to people: relative to the root when inside it, with `/`.
pub fn display(path: &Path) -> String {
    match path.strip_prefix(root()) {
        Ok(inside) => inside
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => path.display().to_string(),
    }
}

/// Reads and parses a topology file; the error names the file, line and
/// rule.
pub fn load(path: &Path) -> Result<Loaded> {
    let bytes = crate::fsx::read_limited(path, crate::fsx::TOPOLOGY_LIMIT)
        .with_context(|| format!("reading topology {}", path.display()))?;
    Loaded::from_bytes(&display(path), &bytes).map_err(|report| anyhow::anyhow!("{report}"))
}

/// Loads a topology and validates it: every error at once, before anything
/// touches Docker or the disk.
pub fn load_valid(path: &Path) -> Result<Loaded> {
    let loaded = load(path)?;
    let report = check(&loaded);
    if report.has_errors() {
        bail!("{} is invalid:\n{report}", loaded.path);
    }
    Ok(loaded)
}

/// Validates a topology without Docker: against its declared major and
/// this machine's memory, which bounds the Docker host's (a VM on it, or
/// the machine itself); setup checks against the image and the Docker
/// host's own memory later.
pub fn check(loaded: &Loaded) -> cluster_config::Report {
    let opts = validate::Options {
        memory: local_memory(),
        ..validate::Options::for_topology(loaded)
    };
    validate::validate_topology_with(loaded, &opts)
}

/// Fails unless the topology has this node; the error lists its nodes.
pub fn require_node(loaded: &Loaded, node: &str) -> Result<()> {
    if loaded.topology.node(node).is_none() {
        let known: Vec<&str> = loaded.topology.nodes.iter().map(|n| n.name()).collect();
        bail!(
            "no node `{node}` in {} (its nodes: {})",
            loaded.path,
            known.join(", ")
        );
    }
    Ok(())
}

/// Whether a topology file is one of the presets in `conf/`: their Compose
/// files are committed in `compose/`; any other's goes into its state folder.
pub fn is_preset(path: &Path) -> bool {
    let conf = root().join("conf");
    let canon = |p: &Path| fs::canonicalize(p).ok();
    match (path.parent().and_then(canon), canon(&conf)) {
        (Some(dir), Some(conf)) => dir == conf,
        _ => false,
    }
}

/// Where the Compose file of a loaded topology goes, and how it refers to
/// the cluster's state folder.
pub fn compose_location(path: &Path, loaded: &Loaded) -> (PathBuf, String) {
    let loc = compose::location(loaded.topology.name(), is_preset(path));
    let mut file = root();
    for part in loc.file.split('/') {
        file.push(part);
    }
    (file, loc.state_ref)
}

/// Writes a file others may read (rendered configuration, Compose files,
/// reports) atomically, never through a link; see [`crate::fsx`]. Returns
/// whether the file changed.
pub fn write_if_changed(path: &Path, contents: &str) -> Result<bool> {
    crate::fsx::write(path, contents.as_bytes(), crate::fsx::Access::Public)
}

/// `--topology FILE`, shared by the subcommands that act on one cluster.
#[derive(Debug, Clone, Args)]
pub struct TopologyArg {
    /// Topology file (relative paths are tried from here, then from the repository root)
    #[arg(
        long = "topology",
        short = 't',
        value_name = "FILE",
        env = "PGREPL_TOPOLOGY",
        default_value = "conf/semi-sync.toml"
    )]
    pub path: PathBuf,
}

impl TopologyArg {
    pub fn resolve(&self) -> PathBuf {
        resolve(&self.path)
    }
}

/// A topology path as given, or from the repository root when it is
/// relative and not found here.
pub fn resolve(p: &Path) -> PathBuf {
    if p.is_relative() && !p.exists() {
        root().join(p)
    } else {
        p.to_path_buf()
    }
}

/// A number of seconds from the command line: finite, not negative, at most
/// ten minutes (`NaN`, `inf` and `-1` are refused, not clamped).
pub fn parse_seconds(v: &str) -> Result<f64, String> {
    let x: f64 = v.trim().parse().map_err(|_| {
        format!(
            "`{}` is not a number of seconds",
            cluster_config::names::shown(v)
        )
    })?;
    if !x.is_finite() || !(0.0..=600.0).contains(&x) {
        return Err(format!(
            "`{}` is not a number of seconds from 0 to 600",
            cluster_config::names::shown(v)
        ));
    }
    Ok(x)
}

/// This machine's memory in bytes (Linux: /proc/meminfo), for checks made
/// without Docker; setup asks the Docker host instead.
pub fn local_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
