//! Hosts for the multi-host test: one Linux network namespace per validator and agent, each
//! with its own address on a bridge the test makes (veth pairs), names in a per-namespace
//! `/etc/hosts` (`ip netns exec` mounts `/etc/netns/NAME/hosts` over it), processes started
//! inside, and partitions made with blackhole routes inside the namespaces. Everything made is
//! removed on drop, also when the test fails. Needs root on Linux (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A host: its namespace, address and name.
pub struct Host {
    pub namespace: String,
    pub ip: String,
    pub name: String,
}

pub struct Hosts {
    pub hosts: Vec<Host>,
    bridge: String,
    /// The test's own address on the bridge (it talks to the hosts from the root namespace).
    pub gateway: String,
    /// Blackhole routes in force: (host index, blocked address).
    cuts: Vec<(usize, String)>,
    children: Vec<Option<Child>>,
}

/// Runs `ip ARGS`, returning its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// How to run the test where it cannot make namespaces (the test fails with this, never skips).
pub const HOW_TO_RUN: &str =
    "the multi-host test makes Linux network namespaces, veth pairs and a \
bridge, which needs root and iproute2: run it as root, e.g. `sudo -E cargo test -p scbe-tests \
--test multihost` (CI runs as root)";

impl Hosts {
    /// `names.len()` hosts named `names`, on a /24 of their own.
    pub fn new(names: &[String]) -> Result<Self, String> {
        let pid = std::process::id();
        let tag = pid % 100_000;
        // One subnet per test process, inside 10.213.0.0/16.
        let subnet = format!("10.213.{}", 20 + pid % 200);
        let bridge = format!("smb{tag}");
        let mut made = Hosts {
            hosts: Vec::new(),
            bridge: bridge.clone(),
            gateway: format!("{subnet}.254"),
            cuts: Vec::new(),
            children: Vec::new(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"])
            .map_err(|e| format!("{e}\n{HOW_TO_RUN}"))?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", made.gateway),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for (k, name) in names.iter().enumerate() {
            let namespace = format!("scbe-mh{tag}-{k}");
            let (outer, inner) = (format!("smh{tag}o{k}"), format!("smh{tag}i{k}"));
            let host_ip = format!("{subnet}.{}", k + 1);
            ip(&["netns", "add", &namespace])?;
            made.hosts.push(Host {
                namespace: namespace.clone(),
                ip: host_ip.clone(),
                name: name.clone(),
            });
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &namespace,
            ])?;
            ip(&["link", "set", &outer, "master", &bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            let inside = |args: &[&str]| {
                let mut all = vec!["-n", namespace.as_str()];
                all.extend_from_slice(args);
                ip(&all)
            };
            inside(&["link", "set", "lo", "up"])?;
            inside(&["addr", "add", &format!("{host_ip}/24"), "dev", &inner])?;
            inside(&["link", "set", &inner, "up"])?;
        }
        // Every host resolves every other by name.
        let mut table = String::from("127.0.0.1 localhost\n");
        for h in &made.hosts {
            table.push_str(&format!("{} {}\n", h.ip, h.name));
        }
        for h in &made.hosts {
            let dir = made.etc(&h.namespace);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(dir.join("hosts"), &table).map_err(|e| e.to_string())?;
        }
        made.children = (0..made.hosts.len()).map(|_| None).collect();
        Ok(made)
    }

    fn etc(&self, namespace: &str) -> PathBuf {
        Path::new("/etc/netns").join(namespace)
    }

    /// Starts `program run --config config` inside host `k`, in `dir`, logging to `dir/log`.
    pub fn start(&mut self, k: usize, program: &Path, dir: &Path, config: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[k].namespace])
            .arg(program)
            .args(["run", "--config", config])
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("ip netns exec");
        self.children[k] = Some(child);
    }

    /// Drops every packet between hosts `a` and `b`, both ways (blackhole routes inside both).
    pub fn cut(&mut self, a: usize, b: usize) {
        for (from, to) in [(a, b), (b, a)] {
            let blocked = format!("{}/32", self.hosts[to].ip);
            ip(&[
                "-n",
                &self.hosts[from].namespace,
                "route",
                "add",
                "blackhole",
                &blocked,
            ])
            .expect("blackhole route");
            self.cuts.push((from, blocked));
        }
    }

    /// Cuts every pair across the two groups.
    pub fn split(&mut self, left: &[usize], right: &[usize]) {
        for &a in left {
            for &b in right {
                self.cut(a, b);
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        for (from, blocked) in std::mem::take(&mut self.cuts) {
            ip(&[
                "-n",
                &self.hosts[from].namespace,
                "route",
                "del",
                "blackhole",
                &blocked,
            ])
            .expect("remove a blackhole route");
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for h in &self.hosts {
            // Deleting a namespace deletes the veth end inside it, and with it the pair.
            let _ = ip(&["netns", "del", &h.namespace]);
            let _ = std::fs::remove_dir_all(self.etc(&h.namespace));
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
