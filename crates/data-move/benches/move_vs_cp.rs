//! Throughput of the data move against `cp -a` of the same folder on the
//! same disk. Prints figures; asserts nothing about speed.
//!
//! `cargo bench -p data-move` (PGREPL_BENCH_MIB sets the size, default 1024);
//! `cargo xtask bench move` prints the same comparison as a table.
// Tests and benches print to the test harness, whose streams stay open.
#![allow(clippy::disallowed_macros)]

use std::path::Path;
use std::time::Instant;

fn main() {
    let mib: u64 = std::env::var("PGREPL_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-move");
    let _ = data_move::remove_all(&dir);
    let (src, dest, cp_dest) = (dir.join("backup"), dir.join("data"), dir.join("cp-copy"));
    data_move::sample_tree(&src, mib).unwrap();
    data_move::sample_tree(&dest, 16).unwrap();
    let (files, bytes) = data_move::totals(&src).unwrap();
    println!("tree: {files} files, {:.0} MiB", bytes as f64 / 1048576.0);

    let t = Instant::now();
    let status = duct::cmd!("cp", "-a", &src, &cp_dest).run();
    let cp = t.elapsed().as_secs_f64();
    if let Err(e) = status {
        println!("cp -a: unavailable ({e})");
    }
    let t = Instant::now();
    let _ = duct::cmd!("sync").run();
    let cp_sync = cp + t.elapsed().as_secs_f64();
    let t = Instant::now();
    data_move::replace_dir(&src, &dest, None, &mut |_, _, _, _| {}).unwrap();
    let ours = t.elapsed().as_secs_f64();
    let mb = bytes as f64 / 1048576.0;
    println!("cp -a:          {cp:7.2}s  {:7.0} MiB/s", mb / cp);
    println!("cp -a + sync:   {cp_sync:7.2}s  {:7.0} MiB/s", mb / cp_sync);
    println!(
        "data-move:      {ours:7.2}s  {:7.0} MiB/s  (syncs every file and folder, verifies totals)",
        mb / ours
    );
    println!(
        "ratio: data-move takes {:.2}x the time of cp -a, {:.2}x that of cp -a + sync",
        ours / cp,
        ours / cp_sync
    );
    data_move::remove_all(&dir).unwrap();
}
