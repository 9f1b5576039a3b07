//! What the tool writes cannot be redirected, and what it reads cannot
//! stall it, through the binary as a user (or someone sharing the folder)
//! would meet it: links planted where an export, a rendered Compose file or
//! a secrets file goes, a re-export over a deployed cluster's passwords, a
//! FIFO or a device named as a topology. No Docker needed.
#![cfg(unix)]
// Tests print to the test harness, whose streams stay open.
#![allow(clippy::disallowed_macros)]

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pgrepl-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Run {
    code: i32,
    out: String,
}

fn xtask(args: &[&str]) -> Run {
    let out = duct::cmd(env!("CARGO_BIN_EXE_xtask"), args)
        .env_remove("PGREPL_TOPOLOGY")
        .env_remove("PGREPL_IMAGE")
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("$ xtask {}\n{text}", args.join(" "));
    Run {
        code: out.status.code().unwrap_or(-1),
        out: text,
    }
}

const HOSTS: [&str; 6] = [
    "--host",
    "master-db=10.20.0.1",
    "--host",
    "slave1-db=10.20.0.2",
    "--host",
    "slave2-db=10.20.0.3",
];

fn export(out: &Path, extra: &[&str]) -> Run {
    let o = out.to_string_lossy().into_owned();
    let mut args = vec!["export", "--engine", "patroni", "--out", &o];
    args.extend(HOSTS);
    args.extend(extra);
    xtask(&args)
}

#[test]
fn planted_links_in_an_export_folder_change_nothing_outside_it() {
    let out = scratch("export");
    let outside = scratch("export-outside");
    let victim = outside.join("victim");
    std::fs::write(&victim, "untouched").unwrap();

    // A link at a file the export writes: refused, nothing written at all.
    symlink(&victim, out.join("secrets.env")).unwrap();
    let r = export(&out, &[]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(
        r.out.contains("symbolic link") || r.out.contains("already exists"),
        "{}",
        r.out
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(
        !out.join("master-db").exists(),
        "files were written before the refusal"
    );
    let r = export(&out, &["--force"]);
    assert_ne!(r.code, 0, "--force never writes through a link:\n{}", r.out);
    assert!(r.out.contains("symbolic link"), "{}", r.out);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    std::fs::remove_file(out.join("secrets.env")).unwrap();

    // A node folder that is a link to somewhere else: refused.
    symlink(&outside, out.join("master-db")).unwrap();
    let r = export(&out, &[]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("symbolic link"), "{}", r.out);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "something was written outside"
    );
    std::fs::remove_file(out.join("master-db")).unwrap();

    // Links at every temporary name an earlier version used, and at the
    // likely guesses: the export goes through and none is followed.
    std::fs::create_dir_all(out.join("master-db")).unwrap();
    for planted in [
        ".secrets.env.tmp",
        "secrets.tmp",
        "secrets.env.tmp",
        "master-db/.patroni.yml.tmp",
        "master-db/patroni.tmp",
        "master-db/.etcd.env.tmp",
    ] {
        symlink(&victim, out.join(planted)).unwrap();
    }
    let r = export(&out, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let secrets = out.join("secrets.env");
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secrets.env is {mode:o}");
    let text = std::fs::read_to_string(&secrets).unwrap();
    assert!(text.contains("PATRONI_SUPERUSER_PASSWORD="), "{text}");
    // No password in any other file.
    let pw = text
        .lines()
        .find_map(|l| l.strip_prefix("PATRONI_SUPERUSER_PASSWORD="))
        .unwrap();
    for f in [
        "master-db/patroni.yml",
        "master-db/etcd.env",
        "slave1-db/patroni.yml",
    ] {
        assert!(
            !std::fs::read_to_string(out.join(f)).unwrap().contains(pw),
            "{f} holds a password"
        );
    }

    // An earlier export's passwords are not replaced without --force.
    let r = export(&out, &[]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("--force"), "{}", r.out);
    assert_eq!(std::fs::read_to_string(&secrets).unwrap(), text);
    let r = export(&out, &["--force"]);
    assert_eq!(r.code, 0, "{}", r.out);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn planted_links_in_a_state_folder_change_nothing_outside_it() {
    // A topology that is not a preset renders its Compose file into its
    // own state folder.
    let name = format!("files{}", std::process::id());
    let dir = scratch("render");
    let topo = dir.join(format!("{name}.toml"));
    let text = std::fs::read_to_string(root().join("conf/semi-sync.toml"))
        .unwrap()
        .replacen("name = \"semi-sync\"", &format!("name = \"{name}\""), 1);
    std::fs::write(&topo, text).unwrap();
    let state = root().join("state").join(&name);
    std::fs::create_dir_all(&state).unwrap();
    let outside = scratch("render-outside");
    let victim = outside.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    for planted in [
        ".compose.yml.tmp",
        "compose.tmp",
        "compose.yml.tmp",
        ".secrets.env.tmp",
        "secrets.tmp",
    ] {
        symlink(&victim, state.join(planted)).unwrap();
    }
    let t = topo.to_string_lossy().into_owned();
    let r = xtask(&["render", "-t", &t]);
    assert_eq!(r.code, 0, "{}", r.out);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(std::fs::read_to_string(state.join("compose.yml"))
        .unwrap()
        .contains("services:"));
    // The target itself a link: refused, the link's target untouched.
    std::fs::remove_file(state.join("compose.yml")).unwrap();
    symlink(&victim, state.join("compose.yml")).unwrap();
    let r = xtask(&["render", "-t", &t]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.out.contains("symbolic link"), "{}", r.out);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn a_fifo_or_a_device_named_as_a_topology_is_refused_at_once() {
    let dir = scratch("fifo");
    let fifo = dir.join("topology.toml");
    duct::cmd!("mkfifo", &fifo).run().unwrap();
    for path in [fifo.to_string_lossy().into_owned(), "/dev/zero".into()] {
        for sub in [
            vec!["validate", "-t"],
            vec!["render", "-t"],
            vec!["validate", "--conf"],
        ] {
            let mut args = sub.clone();
            args.push(&path);
            // A read that waits on the FIFO would never end: the run is
            // killed at a deadline and the test fails saying so.
            let handle = duct::cmd(env!("CARGO_BIN_EXE_xtask"), &args)
                .stderr_to_stdout()
                .stdout_capture()
                .unchecked()
                .start()
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let out = loop {
                if let Some(out) = handle.try_wait().unwrap() {
                    break out.clone();
                }
                if std::time::Instant::now() > deadline {
                    handle.kill().unwrap();
                    panic!("xtask {} waited on {path}", args.join(" "));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(!out.status.success(), "{text}");
            assert!(text.contains("not a regular file"), "{text}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
