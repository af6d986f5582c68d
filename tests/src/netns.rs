//! Network namespaces made by the tests, and the links between them.
//!
//! Every command here runs inside a namespace the test created (`ip -n NS` or
//! `ip netns exec NS`); nothing touches the machine's own namespace. veth pairs are created from
//! inside the first namespace with the peer end placed straight into the second, so not even a
//! transient device appears in the host's namespace.

use crate::command::{describe, output, run_ok};
use crate::process::kill_pid;
use crate::setup::{unique_id, wait_until};
use std::net::IpAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

/// A network namespace `mdt-<pid>x<n>`, deleted on drop (after killing by PID whatever still runs
/// in it: only processes the test started can be there).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with `lo` up.
    pub fn new() -> Netns {
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_stale);
        let name = format!("mdt-{}", unique_id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME program`, to be completed with arguments.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `args` inside the namespace and returns the full output (no check).
    pub fn exec(&self, args: &[&str]) -> Output {
        let (program, rest) = match args.split_first() {
            Some(x) => x,
            None => panic!("exec: empty command"),
        };
        output(self.cmd(program).args(rest))
    }

    /// What the kernel's socket filters dropped in this namespace: `Udp: InErrors` less the
    /// receive buffer overflows it also counts (`RcvbufErrors`).
    pub fn udp_filtered(&self) -> u64 {
        let snmp = self.exec_ok(&["cat", "/proc/net/snmp"]);
        let udp: Vec<Vec<&str>> = snmp
            .lines()
            .filter(|l| l.starts_with("Udp:"))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let field = |name: &str| -> u64 {
            udp.first()
                .and_then(|h| h.iter().position(|&c| c == name))
                .and_then(|i| udp.get(1)?.get(i)?.parse().ok())
                .unwrap_or_else(|| panic!("no Udp {name} in /proc/net/snmp:\n{snmp}"))
        };
        field("InErrors") - field("RcvbufErrors")
    }

    /// Runs `args` inside the namespace; it must succeed. Returns stdout.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let (program, rest) = match args.split_first() {
            Some(x) => x,
            None => panic!("exec_ok: empty command"),
        };
        run_ok(self.cmd(program).args(rest))
    }

    /// `ip -n NAME args...`; must succeed. Returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip -n NAME args...`, unchecked.
    pub fn ip_output(&self, args: &[&str]) -> Output {
        output(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `sysctl -w key=value` inside the namespace (net.* keys are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec_ok(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    pub fn link_up(&self, dev: &str) {
        self.ip(&["link", "set", dev, "up"]);
    }

    /// Adds an address (CIDR). IPv6 addresses get `nodad`; waits until the address is usable.
    pub fn add_addr(&self, dev: &str, cidr: &str) {
        let v6 = cidr.contains(':');
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if v6 {
            args.push("nodad");
        }
        self.ip(&args);
        let addr = host_of(cidr);
        self.wait_addr(addr, Duration::from_secs(10));
    }

    pub fn del_addr(&self, dev: &str, cidr: &str) {
        self.ip(&["addr", "del", cidr, "dev", dev]);
    }

    /// Waits until `addr` is configured in the namespace and not tentative; panics on timeout.
    pub fn wait_addr(&self, addr: IpAddr, timeout: Duration) {
        let want = addr.to_string();
        let ok = wait_until(timeout, || {
            let out = self.ip_output(&["-o", "addr", "show"]);
            String::from_utf8_lossy(&out.stdout).lines().any(|l| {
                let mut words = l.split_whitespace();
                let has = words.any(|w| w.split('/').next() == Some(want.as_str()));
                has && !l.contains("tentative")
            })
        });
        if !ok {
            panic!(
                "address {addr} not ready in {} after {timeout:?}:\n{}",
                self.name,
                String::from_utf8_lossy(&self.ip_output(&["addr", "show"]).stdout)
            );
        }
    }

    /// Whether a link called `dev` exists in the namespace (`ip link show dev` succeeds).
    pub fn link_exists(&self, dev: &str) -> bool {
        self.ip_output(&["link", "show", dev]).status.success()
    }

    /// The UDP sockets on local `port` connected somewhere, as (local, peer) addresses the way
    /// `ss` prints them.
    pub fn connected_udp(&self, port: u16) -> Vec<(String, String)> {
        let sport = format!(":{port}");
        let out = self.exec_ok(&["ss", "-Huan", "state", "established", "sport", "=", &sport]);
        out.lines()
            .filter_map(|l| {
                // Recv-Q Send-Q Local Peer (no state column when one state is asked for)
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 4).then(|| (f[2].to_string(), f[3].to_string()))
            })
            .collect()
    }

    /// Names of the TUN devices in the namespace.
    pub fn tun_devices(&self) -> Vec<String> {
        let out = self.ip_output(&["-o", "link", "show", "type", "tun"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|s| s.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    }

    /// `ping -c count -i 0.2 -W 1 addr`: true when ping exits 0 (replies came back).
    pub fn ping(&self, addr: IpAddr, count: u32) -> bool {
        let c = count.to_string();
        let a = addr.to_string();
        self.exec(&["ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "1", &a])
            .status
            .success()
    }

    /// Reachability with patience for a first handshake: ping until 3 replies came back, for at
    /// most 10 s (`-w 10`). True when they did.
    pub fn reaches(&self, addr: IpAddr) -> bool {
        let a = addr.to_string();
        self.exec(&["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-w", "10", &a])
            .status
            .success()
    }

    /// Panics (with ping's output) unless `addr` answers, see [`Netns::reaches`].
    pub fn assert_reaches(&self, addr: IpAddr) {
        let a = addr.to_string();
        let out = self.exec(&["ping", "-n", "-c", "3", "-i", "0.2", "-w", "10", &a]);
        if !out.status.success() {
            panic!(
                "{} cannot reach {addr}:\n{}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The PIDs of the processes in this namespace.
    pub fn pids(&self) -> Vec<u32> {
        let out = output(Command::new("ip").args(["netns", "pids", &self.name]));
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for pid in self.pids() {
            kill_pid(pid, libc::SIGKILL);
        }
        for attempt in 0..20 {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "del", &self.name]);
            let out = output(&mut cmd);
            if out.status.success() {
                return;
            }
            if attempt == 19 {
                eprintln!(
                    "warning: `{}` failed: {}",
                    describe(&cmd),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Removes what an earlier test run left behind when it was killed before its drop guards ran
/// (SIGKILL, Ctrl-C): namespaces and temp dirs `mdt-<pid>x<n>` and wireguard-go sockets
/// `wgt<pid>x<n>.sock` whose `<pid>` is no longer alive. Anything of a live process (a parallel
/// run) is left alone.
fn sweep_stale() {
    let dead = |token: &str| -> bool {
        let Some((pid, n)) = token.split_once('x') else {
            return false;
        };
        let (Ok(pid), true) = (pid.parse::<u32>(), n.parse::<u32>().is_ok()) else {
            return false;
        };
        pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    };
    let out = output(Command::new("ip").args(["netns", "list"]));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.strip_prefix("mdt-").is_some_and(dead) {
            eprintln!("removing stale namespace {name} of a dead test run");
            drop(Netns {
                name: name.to_string(),
            });
        }
    }
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && f.strip_prefix("mdt-").is_some_and(dead) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/var/run/wireguard") {
        for e in dir.flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            let token = f.strip_prefix("wgt").and_then(|t| t.strip_suffix(".sock"));
            if token.is_some_and(dead) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The address part of a CIDR (`10.0.0.1/24` → `10.0.0.1`). Panics on malformed input.
pub fn host_of(cidr: &str) -> IpAddr {
    let host = cidr.split('/').next().unwrap_or(cidr);
    match host.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad address {cidr}: {e}"),
    }
}

/// Parses an IP address literal; panics on malformed input (test constants only).
pub fn ip(s: &str) -> IpAddr {
    match s.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad address {s}: {e}"),
    }
}

/// A veth pair: `a_if` in `a`, `b_if` in `b`, both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]);
    a.link_up(a_if);
    b.link_up(b_if);
}

/// A switch: a namespace holding a bridge `br0`, to which other namespaces attach by veth.
#[derive(Debug)]
pub struct Switch {
    ns: Netns,
    ports: AtomicU32,
}

impl Switch {
    pub fn new() -> Switch {
        let ns = Netns::new();
        ns.ip(&["link", "add", "br0", "type", "bridge", "forward_delay", "0"]);
        ns.link_up("br0");
        Switch {
            ns,
            ports: AtomicU32::new(0),
        }
    }

    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// Plugs `ns` into the switch: a device `ifname` in `ns`, its peer a port of `br0`.
    pub fn attach(&self, ns: &Netns, ifname: &str) {
        let port = format!("p{}", self.ports.fetch_add(1, Ordering::Relaxed));
        self.ns.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", ifname, "netns", &ns.name,
        ]);
        self.ns.ip(&["link", "set", &port, "master", "br0"]);
        self.ns.link_up(&port);
        ns.link_up(ifname);
    }
}

impl Default for Switch {
    fn default() -> Self {
        Self::new()
    }
}
