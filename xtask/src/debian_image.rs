//! The project's PostgreSQL images: built from Debian packages (the suite
//! that packages the major: bookworm for 15, trixie for 17, forky for 18)
//! with debootstrap or mmdebstrap, and loaded into the engine with `docker
//! import`, with no registry involved.

use crate::docker::Docker;
use crate::project;
use crate::runner::{Cmd, Runner};
use anyhow::{bail, Context, Result};
use cluster_config::version::Major;
use std::fs;
use std::path::{Path, PathBuf};

/// The project's own image of a major: `pgrepl/postgres:<major>`.
pub fn own_tag(major: Major) -> String {
    format!("pgrepl/postgres:{major}")
}

/// The official image of a major, used when present: `postgres:<major>`.
pub fn official_tag(major: Major) -> String {
    format!("postgres:{major}")
}

/// The project's image with Patroni and etcd (`image --patroni`): Debian
/// forky's patroni 4.1.5 (quorum commit works from 4.1.5 on) with
/// PostgreSQL 18 and etcd 3.5, all from the Debian mirror the other images
/// come from (no PyPI).
pub const PATRONI_TAG: &str = "pgrepl/patroni:18";
/// The major of the Patroni image.
pub const PATRONI_MAJOR: u32 = 18;
/// The Debian suite the Patroni image is built from.
pub const PATRONI_SUITE: &str = "forky";
/// What the Patroni image holds, for messages.
pub const PATRONI_WHAT: &str = "Debian forky's patroni 4.1.5 with PostgreSQL 18";
/// Label carried by the image, so the tool can tell its own images apart.
pub const IMAGE_LABEL: &str = "io.pgrepl.image";

const ENTRYPOINT: &str = include_str!("../assets/docker-entrypoint.sh");

/// What to build.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Image name and tag to create.
    pub tag: String,
    /// The PostgreSQL major (Debian's `postgresql-<major>`).
    pub major: Major,
    /// Debian mirror URL; `None`: the one in this machine's apt sources.
    pub mirror: Option<String>,
    /// Debian suite.
    pub suite: String,
    /// Rebuild even when the image is present.
    pub force: bool,
    /// Also Patroni and etcd (Debian's `patroni` and `etcd-server`).
    pub patroni: bool,
}

impl Spec {
    /// debootstrap's / mmdebstrap's `--include`.
    fn include(&self) -> String {
        let pg = format!("postgresql-{}", self.major);
        let mut p = vec![pg.as_str(), "libnss-wrapper"];
        if self.patroni {
            // Debian's patroni only suggests a DCS client library: without
            // python3-etcd its etcd3 module does not load.
            p.extend(["patroni", "python3-etcd", "etcd-server", "etcd-client"]);
        }
        format!("--include={}", p.join(","))
    }

    /// The image label's value: what the image holds.
    fn flavour(&self) -> String {
        let patroni = if self.patroni { "-patroni" } else { "" };
        format!("postgresql-{}{patroni}-{}", self.major, self.suite)
    }

    /// Where the major's programs are in a Debian root file system.
    fn bin_dir(&self) -> String {
        format!("/usr/lib/postgresql/{}/bin", self.major)
    }

    /// The spec of the project's own image of a buildable major.
    pub fn own(major: Major) -> Result<Spec> {
        let suite = major.debian_suite().with_context(|| {
            format!(
                "PostgreSQL {major} cannot be built here: the project builds {} from Debian packages",
                buildable_list()
            )
        })?;
        Ok(Spec {
            tag: own_tag(major),
            major,
            mirror: None,
            suite: suite.to_string(),
            force: false,
            patroni: false,
        })
    }
}

/// `15 (bookworm), 17 (trixie), 18 (forky)`, for messages.
pub fn buildable_list() -> String {
    cluster_config::version::BUILDABLE
        .iter()
        .map(|(m, s)| format!("{m} ({s})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// debootstrap's script for a suite: bookworm's debootstrap knows no
/// `forky` (nor any suite newer than its own release), and every Debian
/// suite since buster is built like `sid`.
fn debootstrap_script(suite: &str) -> Option<String> {
    let dir = Path::new("/usr/share/debootstrap/scripts");
    if dir.join(suite).exists() || !dir.join("sid").exists() {
        return None;
    }
    Some(dir.join("sid").to_string_lossy().into_owned())
}

/// Makes sure the image can be built by this user: as root, installs
/// debootstrap when it is missing (apt-get); otherwise the build itself
/// says what is missing.
pub fn ensure_builder(runner: &dyn Runner) -> Result<()> {
    if is_root() && which::which("debootstrap").is_err() {
        install_debootstrap(runner)?;
    }
    Ok(())
}

/// Installs debootstrap with apt-get when this process may (root on a
/// Debian-like host); otherwise says the one command to run.
fn install_debootstrap(runner: &dyn Runner) -> Result<()> {
    let root = is_root();
    let apt = which::which("apt-get").ok();
    match (root, apt) {
        (true, Some(apt)) => {
            say!("image: installing debootstrap (apt-get install debootstrap)");
            let install = Cmd::new(&apt)
                .args([
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "debootstrap",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .streaming();
            // A fresh machine may not have package lists yet.
            runner
                .run(&install)
                .or_else(|_| {
                    runner.run(&Cmd::new(&apt).args(["update", "-q"]).streaming())?;
                    runner.run(&install)
                })
                .context("installing debootstrap")?;
            Ok(())
        }
        _ => bail!("{ROOTLESS_HINT}"),
    }
}

fn is_root() -> bool {
    crate::docker::effective_ids().is_some_and(|(uid, _)| uid == 0)
}

/// A Debian mirror URL from a flag or PGREPL_DEBIAN_MIRROR: `http://`,
/// `https://` or `file:/`, one word with no control character (it reaches
/// debootstrap's command line as an argument).
pub fn parse_mirror(v: &str) -> Result<String, String> {
    let shown = cluster_config::names::shown(v);
    if v.trim().is_empty() {
        return Err(
            "the mirror URL is empty: give one, or unset it to use this machine's apt sources"
                .into(),
        );
    }
    let scheme_ok = ["http://", "https://", "file:/"]
        .iter()
        .any(|p| v.starts_with(p) && v.len() > p.len());
    if !scheme_ok || v.chars().any(|c| c.is_whitespace() || c.is_control()) || v.starts_with('-') {
        return Err(format!(
            "`{shown}` is not a mirror URL: write http://HOST/debian, https://... or file:/PATH (no blanks)"
        ));
    }
    Ok(v.to_string())
}

/// A Debian suite name (`bookworm`, `trixie`, `sid`): a lower-case word,
/// never an option or a path.
pub fn parse_suite(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.len() <= 32
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(format!(
            "`{}` is not a Debian suite name (a lower-case word such as bookworm, trixie or sid)",
            cluster_config::names::shown(v)
        ));
    }
    Ok(v.to_string())
}

/// The Debian mirror to build `suite` from: the apt sources' entry for that
/// suite, else the mirror of another Debian suite they list (a Debian
/// mirror serves every suite; security and update entries are not used).
pub fn debian_mirror(etc_apt: &Path, suite: &str) -> Option<String> {
    if let Some(m) = mirror_from_apt(etc_apt, suite) {
        return Some(m);
    }
    const DEBIAN: [&str; 9] = [
        "buster", "bullseye", "bookworm", "trixie", "forky", "sid", "stable", "testing", "unstable",
    ];
    DEBIAN.iter().find_map(|s| mirror_from_apt(etc_apt, s))
}

/// Finds the Debian mirror in apt's configuration (deb822 `.sources` files
/// or one-line `sources.list` entries), for the given suite.
pub fn mirror_from_apt(etc_apt: &Path, suite: &str) -> Option<String> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(rd) = fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        if f.extension().is_some_and(|e| e == "sources") {
            for stanza in text.split("\n\n") {
                let field = |name: &str| {
                    stanza
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                };
                let (Some(uris), Some(suites)) = (field("URIs:"), field("Suites:")) else {
                    continue;
                };
                let types = field("Types:").unwrap_or_default();
                if types.split_whitespace().any(|t| t == "deb")
                    && suites.split_whitespace().any(|s| s == suite)
                {
                    if let Some(u) = uris.split_whitespace().next() {
                        return Some(u.to_string());
                    }
                }
            }
        } else if f.extension().is_some_and(|e| e == "list") {
            for line in text.lines().map(str::trim) {
                let mut words = line.split_whitespace().filter(|w| !w.starts_with('['));
                if words.next() == Some("deb") {
                    if let (Some(uri), Some(s)) = (words.next(), words.next()) {
                        if s == suite {
                            return Some(uri.to_string());
                        }
                    }
                }
            }
        }
    }
    None
}

/// Builds the image (debootstrap, then `docker import`); a dry-run runner
/// prints the commands.
pub fn build(args: &Spec, runner: &dyn Runner) -> Result<()> {
    let docker = Docker::detect(runner)?;
    if !args.force && docker.has_image(runner, &args.tag)? {
        say!("image {} is present (use --force to rebuild)", args.tag);
        return Ok(());
    }
    let mirror = match &args.mirror {
        Some(m) => m.clone(),
        None => debian_mirror(Path::new("/etc/apt"), &args.suite).with_context(|| {
            format!(
                "no Debian mirror in /etc/apt's sources to build `{}` from; pass --mirror URL (or set PGREPL_DEBIAN_MIRROR)",
                args.suite
            )
        })?,
    };
    if !is_root() {
        return build_rootless(args, &docker, &mirror, runner);
    }
    let debootstrap = which::which("debootstrap").map_err(|_| {
        anyhow::anyhow!("`debootstrap` was not found. Install it (Debian: apt-get install debootstrap) and run this as root.")
    })?;
    let work = project::root().join("target").join("pgrepl-image");
    let rootfs = work.join("rootfs");
    let tarball = work.join("rootfs.tar");
    if !runner.dry_run() && work.exists() {
        // Our own scratch space from an earlier, interrupted build: never
        // deleted while anything (a /proc, a /dev bind) is mounted in it.
        unmount_all(runner, &work)?;
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    // Whatever happens from here on, nothing stays mounted in the scratch
    // space once the build ends.
    let _unmount = UnmountOnDrop { runner, dir: &work };
    let started = std::time::Instant::now();
    say!(
        "image: debootstrap {} with postgresql-{} (about a minute)",
        args.suite,
        args.major
    );
    let mut cmd = Cmd::new(&debootstrap)
        .args(["--variant=minbase", &args.include(), &args.suite])
        .arg(rootfs.to_string_lossy())
        .arg(&mirror);
    if let Some(script) = debootstrap_script(&args.suite) {
        cmd = cmd.arg(script);
    }
    runner
        .run(&cmd.streaming())
        .context("debootstrap failed (it needs root and a reachable mirror)")?;
    if !runner.dry_run() {
        unmount_all(runner, &rootfs)?;
        prepare_rootfs(&rootfs, args.major)?;
    }
    // --one-file-system: a file system mounted in the root file system is
    // never archived (a mounted /proc once filled the disk).
    runner.run(
        &Cmd::new("tar")
            .args(["--one-file-system", "-C"])
            .arg(rootfs.to_string_lossy())
            .args(["-cf"])
            .arg(tarball.to_string_lossy())
            .arg("."),
    )?;
    import(&docker, runner, &tarball, args)?;
    if !runner.dry_run() {
        unmount_all(runner, &work)?;
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    if runner.dry_run() {
        say!("image: dry run, nothing changed");
    } else {
        say!("image: {} ready in {:.0?}", args.tag, started.elapsed());
    }
    Ok(())
}

/// `docker import` of a root file system tarball with the image's settings;
/// the image the tag named before is removed when this tool built it and
/// nothing else names it (no dangling image is left).
fn import(docker: &Docker, runner: &dyn Runner, tarball: &Path, spec: &Spec) -> Result<()> {
    let (tag, flavour) = (spec.tag.as_str(), spec.flavour());
    let changes = [
        format!(
            "ENV PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            spec.bin_dir()
        ),
        "ENV PGDATA=/var/lib/postgresql/data".into(),
        "ENV LANG=C.UTF-8".into(),
        "ENTRYPOINT [\"docker-entrypoint.sh\"]".into(),
        "CMD [\"postgres\"]".into(),
        "EXPOSE 5432".into(),
        format!("LABEL {IMAGE_LABEL}={flavour}"),
    ];
    let mut import = docker.cmd().arg("import");
    for c in &changes {
        import = import.args(["--change", c]);
    }
    let previous = docker.image_id(runner, tag)?;
    runner.run(&import.arg(tarball.to_string_lossy().into_owned()).arg(tag))?;
    // The tag moved to the new image: the one it named before is left
    // dangling unless removed (only an image this tool built).
    if let Some(old) = previous {
        if docker.image_id(runner, tag)?.as_deref() != Some(old.as_str()) {
            let label = runner.run_unchecked(
                &docker
                    .cmd()
                    .args(["image", "inspect", "--format"])
                    .arg(format!(
                        "{{{{index .Config.Labels \"{IMAGE_LABEL}\"}}}}|{{{{len .RepoTags}}}}"
                    ))
                    .arg(&old)
                    .read_only(),
            )?;
            let out = label.stdout.trim();
            if label.success && !out.starts_with('|') && out.ends_with("|0") {
                runner.run(&docker.cmd().args(["image", "rm", &old]))?;
                say!("image: removed the image {} used to name ({old})", tag);
            }
        }
    }
    Ok(())
}

const ROOTLESS_HINT: &str = "building the image needs root (debootstrap) or, as another user, \
    mmdebstrap in unshare mode with user namespaces and a subordinate id range (Debian: \
    `sudo apt-get install mmdebstrap uidmap`; `/etc/subuid` and `/etc/subgid` list your user). \
    Or run once: `cargo build -p xtask && sudo target/debug/xtask image`, then re-run.";

/// Builds the image without root: mmdebstrap in unshare mode (a user
/// namespace maps the build's root to this user's subordinate ids) writes
/// the root file system straight into a tarball, with the image's own
/// preparation done by its hooks. Nothing is mounted on the host, so
/// nothing can be left mounted.
fn build_rootless(args: &Spec, docker: &Docker, mirror: &str, runner: &dyn Runner) -> Result<()> {
    let mmdebstrap = which::which("mmdebstrap").map_err(|_| anyhow::anyhow!("{ROOTLESS_HINT}"))?;
    let unshare = runner.run_unchecked(
        &Cmd::new("unshare")
            .args(["--user", "--map-root-user", "true"])
            .read_only(),
    );
    if !unshare.is_ok_and(|o| o.success) {
        bail!("user namespaces are not available to this user. {ROOTLESS_HINT}");
    }
    // This user's own scratch space: the repository may belong to another.
    let work = std::env::temp_dir().join(format!("pgrepl-image-{}", std::process::id()));
    let tarball = work.join("rootfs.tar");
    if !runner.dry_run() {
        if work.exists() {
            fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
        }
        fs::create_dir_all(&work)?;
    }
    let started = std::time::Instant::now();
    say!(
        "image: mmdebstrap {} with postgresql-{}, as this user (unshare mode)",
        args.suite,
        args.major
    );
    let mut cmd = Cmd::new(&mmdebstrap).args([
        "--mode=unshare",
        "--variant=minbase",
        &args.include(),
        // mmdebstrap empties /run at the end; the socket folder made by the
        // hooks must stay.
        "--skip=cleanup/run",
    ]);
    for hook in ROOTLESS_HOOKS {
        cmd = cmd.arg(format!("--customize-hook={hook}"));
    }
    runner
        .run(
            &cmd.arg(&args.suite)
                .arg(tarball.to_string_lossy().into_owned())
                .arg(mirror)
                .env("PGREPL_ENTRYPOINT", ENTRYPOINT)
                .env("PGREPL_MAJOR", args.major.to_string())
                .streaming(),
        )
        .context("mmdebstrap failed")?;
    let imported = import(docker, runner, &tarball, args);
    if !runner.dry_run() {
        let _ = fs::remove_dir_all(&work);
    }
    imported?;
    if !runner.dry_run() {
        say!("image: {} ready in {:.0?}", args.tag, started.elapsed());
    }
    Ok(())
}

/// What `prepare_rootfs` does, as mmdebstrap hooks (run in the user
/// namespace with the root file system as `$1`). Fixed text; the entrypoint
/// arrives in PGREPL_ENTRYPOINT, the major in PGREPL_MAJOR.
const ROOTLESS_HOOKS: [&str; 4] = [
    r#"rm -rf "$1/var/lib/postgresql/$PGREPL_MAJOR" "$1/etc/postgresql/$PGREPL_MAJOR" "$1/var/cache/apt/archives" "$1/var/lib/apt/lists" && mkdir -p "$1/docker-entrypoint-initdb.d" "$1/var/lib/postgresql/data" "$1/var/cache/apt/archives/partial" "$1/run/postgresql""#,
    r#"printf '%s' "$PGREPL_ENTRYPOINT" > "$1/usr/local/bin/docker-entrypoint.sh" && chmod 0755 "$1/usr/local/bin/docker-entrypoint.sh" && test -s "$1/usr/local/bin/docker-entrypoint.sh""#,
    r#"chroot "$1" chown postgres:postgres /var/lib/postgresql/data /run/postgresql && chmod 0700 "$1/var/lib/postgresql/data" && chmod 3777 "$1/run/postgresql""#,
    r#"test -x "$1/usr/lib/postgresql/$PGREPL_MAJOR/bin/postgres""#,
];

/// Mount points at or below `dir`, deepest first, from the text of
/// `/proc/self/mountinfo` (its fifth field, with `\040`-style escapes).
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let unescape = |s: &str| {
        let mut out = String::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 3 < b.len() {
                if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                    out.push(v as char);
                    i += 4;
                    continue;
                }
            }
            out.push(b[i] as char);
            i += 1;
        }
        out
    };
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

/// Unmounts everything mounted at or below `dir`, deepest first, and fails
/// when anything stays mounted.
pub fn unmount_all(runner: &dyn Runner, dir: &Path) -> Result<()> {
    let read = || fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = match fs::canonicalize(dir) {
        Ok(d) => d,
        Err(_) => return Ok(()),
    };
    for m in mounts_under(&read(), &dir) {
        say!("image: unmounting {} left by the build", m.display());
        runner.run_unchecked(&Cmd::new("umount").arg(m.to_string_lossy()))?;
    }
    let left = mounts_under(&read(), &dir);
    if !left.is_empty() && !runner.dry_run() {
        bail!(
            "{} is still mounted inside the image's scratch folder: refusing to delete or archive it (unmount it by hand)",
            left[0].display()
        );
    }
    Ok(())
}

/// Unmounts the build's scratch space on every way out of `build`.
struct UnmountOnDrop<'a> {
    runner: &'a dyn Runner,
    dir: &'a Path,
}

impl Drop for UnmountOnDrop<'_> {
    fn drop(&mut self) {
        if !self.runner.dry_run() {
            if let Err(e) = unmount_all(self.runner, self.dir) {
                warn!("warning: {e:#}");
            }
        }
    }
}

/// Drops what the image does not need (Debian's default cluster, package
/// caches) and installs the entrypoint.
fn prepare_rootfs(rootfs: &Path, major: Major) -> Result<()> {
    for dir in [
        format!("var/lib/postgresql/{major}"),
        format!("etc/postgresql/{major}"),
        "var/cache/apt/archives".into(),
        "var/lib/apt/lists".into(),
    ] {
        let p = rootfs.join(dir);
        if p.exists() {
            fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    for dir in [
        "docker-entrypoint-initdb.d",
        "var/lib/postgresql/data",
        "var/cache/apt/archives/partial",
    ] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    let ep = rootfs.join("usr/local/bin/docker-entrypoint.sh");
    fs::write(&ep, ENTRYPOINT).with_context(|| format!("writing {}", ep.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{chown, PermissionsExt};
        fs::set_permissions(&ep, fs::Permissions::from_mode(0o755))?;
        let passwd = fs::read_to_string(rootfs.join("etc/passwd"))?;
        let (uid, gid) = passwd
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&"postgres")).then(|| (f[2].parse().ok(), f[3].parse().ok()))
            })
            .context("the image has no postgres user")?;
        chown(rootfs.join("var/lib/postgresql/data"), uid, gid)?;
        fs::set_permissions(
            rootfs.join("var/lib/postgresql/data"),
            fs::Permissions::from_mode(0o700),
        )?;
        // Any uid (docker run --user) must be able to create its socket and lock file.
        let sockets = rootfs.join("run/postgresql");
        fs::create_dir_all(&sockets)?;
        chown(&sockets, uid, gid)?;
        fs::set_permissions(&sockets, fs::Permissions::from_mode(0o3777))?;
    }
    if !rootfs
        .join(format!("usr/lib/postgresql/{major}/bin/postgres"))
        .exists()
    {
        bail!("postgresql-{major} is missing from the built root file system");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounts_below_the_build_folder_deepest_first() {
        let info = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    40 25 0:5 / /w/target/pgrepl-image/rootfs/proc rw - proc proc rw\n\
                    41 40 0:6 / /w/target/pgrepl-image/rootfs/proc/sys/fs/binfmt_misc rw - binfmt_misc b rw\n\
                    42 25 0:7 / /w/target/pgrepl-image/root\\040fs/dev rw - devtmpfs d rw\n\
                    43 25 0:8 / /w/target/pgrepl-imagex rw - tmpfs t rw\n";
        let got = mounts_under(info, Path::new("/w/target/pgrepl-image"));
        assert_eq!(
            got,
            [
                PathBuf::from("/w/target/pgrepl-image/rootfs/proc/sys/fs/binfmt_misc"),
                PathBuf::from("/w/target/pgrepl-image/rootfs/proc"),
                PathBuf::from("/w/target/pgrepl-image/root fs/dev"),
            ]
        );
    }

    #[test]
    fn mirror_from_deb822_and_list() {
        let dir = std::env::temp_dir().join(format!("xtask-apt-{}", std::process::id()));
        fs::create_dir_all(dir.join("sources.list.d")).unwrap();
        fs::write(
            dir.join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
             Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n",
        )
        .unwrap();
        assert_eq!(
            mirror_from_apt(&dir, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(mirror_from_apt(&dir, "trixie"), None);
        // A Debian mirror serves every suite: trixie and forky are built from
        // bookworm's mirror, never from the security one.
        assert_eq!(
            debian_mirror(&dir, "forky").as_deref(),
            Some("http://mirror.example/debian")
        );
        fs::write(
            dir.join("sources.list"),
            "deb [arch=amd64] http://list.example/debian trixie main\n",
        )
        .unwrap();
        assert_eq!(
            mirror_from_apt(&dir, "trixie").as_deref(),
            Some("http://list.example/debian")
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
