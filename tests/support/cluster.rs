//! Throw-away Redis Clusters and Sentinel groups of one test, on free loopback ports.
//!
//! A cluster is made the way its users make one: `redis-server --cluster-enabled yes` per
//! node, then `redis-cli --cluster create ... --cluster-replicas N`. Nodes notice a dead peer
//! after a short `cluster-node-timeout` (1 s), so a failover test promotes a replica in about
//! two seconds. A Sentinel group is one master, its replicas and three `redis-sentinel`
//! processes watching it with a 1 s `down-after-milliseconds`.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::TestRedis;

/// How long a cluster may take to agree on its slots, or Sentinel on a master.
const SETTLE: Duration = Duration::from_secs(30);

/// Runs `redis-cli -p port args...` and returns its standard output.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_as(port, None, args)
}

/// `cli` with a password (`redis-cli -a`).
pub fn cli_as(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &port.to_string()]);
    if let Some(pw) = password {
        cmd.args(["--no-auth-warning", "-a", pw]);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("run redis-cli (Debian's redis-tools, which redis-server brings)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cluster of `masters` masters with `replicas` replicas each.
#[derive(Debug)]
pub struct TestCluster {
    pub nodes: Vec<TestRedis>,
    /// With TLS: each node's TLS port, and the folder of the certificate.
    tls: Option<(Vec<u16>, tempfile::TempDir)>,
}

impl TestCluster {
    pub fn start(masters: usize, replicas: usize) -> TestCluster {
        Self::start_inner(masters, replicas, false)
    }

    /// A cluster whose clients, replication and cluster bus speak TLS, with a self-signed
    /// certificate; the plain ports stay open for the test's own checks.
    pub fn start_tls(masters: usize, replicas: usize) -> TestCluster {
        Self::start_inner(masters, replicas, true)
    }

    fn start_inner(masters: usize, replicas: usize, tls: bool) -> TestCluster {
        let certs = tls.then(|| tempfile::tempdir().expect("a folder for the certificate"));
        let mut tls_ports = Vec::new();
        let base: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "1000",
            "--cluster-config-file",
            "nodes.conf",
            // A replica's first sync starts at once instead of after Redis's 5 s default, so
            // that a master killed early in a test already has a replica that can take over.
            "--repl-diskless-sync-delay",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let nodes: Vec<TestRedis> = (0..masters * (1 + replicas))
            .map(|_| {
                let mut extra = base.clone();
                if let Some(dir) = &certs {
                    let port = super::redis::free_port();
                    tls_ports.push(port);
                    extra.extend(super::redis::tls_args(dir.path(), port));
                    extra.extend(
                        ["--tls-cluster", "yes", "--tls-replication", "yes"].map(String::from),
                    );
                }
                TestRedis::start_with(&extra)
            })
            .collect();
        let addrs: Vec<String> = if tls {
            tls_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
        } else {
            nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port()))
                .collect()
        };
        let mut create = Command::new("redis-cli");
        if tls {
            create.args(["--tls", "--insecure"]);
        }
        let out = create
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = TestCluster {
            nodes,
            tls: certs.map(|dir| (tls_ports, dir)),
        };
        cluster.wait_until_ok();
        cluster.wait_for_replicas();
        cluster
    }

    /// The seed URL of every node (`rediss+cluster://...#insecure` with TLS: the certificate
    /// is self-signed).
    pub fn url(&self) -> String {
        match &self.tls {
            None => {
                let hosts: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port()))
                    .collect();
                format!("redis+cluster://{}", hosts.join(","))
            }
            Some((ports, _)) => {
                let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
                format!("rediss+cluster://{}/#insecure", hosts.join(","))
            }
        }
    }

    /// Waits until every live node reports `cluster_state:ok` and the same view of which
    /// nodes are masters (so a replica just promoted is known everywhere).
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let live: Vec<&TestRedis> = self.nodes.iter().filter(|n| n.is_responding()).collect();
            let ok = live
                .iter()
                .all(|n| cli(n.port(), &["cluster", "info"]).contains("cluster_state:ok"));
            let views: Vec<Vec<u16>> = live.iter().map(|n| masters_seen_by(n.port())).collect();
            if ok && views.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle in {SETTLE:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every replica has finished its first sync: a replica that never synced
    /// cannot be promoted.
    pub fn wait_for_replicas(&self) {
        let deadline = Instant::now() + SETTLE;
        for node in &self.nodes {
            loop {
                let info = cli(node.port(), &["info", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "a replica did not sync in {SETTLE:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The index in `nodes` of the master that holds `key`'s slot now.
    pub fn master_of(&self, key: &str) -> usize {
        let live = self
            .nodes
            .iter()
            .find(|n| n.is_responding())
            .expect("a live node");
        let slot: u16 = cli(live.port(), &["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT");
        let nodes = cli(live.port(), &["cluster", "nodes"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .expect("a node address");
            let holds = fields[8..].iter().any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
            });
            if holds {
                return self
                    .nodes
                    .iter()
                    .position(|n| n.port() == port)
                    .expect("the master is one of ours");
            }
        }
        panic!("no master holds slot {slot}:\n{nodes}");
    }

    /// The node id of `nodes[index]`, as `CLUSTER NODES` names it.
    pub fn node_id(&self, index: usize) -> String {
        cli(self.nodes[index].port(), &["cluster", "myid"])
            .trim()
            .to_owned()
    }

    /// A queue name whose slot is among the first `below` slots of the master that holds
    /// slot 0, which `redis-cli --cluster reshard --cluster-slots <below>` moves first.
    pub fn queue_in_low_slots(&self, prefix: &str, below: u16) -> String {
        let port = self.nodes[0].port();
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|q| {
                let key = format!("jobfleet:{{{q}}}:pending");
                let slot: u16 = cli(port, &["cluster", "keyslot", &key])
                    .trim()
                    .parse()
                    .unwrap();
                slot < below
            })
            .expect("some name hashes low")
    }

    /// Queue names whose keys live on `count` different masters, one per master.
    pub fn queues_on_every_master(&self, prefix: &str, count: usize) -> Vec<String> {
        let mut found: Vec<(usize, String)> = Vec::new();
        for i in 0.. {
            let name = format!("{prefix}{i}");
            let master = self.master_of(&format!("jobfleet:{{{name}}}:pending"));
            if found.iter().all(|(m, _)| *m != master) {
                found.push((master, name));
                if found.len() == count {
                    break;
                }
            }
        }
        found.into_iter().map(|(_, q)| q).collect()
    }
}

/// The ports of the masters one node sees, sorted.
fn masters_seen_by(port: u16) -> Vec<u16> {
    let mut masters: Vec<u16> = cli(port, &["cluster", "nodes"])
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 9 && f[2].contains("master") && !f[2].contains("fail")
        })
        .filter_map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|a| a.split('@').next())
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
        })
        .collect();
    masters.sort_unstable();
    masters
}

/// One master, its replicas, and three sentinels watching it as `mymaster`.
#[derive(Debug)]
pub struct TestSentinel {
    pub master: TestRedis,
    pub replicas: Vec<TestRedis>,
    sentinels: Vec<(Child, u16, tempfile::TempDir)>,
    /// (the master's and replicas' password, the sentinels' own), when they have one.
    passwords: Option<(String, String)>,
}

impl TestSentinel {
    pub fn start(replicas: usize) -> TestSentinel {
        Self::start_inner(replicas, None)
    }

    /// A group whose master and replicas require `master_pw` and whose sentinels require
    /// `sentinel_pw`, as a production group does.
    pub fn start_secured(replicas: usize, master_pw: &str, sentinel_pw: &str) -> TestSentinel {
        Self::start_inner(
            replicas,
            Some((master_pw.to_owned(), sentinel_pw.to_owned())),
        )
    }

    fn start_inner(replicas: usize, passwords: Option<(String, String)>) -> TestSentinel {
        let mut extra: Vec<String> = vec!["--repl-diskless-sync-delay".into(), "0".into()];
        if let Some((master_pw, _)) = &passwords {
            extra.extend(["--masterauth".into(), master_pw.clone()]);
        }
        let master = TestRedis::start_with(&extra);
        let replicas: Vec<TestRedis> = (0..replicas)
            .map(|_| {
                let mut args = extra.clone();
                args.extend([
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    master.port().to_string(),
                ]);
                TestRedis::start_with(&args)
            })
            .collect();
        if let Some((master_pw, _)) = &passwords {
            for node in std::iter::once(&master).chain(&replicas) {
                node.set_password(master_pw);
            }
        }
        let sentinels = (0..3)
            .map(|_| start_sentinel(master.port(), passwords.as_ref()))
            .collect();
        let group = TestSentinel {
            master,
            replicas,
            sentinels,
            passwords,
        };
        group.wait_for_master(group.master.port());
        group
    }

    fn sentinel_cli(&self, port: u16, args: &[&str]) -> String {
        cli_as(port, self.passwords.as_ref().map(|(_, s)| s.as_str()), args)
    }

    /// The URL jobfleet is given: every sentinel and the master's name, with both passwords.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(_, port, _)| format!("127.0.0.1:{port}"))
            .collect();
        match &self.passwords {
            None => format!("redis+sentinel://{}/mymaster", hosts.join(",")),
            Some((master_pw, sentinel_pw)) => format!(
                "redis+sentinel://:{master_pw}@{}/mymaster?sentinel_password={sentinel_pw}",
                hosts.join(",")
            ),
        }
    }

    /// The port of the master the sentinels name now.
    pub fn current_master(&self) -> Option<u16> {
        let (_, port, _) = &self.sentinels[0];
        let out = self.sentinel_cli(*port, &["sentinel", "get-master-addr-by-name", "mymaster"]);
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }

    /// Waits until every sentinel names `port` as the master and sees its replicas.
    pub fn wait_for_master(&self, port: u16) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let agreed = self.sentinels.iter().all(|(_, p, _)| {
                let out =
                    self.sentinel_cli(*p, &["sentinel", "get-master-addr-by-name", "mymaster"]);
                let replicas = self.sentinel_cli(*p, &["sentinel", "replicas", "mymaster"]);
                out.lines().nth(1).map(str::trim) == Some(&port.to_string())
                    && (self.replicas.is_empty() || replicas.contains("slave"))
            });
            if agreed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels did not agree on master {port} in {SETTLE:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        for (child, _, _) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_sentinel(
    master_port: u16,
    passwords: Option<&(String, String)>,
) -> (Child, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a folder for the sentinel");
    let port = super::process::free_port();
    let conf = dir.path().join("sentinel.conf");
    let mut text = format!(
        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
         sentinel monitor mymaster 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds mymaster 1000\n\
         sentinel failover-timeout mymaster 5000\n\
         sentinel parallel-syncs mymaster 1\n",
        dir = dir.path().display()
    );
    if let Some((master_pw, sentinel_pw)) = passwords {
        // The sentinels log in to the master and replicas, and to each other, with these.
        text.push_str(&format!(
            "sentinel auth-pass mymaster {master_pw}\nrequirepass {sentinel_pw}\n"
        ));
    }
    std::fs::write(&conf, text).expect("write sentinel.conf");
    let log = std::fs::File::create(dir.path().join("sentinel.log")).expect("sentinel log");
    let child = Command::new("redis-sentinel")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-sentinel (Debian's redis-sentinel; scripts/test installs it)");
    let deadline = Instant::now() + SETTLE;
    let password = passwords.map(|(_, s)| s.as_str());
    while !cli_as(port, password, &["ping"]).contains("PONG") {
        assert!(
            Instant::now() < deadline,
            "redis-sentinel on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port, dir)
}
