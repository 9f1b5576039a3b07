//! The data move on data folders as PostgreSQL and Windows make them: a
//! real folder made by `initdb` (given by the test lane in
//! `PGREPL_TEST_PGDATA`), with read-only files, a path longer than 260
//! characters, a file another process holds open, and a kill at each step.
//! These run on Linux and, in the Windows lane, under Wine.
// Tests and benches print to the test harness, whose streams stay open.
#![allow(clippy::disallowed_macros)]

use data_move::{remove_all, replace_dir, staging_paths, totals, Crash};
use std::fs;
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pgrepl-folders-{name}-{}", std::process::id()));
    let _ = remove_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn nothing(_: u64, _: u64, _: u64, _: u64) {}

fn copy_dir(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every file's relative path and contents, for comparing two trees.
fn contents(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap();
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            (name, fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn make_read_only(p: &Path) {
    let mut perms = fs::metadata(p).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(p, perms).unwrap();
}

/// The initdb folder the lane made, or None outside CI (a loud failure
/// under CI=true).
fn pgdata_template() -> Option<PathBuf> {
    match std::env::var_os("PGREPL_TEST_PGDATA") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.join("PG_VERSION").exists(),
                "PGREPL_TEST_PGDATA={} holds no data folder",
                p.display()
            );
            Some(p)
        }
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but PGREPL_TEST_PGDATA is not set: .ci/windows-lane makes it with initdb"
            )
        }
        None => {
            eprintln!("SKIPPED a real initdb folder: PGREPL_TEST_PGDATA is not set (see .ci/windows-lane)");
            None
        }
    }
}

#[test]
fn a_real_initdb_folder_survives_a_kill_at_every_step() {
    let Some(template) = pgdata_template() else {
        return;
    };
    for crash in [
        Crash::MidCopy,
        Crash::AfterCopy,
        Crash::AfterSetAside,
        Crash::AfterSwap,
    ] {
        let d = scratch(&format!("initdb-{crash:?}"));
        let (src, dest) = (d.join("backup"), d.join("data"));
        copy_dir(&template, &src);
        copy_dir(&template, &dest);
        // The old folder differs, and has read-only files as a Windows copy
        // (xcopy of a folder from a read-only share) leaves them.
        fs::write(dest.join("postgresql.auto.conf"), "# old\n").unwrap();
        make_read_only(&dest.join("PG_VERSION"));
        make_read_only(&dest.join("global").join("pg_control"));
        let want = contents(&src);
        let old = contents(&dest);
        assert!(
            want.len() > 900,
            "initdb makes about 1000 files, got {}",
            want.len()
        );
        let err = replace_dir(&src, &dest, Some(crash), &mut nothing).unwrap_err();
        assert!(err.to_string().contains("simulated"), "{crash:?}: {err}");
        match crash {
            Crash::MidCopy | Crash::AfterCopy => assert_eq!(contents(&dest), old, "{crash:?}"),
            Crash::AfterSetAside => {
                assert!(!dest.exists());
                assert_eq!(contents(&staging_paths(&dest).1), old);
            }
            Crash::AfterSwap => {}
        }
        let stats = replace_dir(&src, &dest, None, &mut nothing).unwrap();
        assert_eq!(contents(&dest), want, "{crash:?}");
        assert_eq!(totals(&dest).unwrap(), totals(&src).unwrap());
        let (new, set_aside) = staging_paths(&dest);
        assert!(!new.exists() && !set_aside.exists(), "{crash:?}");
        println!(
            "{crash:?}: {} files, {} bytes moved after the re-run",
            stats.files, stats.bytes
        );
        remove_all(&d).unwrap();
    }
}

#[test]
fn a_path_longer_than_260_characters_moves() {
    let d = scratch("long");
    let (src, dest) = (d.join("backup"), d.join("data"));
    let deep: PathBuf = (0..6).map(|i| format!("{i}{}", "d".repeat(50))).collect();
    for (root, tag) in [(&src, "new"), (&dest, "old")] {
        let dir = root.join(&deep);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("relation_file_with_a_long_name_0001"), tag).unwrap();
        fs::write(root.join("PG_VERSION"), "15\n").unwrap();
    }
    let longest = dest.join(&deep).join("relation_file_with_a_long_name_0001");
    let len = longest.as_os_str().len();
    assert!(len > 260, "the path is only {len} characters");
    replace_dir(&src, &dest, None, &mut nothing).unwrap();
    assert_eq!(fs::read_to_string(&longest).unwrap(), "new");
    println!("moved a file at a path of {len} characters");
    remove_all(&d).unwrap();
}

/// Run only as the helper of `a_file_held_open_fails_cleanly`: holds the
/// file named in PGREPL_HOLD open without sharing, until PGREPL_RELEASE
/// exists.
#[test]
#[ignore]
fn hold_file_open_helper() {
    let (Some(file), Some(release)) = (
        std::env::var_os("PGREPL_HOLD"),
        std::env::var_os("PGREPL_RELEASE"),
    ) else {
        return;
    };
    #[cfg(windows)]
    let f = {
        use std::os::windows::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .read(true)
            .share_mode(0)
            .open(&file)
            .unwrap()
    };
    #[cfg(not(windows))]
    let f = fs::File::open(&file).unwrap();
    fs::write(format!("{}.held", file.to_string_lossy()), "").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !Path::new(&release).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(f);
}

#[test]
fn a_file_held_open_fails_cleanly() {
    let d = scratch("held");
    let (src, dest) = (d.join("backup"), d.join("data"));
    for (root, tag) in [(&src, "new"), (&dest, "old")] {
        fs::create_dir_all(root.join("base/1")).unwrap();
        fs::write(root.join("base/1/1259"), tag).unwrap();
        fs::write(root.join("PG_VERSION"), "15\n").unwrap();
    }
    let held = dest.join("base/1/1259");
    let release = d.join("release");
    let helper = duct::cmd(
        std::env::current_exe().unwrap(),
        [
            "--exact",
            "hold_file_open_helper",
            "--ignored",
            "--nocapture",
        ],
    )
    .env("PGREPL_HOLD", &held)
    .env("PGREPL_RELEASE", &release)
    .stdout_null()
    .stderr_null()
    .start()
    .unwrap();
    let marker = PathBuf::from(format!("{}.held", held.display()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !marker.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the helper never held the file"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    fs::remove_file(&marker).unwrap();
    let result = replace_dir(&src, &dest, None, &mut nothing);
    if cfg!(windows) {
        let err = result.unwrap_err().to_string();
        assert!(err.contains("held open by another process"), "{err}");
        // The old folder is untouched and complete; the verified copy waits.
        assert!(dest.join("PG_VERSION").exists());
        assert!(staging_paths(&dest).0.exists());
        println!("refused while held: {err}");
    } else {
        // Open files never block a rename or a removal here.
        result.unwrap();
    }
    fs::write(&release, "").unwrap();
    helper.wait().unwrap();
    if cfg!(windows) {
        replace_dir(&src, &dest, None, &mut nothing).unwrap();
    }
    assert_eq!(fs::read_to_string(&held).unwrap(), "new");
    remove_all(&d).unwrap();
}
