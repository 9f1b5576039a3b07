//! Replacing a PostgreSQL data folder with a verified copy, safely: the
//! runbook's `rmdir /s` + `xcopy /E /I /Y`, in Rust, on the host.
//!
//! The old folder is removed only after the new one is complete. Every step
//! leaves a state a re-run recognises and finishes:
//!
//! | on disk                                   | a re-run does                    |
//! |-------------------------------------------|----------------------------------|
//! | `D.pgrepl-new` without its marker         | deletes that partial copy, copies again |
//! | `D.pgrepl-new` complete, `D` present      | renames `D` aside, then swaps    |
//! | `D.pgrepl-new` complete, `D` absent       | renames it to `D`                |
//! | `D.pgrepl-old` beside a complete `D`      | deletes the old copy             |
//!
//! Renames are between siblings, so on one file system each is atomic.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;
use walkdir::WalkDir;

const NEW_SUFFIX: &str = ".pgrepl-new";
const OLD_SUFFIX: &str = ".pgrepl-old";
/// Written into the new copy once every file is in place and synced.
pub const COMPLETE_MARKER: &str = ".pgrepl-copy-complete";

/// Where a test asks the move to stop, as if killed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    MidCopy,
    AfterCopy,
    AfterSetAside,
    AfterSwap,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub files: u64,
    pub bytes: u64,
    pub seconds: f64,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Paths of the staging copy and the set-aside old folder for `dest`.
pub fn staging_paths(dest: &Path) -> (PathBuf, PathBuf) {
    (sibling(dest, NEW_SUFFIX), sibling(dest, OLD_SUFFIX))
}

/// Replaces the contents of `dest` with those of `src` (left untouched).
/// `progress` is told (files, bytes) done so far, against the totals.
pub fn replace_dir(
    src: &Path,
    dest: &Path,
    crash: Option<Crash>,
    progress: &mut dyn FnMut(u64, u64, u64, u64),
) -> Result<Stats> {
    replace(src, dest, crash, progress, true)
}

fn replace(
    src: &Path,
    dest: &Path,
    crash: Option<Crash>,
    progress: &mut dyn FnMut(u64, u64, u64, u64),
    remove_old: bool,
) -> Result<Stats> {
    let started = Instant::now();
    let (new, old) = staging_paths(dest);
    let mut stats = Stats::default();

    // A complete copy is staged, or already swapped into place (a run killed
    // after the swap): nothing to copy again.
    if !new.join(COMPLETE_MARKER).exists() && !dest.join(COMPLETE_MARKER).exists() {
        if new.exists() {
            // An interrupted copy: never a working data folder.
            remove_all(&new)
                .with_context(|| format!("removing the partial copy {}", new.display()))?;
        }
        if !src.is_dir() {
            bail!("the copy source {} does not exist", src.display());
        }
        stats = copy_tree(src, &new, crash, progress)?;
        let (want_files, want_bytes) = totals(src)?;
        let (got_files, got_bytes) = totals(&new)?;
        if (want_files, want_bytes) != (got_files, got_bytes) {
            bail!(
                "copy of {} is incomplete ({got_files}/{want_files} files, {got_bytes}/{want_bytes} bytes); {} is untouched",
                src.display(),
                dest.display()
            );
        }
        write_synced(&new.join(COMPLETE_MARKER), b"complete\n")?;
        sync_dir(&new);
        if crash == Some(Crash::AfterCopy) {
            bail!("simulated crash after copy");
        }
    }
    if dest.exists() && new.exists() {
        // On Windows a file another process holds open (PostgreSQL still
        // running, an editor, an antivirus) makes the rename below or the
        // removal after the swap fail half-way: find it first and stop
        // while the old folder is untouched.
        ensure_not_held(dest)?;
        if old.exists() {
            remove_all(&old)?;
        }
        fs::rename(dest, &old).with_context(|| format!("setting {} aside", dest.display()))?;
        sync_parent(dest);
        if crash == Some(Crash::AfterSetAside) {
            bail!("simulated crash after setting the old folder aside");
        }
    }
    if new.exists() {
        fs::rename(&new, dest).with_context(|| format!("moving {} into place", new.display()))?;
        sync_parent(dest);
        if crash == Some(Crash::AfterSwap) {
            bail!("simulated crash after the swap");
        }
    }
    if !dest.join(COMPLETE_MARKER).exists() && !dest.exists() {
        bail!(
            "{} is missing and no complete copy is staged",
            dest.display()
        );
    }
    if old.exists() && remove_old {
        remove_all(&old).with_context(|| format!("removing the old data {}", old.display()))?;
    }
    let marker = dest.join(COMPLETE_MARKER);
    if marker.exists() {
        fs::remove_file(&marker)?;
    }
    stats.seconds = started.elapsed().as_secs_f64();
    Ok(stats)
}

/// Like [`replace_dir`], for a source that need not be kept (a verified
/// backup made for this very folder): when it is on the same file system
/// as `dest`, it is marked complete and renamed into the staging place, so
/// nothing is copied; the swap then goes exactly as in [`replace_dir`],
/// and a re-run after a crash finishes it the same way. On another file
/// system it is copied.
///
/// The old folder is left set aside (`staging_paths(dest).1`, removed by
/// the caller or by the next move, as the state table says) so that the
/// caller can bring the new data into service first.
pub fn replace_dir_consuming(
    src: &Path,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64, u64, u64),
) -> Result<Stats> {
    let started = Instant::now();
    let (new, _) = staging_paths(dest);
    if src.is_dir() && !new.exists() && same_file_system(src, dest) {
        let (files, bytes) = totals(src)?;
        write_synced(&src.join(COMPLETE_MARKER), b"complete\n")?;
        sync_dir(src);
        if fs::rename(src, &new).is_ok() {
            sync_parent(src);
            sync_parent(&new);
            let mut stats = replace(src, dest, None, progress, false)?;
            progress(files, files, bytes, bytes);
            stats.files = files;
            stats.bytes = bytes;
            stats.seconds = started.elapsed().as_secs_f64();
            return Ok(stats);
        }
        // Not renamed after all (another device under a bind mount, a
        // Windows share): the marker goes, and the copy below starts clean.
        fs::remove_file(src.join(COMPLETE_MARKER))?;
    }
    replace(src, dest, None, progress, false)
}

/// Whether two paths (the second's parent when it does not exist yet) are
/// on one file system. Unknown (not Unix) counts as no; the rename is then
/// simply tried.
fn same_file_system(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let b = if b.exists() {
            b.to_path_buf()
        } else {
            b.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        match (fs::metadata(a), fs::metadata(&b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// Fails, naming the file, when another process holds a file under `dir`
/// open without sharing deletion (Windows). Elsewhere open files never
/// block a rename or a removal.
pub fn ensure_not_held(dir: &Path) -> Result<()> {
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const DELETE: u32 = 0x0001_0000;
        const SHARE_ALL: u32 = 0x1 | 0x2 | 0x4;
        const ERROR_SHARING_VIOLATION: i32 = 32;
        for entry in WalkDir::new(dir).follow_links(false) {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            if !entry.file_type().is_file() {
                continue;
            }
            let opened = fs::OpenOptions::new()
                .access_mode(DELETE)
                .share_mode(SHARE_ALL)
                .open(entry.path());
            if let Err(e) = opened {
                if e.raw_os_error() == Some(ERROR_SHARING_VIOLATION) {
                    bail!(
                        "{} is held open by another process (is PostgreSQL still running, or an editor or antivirus reading it?); \
                         nothing was changed in {}: close it and re-run",
                        entry.path().display(),
                        dir.display()
                    );
                }
            }
        }
    }
    #[cfg(not(windows))]
    let _ = dir;
    Ok(())
}

/// Files and bytes under `dir` (the completion marker not counted).
pub fn totals(dir: &Path) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in WalkDir::new(dir).follow_links(false) {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.file_type().is_file() && entry.file_name() != COMPLETE_MARKER {
            files += 1;
            bytes += entry.metadata()?.len();
        }
    }
    Ok((files, bytes))
}

/// Copies the tree: folders first (in walk order), then the files by
/// several threads at once, then every file and folder made durable in one
/// batch, so the disk sees the writes together instead of one fsync after
/// another. A file gets its source's permissions only once it is synced (a
/// read-only file cannot be opened to sync on Windows).
fn copy_tree(
    src: &Path,
    dst: &Path,
    crash: Option<Crash>,
    progress: &mut dyn FnMut(u64, u64, u64, u64),
) -> Result<Stats> {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    let (total_files, total_bytes) = totals(src)?;
    fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    let mut dirs = vec![(src.to_path_buf(), dst.to_path_buf())];
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in WalkDir::new(src).min_depth(1).follow_links(false) {
        let entry = entry.with_context(|| format!("reading {}", src.display()))?;
        let rel = entry.path().strip_prefix(src)?;
        let target = dst.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            dirs.push((entry.path().to_path_buf(), target));
        } else if ft.is_symlink() {
            copy_symlink(entry.path(), &target)?;
        } else {
            files.push((entry.path().to_path_buf(), target));
        }
    }
    let next = AtomicUsize::new(0);
    let done_files = AtomicU64::new(0);
    let done_bytes = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    // Each phase hands out files by index; the first error stops the others.
    let phase = |work: &(dyn Fn(&Path, &Path) -> Result<u64> + Sync),
                 progress: &mut dyn FnMut(u64, u64, u64, u64),
                 count: bool|
     -> Result<()> {
        next.store(0, Ordering::SeqCst);
        let errors = std::sync::Mutex::new(Vec::<anyhow::Error>::new());
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| loop {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some((from, to)) = files.get(i) else {
                            return;
                        };
                        match work(from, to) {
                            Ok(n) => {
                                if count {
                                    done_bytes.fetch_add(n, Ordering::SeqCst);
                                    done_files.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            Err(e) => {
                                stop.store(true, Ordering::SeqCst);
                                errors.lock().unwrap_or_else(|e| e.into_inner()).push(e);
                                return;
                            }
                        }
                    })
                })
                .collect();
            while !handles.iter().all(|h| h.is_finished()) {
                if count {
                    let f = done_files.load(Ordering::SeqCst);
                    progress(
                        f,
                        total_files,
                        done_bytes.load(Ordering::SeqCst),
                        total_bytes,
                    );
                    if crash == Some(Crash::MidCopy) && f * 2 >= total_files {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let mut errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = errors.pop() {
            return Err(e);
        }
        Ok(())
    };
    phase(
        &|from, to| {
            copy_file(from, to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))
        },
        progress,
        true,
    )?;
    if crash == Some(Crash::MidCopy) {
        bail!("simulated crash in the middle of the copy");
    }
    progress(
        done_files.load(Ordering::SeqCst),
        total_files,
        done_bytes.load(Ordering::SeqCst),
        total_bytes,
    );
    // Durable in one batch, then the source's permissions.
    phase(
        &|from, to| {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(to)
                .with_context(|| format!("opening {} to sync it", to.display()))?;
            f.sync_all()
                .with_context(|| format!("syncing {}", to.display()))?;
            drop(f);
            copy_permissions(from, to)?;
            Ok(0)
        },
        &mut |_, _, _, _| {},
        false,
    )?;
    for (from, to) in dirs.iter().rev() {
        sync_dir(to);
        copy_permissions(from, to)?;
    }
    Ok(Stats {
        files: done_files.load(Ordering::SeqCst),
        bytes: done_bytes.load(Ordering::SeqCst),
        seconds: 0.0,
    })
}

/// Copies one file's bytes (`copy_file_range` on Linux); its permissions
/// come after the batch sync.
fn copy_file(from: &Path, to: &Path) -> Result<u64> {
    let mut r = fs::File::open(from)?;
    let mut w = fs::File::create(to)?;
    Ok(std::io::copy(&mut r, &mut w)?)
}

/// Gives `to` the permissions and (on Unix) the owner of `from`: the server
/// in the container must own its files, whoever runs the move.
fn copy_permissions(from: &Path, to: &Path) -> Result<()> {
    let md = fs::metadata(from)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let target = fs::metadata(to)?;
        if (target.uid(), target.gid()) != (md.uid(), md.gid()) {
            std::os::unix::fs::chown(to, Some(md.uid()), Some(md.gid()))
                .with_context(|| format!("giving {} to uid {}", to.display(), md.uid()))?;
        }
    }
    fs::set_permissions(to, md.permissions())
        .with_context(|| format!("setting permissions of {}", to.display()))
}

#[cfg(unix)]
fn copy_symlink(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let target = fs::read_link(from)?;
    std::os::unix::fs::symlink(target, to).with_context(|| format!("linking {}", to.display()))?;
    let md = fs::symlink_metadata(from)?;
    let _ = std::os::unix::fs::lchown(to, Some(md.uid()), Some(md.gid()));
    Ok(())
}

#[cfg(not(unix))]
fn copy_symlink(from: &Path, _to: &Path) -> Result<()> {
    bail!(
        "{} is a symbolic link; a data folder with links cannot be moved on this system",
        from.display()
    )
}

fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Directories can be fsynced on Unix; elsewhere this is a no-op.
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn sync_parent(p: &Path) {
    if let Some(parent) = p.parent() {
        sync_dir(parent);
    }
}

/// A tree shaped like a data folder, `mib` MiB in all: 8 MiB relation
/// segments and 16 MiB WAL files, plus 1000 small catalog files. What the
/// benches move.
pub fn sample_tree(root: &Path, mib: u64) -> Result<()> {
    use std::io::Write;
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0u64;
    let mut i = 0;
    while written < mib {
        let (dir, size) = if i % 4 == 3 {
            ("pg_wal", 16)
        } else {
            ("base/16384", 8)
        };
        let p = root.join(dir).join(format!("{}", 16384 + i));
        fs::create_dir_all(root.join(dir))?;
        let mut f = fs::File::create(&p).with_context(|| format!("writing {}", p.display()))?;
        for _ in 0..size.min(mib - written) {
            f.write_all(&chunk)?;
        }
        written += size;
        i += 1;
    }
    fs::create_dir_all(root.join("base/1"))?;
    for j in 0..1000 {
        fs::write(
            root.join("base/1").join(format!("{}", 1000 + j)),
            vec![1u8; 8192],
        )?;
    }
    Ok(())
}

/// Removes a tree, first clearing read-only attributes (Windows refuses to
/// delete read-only files; PostgreSQL and backup tools create some).
pub fn remove_all(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for entry in WalkDir::new(dir).follow_links(false).into_iter().flatten() {
        if entry.file_type().is_symlink() {
            continue;
        }
        if let Ok(md) = entry.metadata() {
            let mut perms = md.permissions();
            if perms.readonly() {
                #[allow(clippy::permissions_set_readonly_false)]
                perms.set_readonly(false);
                let _ = fs::set_permissions(entry.path(), perms);
            }
        }
    }
    fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-move-{name}-{}", std::process::id()));
        let _ = remove_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A small data-folder-like tree with some read-only files.
    fn make_tree(root: &Path, tag: &str) {
        for (rel, body) in [
            ("PG_VERSION", "15\n".to_string()),
            ("base/1/1259", format!("{tag}-catalog").repeat(100)),
            ("base/1/2619", format!("{tag}-stats")),
            (
                "pg_wal/000000010000000000000003",
                format!("{tag}-wal").repeat(1000),
            ),
            ("global/pg_control", format!("{tag}-control")),
            ("postgresql.auto.conf", format!("# {tag}\n")),
        ] {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, body).unwrap();
        }
        let ro = root.join("global/pg_control");
        let mut perms = fs::metadata(&ro).unwrap().permissions();
        perms.set_readonly(true);
        fs::set_permissions(&ro, perms).unwrap();
    }

    fn read(root: &Path, rel: &str) -> String {
        fs::read_to_string(root.join(rel)).unwrap()
    }

    fn nothing(_: u64, _: u64, _: u64, _: u64) {}

    #[test]
    fn replaces_contents_and_removes_old_read_only_files() {
        let d = scratch("plain");
        let (src, dest) = (d.join("backup"), d.join("data"));
        make_tree(&src, "new");
        make_tree(&dest, "old");
        fs::write(dest.join("only-in-old"), "x").unwrap();
        let mut last = (0, 0, 0, 0);
        let stats = replace_dir(&src, &dest, None, &mut |f, tf, b, tb| {
            assert!(f <= tf && b <= tb);
            assert!(f >= last.0 && b >= last.2, "progress went backwards");
            last = (f, tf, b, tb);
        })
        .unwrap();
        assert_eq!(stats.files, 6);
        // The last report is the whole copy.
        assert_eq!((last.0, last.2), (last.1, last.3));
        assert_eq!(last.0, 6);
        assert_eq!(read(&dest, "base/1/2619"), "new-stats");
        assert!(!dest.join("only-in-old").exists());
        assert!(!dest.join(COMPLETE_MARKER).exists());
        let (new, old) = staging_paths(&dest);
        assert!(!new.exists() && !old.exists());
        // The source is left as it was.
        assert_eq!(totals(&src).unwrap(), totals(&dest).unwrap());
        remove_all(&d).unwrap();
    }

    #[test]
    fn a_crash_at_any_step_is_finished_by_a_rerun() {
        for crash in [
            Crash::MidCopy,
            Crash::AfterCopy,
            Crash::AfterSetAside,
            Crash::AfterSwap,
        ] {
            let d = scratch(&format!("{crash:?}"));
            let (src, dest) = (d.join("backup"), d.join("data"));
            make_tree(&src, "new");
            make_tree(&dest, "old");
            let err = replace_dir(&src, &dest, Some(crash), &mut nothing).unwrap_err();
            assert!(err.to_string().contains("simulated"), "{crash:?}: {err}");
            // Until the swap, the old data is intact where it was.
            match crash {
                Crash::MidCopy | Crash::AfterCopy => {
                    assert_eq!(read(&dest, "base/1/2619"), "old-stats")
                }
                Crash::AfterSetAside => {
                    assert!(!dest.exists());
                    assert_eq!(read(&staging_paths(&dest).1, "base/1/2619"), "old-stats");
                }
                Crash::AfterSwap => assert_eq!(read(&dest, "base/1/2619"), "new-stats"),
            }
            replace_dir(&src, &dest, None, &mut nothing).unwrap();
            assert_eq!(read(&dest, "base/1/2619"), "new-stats", "{crash:?}");
            assert_eq!(totals(&src).unwrap(), totals(&dest).unwrap(), "{crash:?}");
            let (new, old) = staging_paths(&dest);
            assert!(!new.exists() && !old.exists(), "{crash:?}");
            remove_all(&d).unwrap();
        }
    }

    #[test]
    fn a_consumed_source_is_renamed_into_place_and_a_rerun_finishes() {
        let d = scratch("consume");
        let (src, dest) = (d.join("backup"), d.join("data"));
        make_tree(&src, "new");
        make_tree(&dest, "old");
        let (files, bytes) = totals(&src).unwrap();
        let stats = replace_dir_consuming(&src, &dest, &mut nothing).unwrap();
        assert_eq!((stats.files, stats.bytes), (files, bytes));
        assert_eq!(read(&dest, "base/1/2619"), "new-stats");
        assert!(!src.exists(), "the source was renamed, not copied");
        assert!(!dest.join(COMPLETE_MARKER).exists());
        // Killed after the rename into the staging place: a re-run with
        // the source gone finishes the swap.
        make_tree(&src, "newer");
        let (new, old) = staging_paths(&dest);
        write_synced(&src.join(COMPLETE_MARKER), b"complete\n").unwrap();
        fs::rename(&src, &new).unwrap();
        replace_dir_consuming(&src, &dest, &mut nothing).unwrap();
        assert_eq!(read(&dest, "base/1/2619"), "newer-stats");
        // The old data stays set aside for the caller to remove.
        assert!(!new.exists() && old.join("PG_VERSION").exists());
        remove_all(&d).unwrap();
    }

    #[test]
    fn missing_source_changes_nothing() {
        let d = scratch("nosrc");
        let dest = d.join("data");
        make_tree(&dest, "old");
        let err = replace_dir(&d.join("absent"), &dest, None, &mut nothing).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert_eq!(read(&dest, "base/1/2619"), "old-stats");
        remove_all(&d).unwrap();
    }

    #[test]
    #[allow(clippy::disallowed_macros)] // the harness's stream stays open
    fn remove_all_removes_read_only_files() {
        // Under Wine 8, std's remove_dir_all fails on this tree (read-only
        // files: "Access denied"); remove_all clears the attribute first.
        let d = scratch("ro");
        make_tree(&d.join("t"), "x");
        let plain = fs::remove_dir_all(d.join("t"));
        println!("std::fs::remove_dir_all on read-only files: {plain:?}");
        if plain.is_err() {
            assert!(d.join("t/global/pg_control").exists());
        }
        remove_all(&d).unwrap();
        assert!(!d.exists());
    }
}
