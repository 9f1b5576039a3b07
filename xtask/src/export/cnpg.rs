//! `export --engine cloudnative-pg`: the topology as a CloudNativePG
//! `Cluster` manifest and, apart, the `Secret` with the owner's password
//! (the cluster's own when it has one). What CloudNativePG does its own way
//! is printed; what would change durability is refused with nothing written.

use super::ExportArgs;
use crate::fsx;
use anyhow::{bail, Result};
use cluster_config::cnpg;

pub fn run(args: &ExportArgs, loaded: &cluster_config::Loaded) -> Result<()> {
    let t = &loaded.topology;
    if !args.hosts.is_empty() {
        bail!("--host is for --engine patroni: CloudNativePG places its instances on Kubernetes nodes itself");
    }
    let password = super::or_new(&super::cluster_secrets(t)?, crate::secrets::OWNER)?;
    let m = match cnpg::render(t, &password) {
        Ok(m) => m,
        Err(errors) => bail!(
            "{} cannot be exported for CloudNativePG; nothing was written:\n{}",
            loaded.path,
            errors
                .iter()
                .map(|e| format!("  error: {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    let secret_path = args.out.join("secret.yaml");
    if std::fs::symlink_metadata(&secret_path).is_ok() && !args.force {
        bail!(
            "{} already exists: its password may be a deployed cluster's. Export into an empty folder, \
             or pass --force to replace the earlier export; nothing was written",
            secret_path.display()
        );
    }
    let cluster_path = args.out.join("cluster.yaml");
    fsx::create_dir(&args.out)?;
    for p in [&cluster_path, &secret_path] {
        fsx::check_target(p)?;
    }
    fsx::write(&cluster_path, m.cluster.as_bytes(), fsx::Access::Public)?;
    fsx::write(&secret_path, m.secret.as_bytes(), fsx::Access::Private)?;
    for n in &m.notes {
        say!("note: {n}");
    }
    say!(
        "{}: CloudNativePG manifests in {}: cluster.yaml, secret.yaml (owner-only; `kubectl apply -f secret.yaml -f cluster.yaml`)",
        t.name(),
        args.out.display()
    );
    Ok(())
}
