//! The exported Patroni files, run as a user would on three separate hosts:
//! plain containers of the project's Patroni image (Debian forky's patroni
//! 4.1.5, PostgreSQL 18, etcd 3.5) that know nothing of Compose or of this
//! tool, each with its own address on a private network. The steps are
//! README's, read from the one list both use
//! (`cluster_config::patroni::host_steps`): files copied with their modes,
//! each service started as systemd would start it from the package's own
//! unit file, the database created on the leader. Then: every file passes
//! `patroni --validate-config` (a broken copy does not), one leader and two
//! streaming replicas in the configured synchronous mode, the leader's host
//! killed under a writer, exactly one writable node, no acknowledged commit
//! lost, and the old leader back as a replica.
#![allow(clippy::disallowed_macros)]

mod common;
use cluster_config::patroni::{host_steps, HostStep};
use common::chaos::{self, Load, Node};
use common::*;

const IMAGE_PATRONI: &str = "pgrepl/patroni:18";
const NODES: [&str; 3] = ["master-db", "slave1-db", "slave2-db"];

struct Host {
    node: String,
    container: String,
    ip: String,
    pg_port: u16,
    rest_port: u16,
}

fn docker(args: &[&str]) -> (bool, String) {
    let o = duct::cmd("docker", args)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[track_caller]
fn docker_ok(args: &[&str]) -> String {
    let (ok, out) = docker(args);
    assert!(ok, "docker {} failed:\n{out}", args.join(" "));
    out
}

/// Removes what the test made, by its label, whatever happened.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=io.pgrepl.cluster={}", self.0);
        let ids = docker(&["ps", "-aq", "--filter", &label]).1;
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", "-v", id]);
        }
        let nets = docker(&["network", "ls", "-q", "--filter", &label]).1;
        for id in nets.split_whitespace() {
            docker(&["network", "rm", id]);
        }
    }
}

/// A shell line that starts `unit` the way systemd would from the
/// package's unit file: its `Environment=` and `EnvironmentFile=` (a
/// leading `-`: optional), as its `User=`, its `ExecStart=` with `$VAR`
/// from that environment. Output goes to /var/log/<unit>.log.
fn start_unit_script(unit: &str) -> String {
    format!(
        r#"set -eu
f=/lib/systemd/system/{unit}.service
host=$(hostname)
set -a
grep '^Environment=' "$f" | sed 's/^Environment=//; s/%H/'"$host"'/g; s/%p/{unit}/g' > /tmp/{unit}.env0 || true
. /tmp/{unit}.env0
for e in $(grep '^EnvironmentFile=' "$f" | sed 's/^EnvironmentFile=//; s/%p/{unit}/g'); do
  case "$e" in -*) e=${{e#-}}; [ -f "$e" ] || continue;; esac
  . "$e"
done
set +a
user=$(grep '^User=' "$f" | sed 's/^User=//')
cmd=$(grep '^ExecStart=' "$f" | sed 's/^ExecStart=//')
exec runuser -u "$user" -- sh -c "exec $cmd" >> /var/log/{unit}.log 2>&1
"#
    )
}

/// The REST API's `GET /cluster` of one host, when it answers.
fn cluster_view(h: &Host) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let mut r = agent
        .get(&format!("http://127.0.0.1:{}/cluster", h.rest_port))
        .call()
        .ok()?;
    serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
}

fn members(hosts: &[Host]) -> Option<Vec<Value>> {
    hosts
        .iter()
        .find_map(cluster_view)
        .and_then(|v| v["members"].as_array().cloned())
}

fn leader(hosts: &[Host]) -> Option<String> {
    let m = members(hosts)?;
    let leaders: Vec<&Value> = m
        .iter()
        .filter(|x| x["role"] == "leader" && x["state"] == "running")
        .collect();
    (leaders.len() == 1).then(|| leaders[0]["name"].as_str().unwrap().to_string())
}

#[test]
fn exported_patroni_files_run_on_three_hosts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !docker_or_skip("exported_patroni_files_run_on_three_hosts") {
        return;
    }
    ok(&["image", "--patroni"]);
    let name = cl("hosts");
    let _cleanup = Cleanup(name.clone());
    // The topology: the preset on PostgreSQL 18 (the image's), with
    // Patroni's tightest timings so the crash is noticed within seconds.
    let topo = topology("semi-sync.toml", &name, 55800, false);
    let text = std::fs::read_to_string(&topo)
        .unwrap()
        .replace("postgres = 17\n", "postgres = 18\n");
    std::fs::write(&topo, &text).unwrap();
    let t = cluster_config::Loaded::parse("hosts.toml", &text)
        .unwrap()
        .topology;

    // A private network with an address of this run's own.
    let id = u32::from_str_radix(run_id(), 16).unwrap();
    let label = format!("io.pgrepl.cluster={name}");
    let net = format!("{name}-net");
    let mut prefix = None;
    for attempt in 0..8u32 {
        let p = format!(
            "10.{}.{}",
            160 + (id + attempt) % 60,
            (id / 60 + attempt * 7) % 250
        );
        if docker(&[
            "network",
            "create",
            "--label",
            &label,
            "--subnet",
            &format!("{p}.0/24"),
            &net,
        ])
        .0
        {
            prefix = Some(p);
            break;
        }
    }
    let prefix = prefix.expect("no free private subnet for the hosts");
    let hosts: Vec<Host> = NODES
        .iter()
        .enumerate()
        .map(|(i, n)| Host {
            node: n.to_string(),
            container: format!("{name}-{n}"),
            ip: format!("{prefix}.{}", 11 + i),
            pg_port: port(55800) + i as u16,
            rest_port: port(55800) + 10 + i as u16,
        })
        .collect();
    for h in &hosts {
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &h.container,
            "--hostname",
            &h.node,
            "--label",
            &label,
            "--network",
            &net,
            "--ip",
            &h.ip,
            "-p",
            &format!("127.0.0.1:{}:5432", h.pg_port),
            "-p",
            &format!("127.0.0.1:{}:8008", h.rest_port),
            // An init that reaps orphans, as every host has: Patroni waits
            // for a single-user postgres it daemonised, and a zombie under
            // a bare `sleep` would look alive to it forever.
            "--init",
            "--entrypoint",
            "sleep",
            IMAGE_PATRONI,
            "infinity",
        ]);
    }

    // The export, as README says.
    let out = scratch().join("hosts-export");
    let _ = std::fs::remove_dir_all(&out);
    let o = out.to_string_lossy().into_owned();
    let tp = topo.to_string_lossy().into_owned();
    let mut args = vec![
        "export",
        "--engine",
        "patroni",
        "--patroni-timings",
        "tightest",
        "--out",
        &o,
        "-t",
        &tp,
    ];
    let host_args: Vec<String> = hosts
        .iter()
        .map(|h| format!("{}={}", h.node, h.ip))
        .collect();
    for a in &host_args {
        args.extend(["--host", a.as_str()]);
    }
    ok(&args);
    let password = std::fs::read_to_string(out.join("secrets.env"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("PATRONI_SUPERUSER_PASSWORD="))
        .unwrap()
        .to_string();

    // README's steps, in order, on every host they name.
    let steps = host_steps(&t);
    let etcd_members: Vec<&str> = NODES.iter().take(3).copied().collect();
    let start = |h: &Host, unit: &str| {
        docker_ok(&[
            "exec",
            "-d",
            &h.container,
            "sh",
            "-c",
            &start_unit_script(unit),
        ]);
    };
    for step in &steps {
        match step {
            HostStep::Install(packages) => {
                for h in &hosts {
                    for p in packages {
                        docker_ok(&["exec", &h.container, "dpkg", "-s", p]);
                    }
                }
            }
            HostStep::Copy {
                from,
                to,
                mode,
                etcd_only,
            } => {
                for h in hosts
                    .iter()
                    .filter(|h| !etcd_only || etcd_members.contains(&h.node.as_str()))
                {
                    let src = out.join(from.replace("{node}", &h.node));
                    docker_ok(&[
                        "cp",
                        &src.to_string_lossy(),
                        &format!("{}:{to}", h.container),
                    ]);
                    docker_ok(&["exec", &h.container, "chown", "root:root", to]);
                    docker_ok(&["exec", &h.container, "chmod", &format!("{mode:o}"), to]);
                }
            }
            HostStep::Start { unit, etcd_only } => {
                let on: Vec<&Host> = hosts
                    .iter()
                    .filter(|h| !etcd_only || etcd_members.contains(&h.node.as_str()))
                    .collect();
                if unit == "patroni" {
                    // Every file passes Patroni's own check, with etcd up;
                    // a broken copy does not.
                    for h in &on {
                        let (good, said) = docker(&[
                            "exec",
                            &h.container,
                            "runuser",
                            "-u",
                            "postgres",
                            "--",
                            "patroni",
                            "--validate-config",
                            "/etc/patroni/config.yml",
                        ]);
                        assert!(
                            good && said.trim().is_empty(),
                            "{}: --validate-config said:\n{said}",
                            h.node
                        );
                    }
                    let h = on[0];
                    docker_ok(&["exec", &h.container, "sh", "-c",
                        "sed 's/ttl: 20/ttl: 5/' /etc/patroni/config.yml > /tmp/broken.yml && chmod 644 /tmp/broken.yml"]);
                    let (good, said) = docker(&[
                        "exec",
                        &h.container,
                        "runuser",
                        "-u",
                        "postgres",
                        "--",
                        "patroni",
                        "--validate-config",
                        "/tmp/broken.yml",
                    ]);
                    assert!(
                        !good && said.contains("ttl"),
                        "a broken file passed: {said}"
                    );
                }
                for h in &on {
                    start(h, unit);
                }
                if unit == "etcd" {
                    wait_for(
                        "etcd to answer on every member",
                        Duration::from_secs(60),
                        || {
                            on.iter().all(|h| {
                                docker(&[
                                    "exec",
                                    &h.container,
                                    "etcdctl",
                                    "--endpoints",
                                    "http://127.0.0.1:2379",
                                    "endpoint",
                                    "health",
                                ])
                                .0
                            })
                        },
                    );
                }
            }
            HostStep::OnLeader(sql) => {
                wait_or_dump(
                    "a leader and two streaming replicas",
                    Duration::from_secs(60),
                    &hosts,
                    || {
                        leader(&hosts).is_some()
                            && members(&hosts).is_some_and(|m| {
                                m.len() == 3
                                    && m.iter().filter(|x| x["state"] == "streaming").count() == 2
                            })
                    },
                );
                let l = leader(&hosts).unwrap();
                let lh = hosts.iter().find(|h| h.node == l).unwrap();
                psql(lh, &password, "postgres", sql);
            }
        }
    }
    // FIRST 1: Patroni makes one replica synchronous within its loop.
    wait_or_dump(
        "one synchronous standby and one replica",
        Duration::from_secs(60),
        &hosts,
        || {
            members(&hosts).is_some_and(|m| {
                m.iter().filter(|x| x["role"] == "sync_standby").count() == 1
                    && m.iter().filter(|x| x["role"] == "replica").count() == 1
            })
        },
    );
    let m = members(&hosts).unwrap();
    println!("members: {}", serde_json::to_string(&m).unwrap());

    // A crash of the leader's host under a writer.
    let old = leader(&hosts).unwrap();
    let old_host = hosts.iter().find(|h| h.node == old).unwrap();
    psql(
        old_host,
        &password,
        "legendarydb",
        &format!("CREATE TABLE {} (id bigint PRIMARY KEY)", chaos::TABLE),
    );
    let nodes: Vec<Node> = hosts
        .iter()
        .map(|h| Node {
            name: h.node.clone(),
            port: h.pg_port,
        })
        .collect();
    let load = Load::start(&nodes, &password, 1);
    wait_for(
        "the writer's first commits",
        Duration::from_secs(30),
        || load.acked() > 50,
    );
    let before = load.acked();
    let killed_at = Instant::now();
    docker_ok(&["kill", &old_host.container]);
    let others: Vec<Host> = hosts
        .iter()
        .filter(|h| h.node != old)
        .map(|h| Host {
            node: h.node.clone(),
            container: h.container.clone(),
            ip: h.ip.clone(),
            pg_port: h.pg_port,
            rest_port: h.rest_port,
        })
        .collect();
    wait_or_dump(
        "Patroni to promote another leader",
        Duration::from_secs(120),
        &hosts,
        || leader(&others).is_some_and(|l| l != old),
    );
    let new = leader(&others).unwrap();
    println!(
        "Patroni promoted {new} {} ms after the leader's host was killed",
        killed_at.elapsed().as_millis()
    );
    wait_for("commits on the new leader", Duration::from_secs(60), || {
        load.acked() > before + 100
    });
    let seen = load.finish();
    assert!(seen.two_writable.is_empty(), "{:?}", seen.two_writable);
    let nh = hosts.iter().find(|h| h.node == new).unwrap();
    let present: std::collections::BTreeSet<i64> = chaos::ids_on(
        &Node {
            name: new.clone(),
            port: nh.pg_port,
        },
        &password,
    )
    .into_iter()
    .collect();
    let lost: Vec<&i64> = seen
        .acked
        .iter()
        .filter(|id| !present.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged commit(s) lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    println!(
        "{} acknowledged, 0 lost, never two writable nodes ({} watcher samples)",
        seen.acked.len(),
        seen.samples
    );

    // The old leader's host comes back; its services start as at boot.
    docker_ok(&["start", &old_host.container]);
    for step in &steps {
        if let HostStep::Start { unit, .. } = step {
            start(old_host, unit);
        }
    }
    wait_or_dump(
        "the old leader back as a streaming replica",
        Duration::from_secs(180),
        &hosts,
        || {
            members(&hosts).is_some_and(|m| {
                m.iter()
                    .any(|x| x["name"] == old.as_str() && x["state"] == "streaming")
                    && m.iter().filter(|x| x["role"] == "leader").count() == 1
            })
        },
    );
    println!("{old} rejoined as a replica of {new}");
}

/// Waits like `wait_for`, printing every host's service logs first when
/// the wait fails.
fn wait_or_dump(what: &str, timeout: Duration, hosts: &[Host], mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() >= deadline {
            for h in hosts {
                let (_, ps) = docker(&["exec", &h.container, "ps", "-eo", "pid,etime,args"]);
                println!("--- {} processes:\n{ps}", h.node);
                for unit in ["etcd", "patroni"] {
                    let (_, log) = docker(&[
                        "exec",
                        &h.container,
                        "sh",
                        "-c",
                        &format!("tail -n 25 /var/log/{unit}.log"),
                    ]);
                    println!("--- {} {unit}:\n{log}", h.node);
                }
            }
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// SQL on a host's server, as the database owner (the superuser).
fn psql(h: &Host, password: &str, db: &str, sql: &str) {
    let o = duct::cmd!(
        "docker",
        "exec",
        "-i",
        "-e",
        "PGPASSWORD",
        &h.container,
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "dbuser",
        "-d",
        db,
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        sql
    )
    .env("PGPASSWORD", password)
    .stderr_to_stdout()
    .stdout_capture()
    .unchecked()
    .run()
    .unwrap();
    assert!(
        o.status.success(),
        "psql on {}: {sql}: {}",
        h.node,
        String::from_utf8_lossy(&o.stdout)
    );
}
