//! Every file the tool writes or reads from a user, in one place, so that
//! nothing planted beside it can redirect or stall it.
//!
//! Writes go to a temporary file created exclusively (`O_CREAT | O_EXCL`,
//! which never follows a link) under an unpredictable name in the target's
//! own folder, with its mode (0600 private, 0644 public; an owner-only DACL
//! on Windows) set before the first byte, then synced and renamed over the
//! target. A target that is a symbolic link or not a regular file, or a
//! folder that is a symbolic link, is refused: the tool never writes through
//! a link someone planted (`export --out /tmp/...`, a shared state folder).
//!
//! Reads of user-named inputs (topologies, configuration files) accept only
//! regular files, opened without blocking (a FIFO cannot hang the tool) and
//! read up to a limit (`/dev/zero` cannot exhaust memory).

use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

/// Who may read a file the tool writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Owner only (secrets): 0600 on Unix, a protected owner-only DACL on
    /// Windows.
    Private,
    /// Readable by all (rendered configuration, reports): 0644 on Unix.
    Public,
}

/// Largest topology file read.
pub const TOPOLOGY_LIMIT: u64 = 1 << 20;
/// Largest `postgresql.conf` / `pg_hba.conf` read by `validate --conf`.
pub const CONF_LIMIT: u64 = 16 << 20;
/// Largest secrets file read.
pub const SECRETS_LIMIT: u64 = 64 << 10;

/// Refuses a path that is a symbolic link, or that exists and is not a
/// regular file.
pub fn check_target(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_symlink() => bail!(
            "{} is a symbolic link: refusing to write through it (remove it, or choose another path)",
            path.display()
        ),
        Ok(md) if !md.is_file() => bail!(
            "{} exists and is not a regular file: refusing to replace it",
            path.display()
        ),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("inspecting {}", path.display())),
    }
}

/// Refuses a folder that is a symbolic link or not a folder.
fn check_dir(dir: &Path) -> Result<()> {
    let md = fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if md.file_type().is_symlink() {
        bail!(
            "{} is a symbolic link: refusing to write into it (name the real folder)",
            dir.display()
        );
    }
    if !md.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    Ok(())
}

/// Creates a folder (and its parents) that only its owner may enter (0700
/// from its creation on Unix); an existing one must be a real folder.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if fs::symlink_metadata(dir).is_ok() {
        return check_dir(dir);
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    check_dir(dir)
}

/// Creates a folder and its parents; an existing one must be a real folder.
pub fn create_dir(dir: &Path) -> Result<()> {
    if fs::symlink_metadata(dir).is_err() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    check_dir(dir)
}

/// Writes `contents` to `path` atomically (see the module documentation);
/// the folder is created when missing. Returns whether the file changed:
/// an identical file is left as it is (its mode is still corrected when it
/// is private and readable by others).
pub fn write(path: &Path, contents: &[u8], access: Access) -> Result<bool> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::env::current_dir().context("finding the current folder")?,
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    match access {
        Access::Private => create_private_dir(&dir)?,
        Access::Public => create_dir(&dir)?,
    }
    check_target(path)?;
    if fs::symlink_metadata(path).is_ok() && same_contents(path, contents)? {
        if access == Access::Private {
            tighten(path)?;
        }
        return Ok(false);
    }
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match access {
            Access::Private => 0o600,
            Access::Public => 0o644,
        };
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    let mut tmp = builder
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    #[cfg(windows)]
    if access == Access::Private {
        crate::owner_only::restrict(tmp.path())?;
    }
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", tmp.path().display()))?;
    // The target may have been replaced by a link since the check above:
    // rename replaces the link itself, never what it points at.
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    sync_dir(&dir);
    Ok(true)
}

/// A file written over a long run and put in place at once at the end: a
/// temporary file beside the target (created exclusively, mode set before
/// the first byte), renamed over the target by [`Staged::commit`]. Dropped
/// without a commit, the temporary file is removed.
pub struct Staged {
    tmp: std::io::BufWriter<tempfile::NamedTempFile>,
    path: std::path::PathBuf,
}

impl Staged {
    pub fn create(path: &Path, access: Access) -> Result<Staged> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::env::current_dir().context("finding the current folder")?,
        };
        check_target(path)?;
        let name = path
            .file_name()
            .with_context(|| format!("{} has no file name", path.display()))?
            .to_string_lossy()
            .into_owned();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = match access {
                Access::Private => 0o600,
                Access::Public => 0o644,
            };
            builder.permissions(fs::Permissions::from_mode(mode));
        }
        let tmp = builder
            .tempfile_in(&dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        #[cfg(windows)]
        if access == Access::Private {
            crate::owner_only::restrict(tmp.path())?;
        }
        Ok(Staged {
            tmp: std::io::BufWriter::new(tmp),
            path: path.to_path_buf(),
        })
    }

    /// Where to write.
    pub fn file(&mut self) -> &mut impl Write {
        &mut self.tmp
    }

    /// Flushes, syncs and renames the file over its target.
    pub fn commit(self) -> Result<std::path::PathBuf> {
        let path = self.path;
        let tmp = self
            .tmp
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        tmp.as_file()
            .sync_all()
            .with_context(|| format!("writing {}", tmp.path().display()))?;
        check_target(&path)?;
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("replacing {}", path.display()))?;
        if let Some(dir) = path.parent() {
            sync_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            });
        }
        Ok(path)
    }
}

/// Fails now, not after a long run, when `path` cannot be written: its
/// folder must exist and take a new file, and the path must not be a link,
/// a folder or a device.
pub fn check_writable(path: &Path, what: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::env::current_dir().context("finding the current folder")?,
    };
    let ctx = || format!("{what} {}", path.display());
    check_dir(&dir).with_context(ctx)?;
    check_target(path).with_context(ctx)?;
    tempfile::Builder::new()
        .prefix(".pgrepl-probe.")
        .tempfile_in(&dir)
        .with_context(|| format!("{}: its folder takes no new file", ctx()))?;
    Ok(())
}

fn same_contents(path: &Path, contents: &[u8]) -> Result<bool> {
    let md = fs::metadata(path)?;
    if md.len() != contents.len() as u64 {
        return Ok(false);
    }
    Ok(read_limited(path, contents.len() as u64)? == contents)
}

/// Makes an existing private file owner-only again (a file someone made
/// readable by others keeps no secret).
pub fn tighten(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let md = fs::symlink_metadata(path)?;
        if md.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                .with_context(|| format!("making {} owner-only", path.display()))?;
            warn!(
                "warning: {} was readable by other users; it is owner-only again",
                path.display()
            );
        }
    }
    #[cfg(windows)]
    crate::owner_only::restrict(path)?;
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) {
    // Makes the rename durable; a folder that cannot be opened is no error.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) {}

/// Reads a user-named input: a regular file (a link to one is fine), at
/// most `limit` bytes. A FIFO, a device or a folder is refused without
/// being opened for a blocking read.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let md = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !md.is_file() {
        bail!(
            "{} is not a regular file (a folder, FIFO or device): name a file",
            path.display()
        );
    }
    if md.len() > limit {
        bail!(
            "{} is {} bytes; the limit is {limit} bytes",
            path.display(),
            md.len()
        );
    }
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Swapped for a FIFO since the check: the open does not wait for a
        // writer, and the check below refuses it.
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let f = opts
        .open(path)
        .with_context(|| format!("reading {}", path.display()))?;
    if !f.metadata()?.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let mut out = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("reading {}", path.display()))?;
    if out.len() as u64 > limit {
        bail!("{} is larger than {limit} bytes", path.display());
    }
    Ok(out)
}

/// Reads a file the tool wrote itself (secrets, labels): `None` when it does
/// not exist; a link in its place is refused.
pub fn read_own(path: &Path, limit: u64) -> Result<Option<String>> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        Ok(md) if md.file_type().is_symlink() => bail!(
            "{} is a symbolic link, not the file the tool wrote: remove it and re-run",
            path.display()
        ),
        Ok(_) => {}
    }
    let bytes = read_limited(path, limit)?;
    String::from_utf8(bytes)
        .map(Some)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pgrepl-fsx-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_atomically_and_reports_change() {
        let d = scratch("write");
        let f = d.join("a.conf");
        assert!(write(&f, b"one", Access::Public).unwrap());
        assert!(!write(&f, b"one", Access::Public).unwrap());
        assert!(write(&f, b"two", Access::Public).unwrap());
        assert_eq!(fs::read(&f).unwrap(), b"two");
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("a.conf")]);
        fs::remove_dir_all(d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_owner_only_from_the_first_byte() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("private");
        let f = d.join("secrets.env");
        write(&f, b"PW=x\n", Access::Private).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Someone made it world-readable: the same contents written again
        // make it owner-only again; new contents arrive owner-only too.
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        write(&f, b"PW=x\n", Access::Private).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        write(&f, b"PW=y\n", Access::Private).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn planted_links_change_nothing_outside_and_leak_nothing() {
        let d = scratch("links");
        let outside = scratch("links-outside");
        let victim = outside.join("victim");
        fs::write(&victim, "untouched").unwrap();
        let target = d.join("secrets.env");
        // Links at every name an earlier version used for its temporary
        // file, and at likely guesses: none is followed.
        for planted in [
            ".secrets.env.tmp",
            "secrets.tmp",
            "secrets.env.tmp",
            ".secrets.env.tmp.tmp",
        ] {
            std::os::unix::fs::symlink(&victim, d.join(planted)).unwrap();
        }
        write(&target, b"PW=secret\n", Access::Private).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(&target).unwrap(), "PW=secret\n");
        // A link at the target itself is refused, and nothing is written.
        let linked = d.join("patroni.yml");
        std::os::unix::fs::symlink(&victim, &linked).unwrap();
        let err = write(&linked, b"x", Access::Public).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        // A folder that is a link is refused.
        let linked_dir = d.join("node");
        std::os::unix::fs::symlink(&outside, &linked_dir).unwrap();
        let err = write(&linked_dir.join("victim"), b"x", Access::Public).unwrap_err();
        assert!(format!("{err:#}").contains("symbolic link"), "{err:#}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        // A link is refused as a secrets file to read.
        assert!(read_own(&linked, 100).is_err());
        fs::remove_dir_all(d).unwrap();
        fs::remove_dir_all(outside).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let d = scratch("fifo");
        let fifo = d.join("topology.toml");
        let made = duct::cmd!("mkfifo", &fifo).unchecked().run();
        if made.is_ok_and(|o| o.status.success()) {
            let err = read_limited(&fifo, 100).unwrap_err();
            assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        }
        let err = read_limited(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        let big = d.join("big.toml");
        fs::write(&big, vec![b'#'; 200]).unwrap();
        let err = read_limited(&big, 100).unwrap_err();
        assert!(format!("{err:#}").contains("limit"), "{err:#}");
        assert_eq!(read_limited(&big, 200).unwrap().len(), 200);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn check_writable_refuses_missing_folders_and_folders() {
        let d = scratch("writable");
        assert!(check_writable(&d.join("report.json"), "--report").is_ok());
        let err = check_writable(&d.join("missing/report.json"), "--report").unwrap_err();
        assert!(format!("{err:#}").contains("--report"), "{err:#}");
        assert!(check_writable(&d, "--report").is_err());
        fs::remove_dir_all(d).unwrap();
    }
}
