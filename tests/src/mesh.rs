//! Mesh configs for tests (keys, `mesh.yaml`) and meshd nodes running in namespaces.

use crate::command::{run_ok, run_ok_stdin};
use crate::netns::Netns;
use crate::process::{Daemon, Stopped};
use crate::setup::{meshd_bin, unique_id, TempDir};
use crate::text::tail;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A WireGuard key pair, base64 as printed by `wg genkey` / `wg pubkey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub private: String,
    pub public: String,
}

impl Key {
    /// A fresh key pair from `wg genkey` / `wg pubkey` (the formats meshd uses too).
    pub fn generate() -> Key {
        let private = run_ok(Command::new("wg").arg("genkey")).trim().to_string();
        let public = run_ok_stdin(Command::new("wg").arg("pubkey"), &format!("{private}\n"))
            .trim()
            .to_string();
        Key { private, public }
    }

    /// Writes the private key to `path` with mode `mode` (0600 for a good key file).
    pub fn write_private(&self, path: &Path, mode: u32) {
        write_file_mode(path, &format!("{}\n", self.private), mode);
    }
}

/// Writes a file and sets its mode exactly (umask does not apply).
pub fn write_file_mode(path: &Path, contents: &str, mode: u32) {
    let res = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)));
    if let Err(e) = res {
        panic!("cannot write {}: {e}", path.display());
    }
}

/// One `nodes:` entry.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub key: Key,
    /// Overlay address with the mesh prefix, e.g. `10.100.0.1/24`.
    pub address: String,
    /// `ip:port`, `[v6]:port` or `host:port`; `None` for a node without an endpoint.
    pub endpoint: Option<String>,
    pub routes: Vec<String>,
    pub keepalive: Option<u16>,
}

/// One `policy:` rule; `from`/`to` are YAML values (`a`, `[a, b]`, `"*"`).
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub from: String,
    pub to: String,
    pub allow: Vec<String>,
}

/// A whole mesh, rendered as a `mesh.yaml` in block style (one key per line, so a test can find
/// the line of any value for error positions).
#[derive(Debug, Clone)]
pub struct MeshSpec {
    pub iface: String,
    pub listen_port: u16,
    pub mtu: u16,
    pub ssh_from: Vec<String>,
    /// Generous by default so that pings over the overlay are never rate limited.
    pub icmp_rate: String,
    /// `interface.metrics`: `off` unless a test scrapes (each node has its own loopback).
    pub metrics: String,
    /// `interface.dns_refresh` in seconds, when a test wants it shorter than the default.
    pub dns_refresh: Option<u32>,
    /// `interface.busy_poll` in microseconds, when a test wants other than the default.
    pub busy_poll: Option<u32>,
    /// `interface.quiet_cpu`, written as given, when a test wants other than the default.
    pub quiet_cpu: Option<String>,
    /// `interface.metrics_detail` (`node` or `peer`), when a test wants other than the default.
    pub metrics_detail: Option<String>,
    pub nodes: Vec<NodeSpec>,
    pub rules: Vec<RuleSpec>,
}

impl Default for MeshSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshSpec {
    pub fn new() -> MeshSpec {
        MeshSpec {
            iface: "meshd0".to_string(),
            listen_port: 51820,
            mtu: 1420,
            ssh_from: vec!["192.0.2.10/32".to_string()],
            icmp_rate: "1000/second".to_string(),
            metrics: "off".to_string(),
            dns_refresh: None,
            busy_poll: None,
            quiet_cpu: None,
            metrics_detail: None,
            nodes: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Adds a node with a fresh key.
    pub fn node(&mut self, name: &str, address: &str, endpoint: Option<&str>) -> &mut NodeSpec {
        self.node_with_key(name, Key::generate(), address, endpoint)
    }

    /// Adds a node with a given key (e.g. a wireguard-go peer's).
    pub fn node_with_key(
        &mut self,
        name: &str,
        key: Key,
        address: &str,
        endpoint: Option<&str>,
    ) -> &mut NodeSpec {
        self.nodes.push(NodeSpec {
            name: name.to_string(),
            key,
            address: address.to_string(),
            endpoint: endpoint.map(str::to_string),
            routes: Vec::new(),
            keepalive: None,
        });
        let last = self.nodes.len() - 1;
        &mut self.nodes[last]
    }

    /// A rule `from -> to` allowing `allow`.
    pub fn rule(&mut self, from: &str, to: &str, allow: &[&str]) -> &mut Self {
        self.rules.push(RuleSpec {
            from: from.to_string(),
            to: to.to_string(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
        });
        self
    }

    /// Rules `a -> b` and `b -> a`, both allowing `allow`.
    pub fn rule_both(&mut self, a: &str, b: &str, allow: &[&str]) -> &mut Self {
        self.rule(a, b, allow).rule(b, a, allow)
    }

    pub fn get(&self, name: &str) -> &NodeSpec {
        match self.nodes.iter().find(|n| n.name == name) {
            Some(n) => n,
            None => panic!("no node {name} in the test mesh"),
        }
    }

    pub fn get_mut(&mut self, name: &str) -> &mut NodeSpec {
        match self.nodes.iter_mut().find(|n| n.name == name) {
            Some(n) => n,
            None => panic!("no node {name} in the test mesh"),
        }
    }

    pub fn key(&self, name: &str) -> &Key {
        &self.get(name).key
    }

    pub fn to_yaml(&self) -> String {
        let mut y = String::new();
        let _ = writeln!(y, "# generated by meshd-e2e");
        let _ = writeln!(y, "interface:");
        let _ = writeln!(y, "  name: {}", self.iface);
        let _ = writeln!(y, "  listen_port: {}", self.listen_port);
        let _ = writeln!(y, "  mtu: {}", self.mtu);
        let _ = writeln!(y, "  metrics: \"{}\"", self.metrics);
        if let Some(secs) = self.dns_refresh {
            let _ = writeln!(y, "  dns_refresh: {secs}");
        }
        if let Some(us) = self.busy_poll {
            let _ = writeln!(y, "  busy_poll: {us}");
        }
        if let Some(cpu) = &self.quiet_cpu {
            let _ = writeln!(y, "  quiet_cpu: {cpu}");
        }
        if let Some(detail) = &self.metrics_detail {
            let _ = writeln!(y, "  metrics_detail: {detail}");
        }
        let _ = writeln!(y, "admin:");
        let _ = writeln!(y, "  ssh_from: [{}]", self.ssh_from.join(", "));
        let _ = writeln!(y, "  icmp_rate: {}", self.icmp_rate);
        let _ = writeln!(y, "nodes:");
        for n in &self.nodes {
            let _ = writeln!(y, "  - name: {}", n.name);
            let _ = writeln!(y, "    public_key: \"{}\"", n.key.public);
            let _ = writeln!(y, "    address: {}", n.address);
            if let Some(e) = &n.endpoint {
                let _ = writeln!(y, "    endpoint: \"{e}\"");
            }
            if !n.routes.is_empty() {
                let _ = writeln!(y, "    routes: [{}]", n.routes.join(", "));
            }
            if let Some(k) = n.keepalive {
                let _ = writeln!(y, "    keepalive: {k}");
            }
        }
        let _ = writeln!(y, "policy:");
        for r in &self.rules {
            let _ = writeln!(y, "  - from: {}", r.from);
            let _ = writeln!(y, "    to: {}", r.to);
            let _ = writeln!(y, "    allow: [{}]", r.allow.join(", "));
        }
        y
    }

    /// Writes `mesh.yaml` and every node's private key (mode 0600) into a fresh temp dir.
    pub fn write(&self) -> MeshFiles {
        self.write_yaml(&self.to_yaml())
    }

    /// Like [`MeshSpec::write`] but with the given config text (e.g. a deliberately broken one).
    pub fn write_yaml(&self, yaml: &str) -> MeshFiles {
        let dir = TempDir::new();
        let config = dir.join("mesh.yaml");
        write_file_mode(&config, yaml, 0o644);
        let mut keys = BTreeMap::new();
        for n in &self.nodes {
            let path = dir.join(&format!("{}.key", n.name));
            n.key.write_private(&path, 0o600);
            keys.insert(n.name.clone(), path);
        }
        MeshFiles {
            dir,
            config,
            yaml: yaml.to_string(),
            iface: self.iface.clone(),
            keys,
        }
    }
}

/// A written mesh: the config, the key files, and the temp dir that holds them (and the logs).
#[derive(Debug)]
pub struct MeshFiles {
    pub dir: TempDir,
    pub config: PathBuf,
    pub yaml: String,
    pub iface: String,
    pub keys: BTreeMap<String, PathBuf>,
}

impl MeshFiles {
    pub fn key_path(&self, node: &str) -> &Path {
        match self.keys.get(node) {
            Some(p) => p,
            None => panic!("no key file for node {node}"),
        }
    }

    /// The 1-based line of the first line of the config containing `needle`.
    pub fn line_of(&self, needle: &str) -> usize {
        line_of(&self.yaml, needle)
    }
}

/// The 1-based line of the first line of `text` containing `needle`; panics if none does.
pub fn line_of(text: &str, needle: &str) -> usize {
    match text.lines().position(|l| l.contains(needle)) {
        Some(i) => i + 1,
        None => panic!("`{needle}` not found in:\n{text}"),
    }
}

/// How to start a meshd node.
#[derive(Debug, Clone)]
pub struct MeshdOpts {
    /// `MESHD_LOG`; defaults to `$MESHD_LOG` or `info`.
    pub log_level: String,
    /// Give the node a private `/run` (a tmpfs in its own mount namespace), so that several nodes
    /// with the same interface name do not collide on `/run/meshd/<iface>.sock` and
    /// `/var/run/wireguard/<iface>.sock`. On by default.
    pub private_run: bool,
    /// How long to wait for `ready`.
    pub ready_timeout: Duration,
    /// Extra environment, e.g. `MESHD_TUN_OFFLOAD=off`.
    pub env: Vec<(String, String)>,
    /// Run as this uid (and gid) with CAP_NET_ADMIN as its only capability, ambient and
    /// bounding, in directories `/run/meshd` and `/run/wireguard` it owns: what
    /// `systemd/meshd.service` does with `User=`, `AmbientCapabilities=` and
    /// `RuntimeDirectory=`. Needs `private_run`; the key file must be readable by the uid.
    pub user: Option<u32>,
    /// Another meshd binary than [`meshd_bin`], e.g. a copy that `user` can execute.
    pub bin: Option<PathBuf>,
    /// Set `JOURNAL_STREAM` to the device and inode of the log file, as systemd does for a
    /// service whose stderr is the journal.
    pub journal: bool,
}

impl Default for MeshdOpts {
    fn default() -> Self {
        MeshdOpts {
            log_level: std::env::var("MESHD_LOG").unwrap_or_else(|_| "info".to_string()),
            private_run: true,
            ready_timeout: Duration::from_secs(20),
            env: Vec::new(),
            user: None,
            bin: None,
            journal: false,
        }
    }
}

/// The command line that runs `meshd ARGS` in `ns`, optionally with a private `/run`.
pub fn meshd_command(ns: &Netns, args: &[&str], private_run: bool) -> Command {
    meshd_command_as(ns, &meshd_bin(), args, private_run, None)
}

/// [`meshd_command`], as `user` if given (see [`MeshdOpts::user`]).
pub fn meshd_command_as(
    ns: &Netns,
    bin: &Path,
    args: &[&str],
    private_run: bool,
    user: Option<u32>,
) -> Command {
    let mut cmd = if private_run {
        // `ip netns exec` and `unshare` exec (no fork), and so do `sh -c 'exec'` and
        // `setpriv`: the PID we get is meshd's own, so SIGTERM by PID reaches it. The tmpfs
        // lives in a private mount namespace and is never seen by the host.
        let mount = "mount -t tmpfs -o mode=0755 mdt-run /run";
        let script = match user {
            None => format!("{mount} && exec \"$0\" \"$@\""),
            Some(uid) => format!(
                "{mount} && mkdir -m 0700 /run/meshd /run/wireguard \
                 && chown {uid}:{uid} /run/meshd /run/wireguard \
                 && exec setpriv --reuid={uid} --regid={uid} --clear-groups \
                 --inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin \
                 --bounding-set=-all,+net_admin \"$0\" \"$@\""
            ),
        };
        let mut c = ns.cmd("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c", &script]);
        c.arg(bin);
        c
    } else {
        ns.cmd(&bin.to_string_lossy())
    };
    cmd.args(args);
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "1");
    cmd
}

/// A meshd node running in a namespace (`meshd run`, foreground, stderr to a log file).
#[derive(Debug)]
pub struct Meshd {
    pub node: String,
    pub iface: String,
    ns_name: String,
    daemon: Daemon,
}

/// What a stopped meshd reported.
#[derive(Debug, Clone)]
pub struct MeshdStopped {
    pub node: String,
    pub stopped: Stopped,
    /// The `key=N` counters of the `stopped` line.
    pub counters: BTreeMap<String, u64>,
    /// Whether the TUN device still existed after the exit.
    pub device_left: bool,
}

impl MeshdStopped {
    /// A counter from the `stopped` line; panics (with the log) if it is missing.
    pub fn counter(&self, name: &str) -> u64 {
        match self.counters.get(name) {
            Some(v) => *v,
            None => panic!(
                "meshd {} logged no `{name}=N` on its `stopped` line; log tail:\n{}",
                self.node,
                tail(&self.stopped.log, 30)
            ),
        }
    }

    /// Exit 0, a `stopped` line with the drop counters, and no device left behind.
    pub fn assert_clean(&self) {
        let log = tail(&self.stopped.log, 30);
        assert!(
            self.stopped.status.success(),
            "meshd {} exited with {} after SIGTERM; log tail:\n{log}",
            self.node,
            self.stopped.status
        );
        for c in [
            "dropped_no_route",
            "dropped_allowed_ips",
            "dropped_decrypt",
            "dropped_malformed",
            "dropped_unknown_peer",
        ] {
            self.counter(c);
        }
        assert!(
            !self.device_left,
            "meshd {} left its TUN device behind after exiting",
            self.node
        );
    }

    pub fn log_contains(&self, s: &str) -> bool {
        self.stopped.log.contains(s)
    }
}

/// Parses the `key=N` counters from the last log line containing the word `stopped`.
pub fn parse_stopped_counters(log: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Some(line) = log
        .lines()
        .rev()
        .find(|l| crate::text::contains_word(l, "stopped"))
    else {
        return out;
    };
    for word in line.split(|c: char| c.is_whitespace() || c == ',') {
        if let Some((k, v)) = word.split_once('=') {
            let v = v.trim_matches(|c: char| !c.is_ascii_digit());
            if let Ok(n) = v.parse() {
                out.insert(k.to_string(), n);
            }
        }
    }
    out
}

impl Meshd {
    /// Starts `node` of `files` in `ns` and waits for `ready`; panics with the log on failure.
    pub fn start(ns: &Netns, files: &MeshFiles, node: &str) -> Meshd {
        Self::start_with(ns, files, node, MeshdOpts::default())
    }

    pub fn start_with(ns: &Netns, files: &MeshFiles, node: &str, opts: MeshdOpts) -> Meshd {
        let mut m = Self::spawn(ns, files, node, &opts);
        if let Err(e) = m.daemon.wait_for_word("ready", opts.ready_timeout) {
            panic!("{e}");
        }
        m
    }

    /// Starts meshd without waiting for `ready`.
    pub fn spawn(ns: &Netns, files: &MeshFiles, node: &str, opts: &MeshdOpts) -> Meshd {
        let config = files.config.to_string_lossy().into_owned();
        let key = files.key_path(node).to_string_lossy().into_owned();
        let bin = opts.bin.clone().unwrap_or_else(meshd_bin);
        let mut cmd = meshd_command_as(
            ns,
            &bin,
            &["run", "--config", &config, "--private-key", &key],
            opts.private_run,
            opts.user,
        );
        cmd.env("MESHD_LOG", &opts.log_level);
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        let log = files.dir.join(&format!("meshd-{node}-{}.log", unique_id()));
        if opts.journal {
            // Created here to learn its inode; Daemon::spawn truncates the same file.
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::File::create(&log).and_then(|f| f.metadata());
            let meta = meta.expect("create the node's log file");
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        let daemon = Daemon::spawn(&format!("meshd {node} ({})", ns.name()), cmd, &log);
        Meshd {
            node: node.to_string(),
            iface: files.iface.clone(),
            ns_name: ns.name().to_string(),
            daemon,
        }
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }

    pub fn daemon(&mut self) -> &mut Daemon {
        &mut self.daemon
    }

    /// Waits until the log has a line containing `s`.
    pub fn wait_for_log(&mut self, s: &str, timeout: Duration) -> Result<(), String> {
        let needle = s.to_string();
        self.daemon
            .wait_for_line(&format!("`{s}`"), timeout, move |l| l.contains(&needle))
    }

    /// Runs a command in this node's network and mount namespaces (so it sees the node's private
    /// `/run`, e.g. `wg show meshd0` or `meshd peers`).
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        let pid = self.pid().to_string();
        crate::command::output(
            Command::new("nsenter")
                .args(["-t", &pid, "-m", "-n", "--"])
                .args(args),
        )
    }

    /// SIGTERM, wait (15 s) for the exit, parse the `stopped` counters.
    pub fn stop(self) -> MeshdStopped {
        let Meshd {
            node,
            iface,
            ns_name,
            daemon,
        } = self;
        let stopped = daemon.stop(Duration::from_secs(15));
        let counters = parse_stopped_counters(&stopped.log);
        let device_left = crate::command::output(
            Command::new("ip").args(["-n", &ns_name, "link", "show", &iface]),
        )
        .status
        .success();
        MeshdStopped {
            node,
            stopped,
            counters,
            device_left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stopped_line() {
        let log = "2024 INFO meshd: ready\n2024 INFO meshd: stopped dropped_no_route=3 \
                   dropped_allowed_ips=5 dropped_decrypt=0 dropped_malformed=1, dropped_unknown_peer=2\n";
        let c = parse_stopped_counters(log);
        assert_eq!(c.get("dropped_no_route"), Some(&3));
        assert_eq!(c.get("dropped_allowed_ips"), Some(&5));
        assert_eq!(c.get("dropped_malformed"), Some(&1));
        assert_eq!(c.get("dropped_unknown_peer"), Some(&2));
        assert!(parse_stopped_counters("INFO meshd: ready").is_empty());
    }

    #[test]
    fn yaml_is_block_style_with_one_key_per_line() {
        let mut m = MeshSpec::new();
        m.node_with_key(
            "a",
            Key {
                private: "p".into(),
                public: "PUBA".into(),
            },
            "10.100.0.1/24",
            Some("192.0.2.1:51820"),
        );
        m.node_with_key(
            "b",
            Key {
                private: "q".into(),
                public: "PUBB".into(),
            },
            "10.100.0.2/24",
            None,
        );
        m.rule_both("a", "b", &["any"]);
        let y = m.to_yaml();
        assert!(y.contains("  - name: a\n    public_key: \"PUBA\"\n    address: 10.100.0.1/24\n    endpoint: \"192.0.2.1:51820\"\n"));
        assert!(y.contains("  - from: b\n    to: a\n    allow: [any]\n"));
        assert_eq!(line_of(&y, "name: b"), line_of(&y, "PUBB") - 1);
    }
}
