//! A wireguard-go peer in a namespace: the reference implementation meshd must interoperate with.
//!
//! wireguard-go's UAPI socket lives in the shared `/var/run/wireguard/IFACE.sock`, so every
//! instance gets an interface name unique to this test run: `wgt<pid>x<n>` (at most 15 bytes).

use crate::mesh::Key;
use crate::netns::Netns;
use crate::process::Daemon;
use crate::setup::{unique_id, wait_until, TempDir};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug)]
pub struct WgGo {
    ns_name: String,
    iface: String,
    key: Key,
    port: u16,
    // Field order matters for drop: the daemon stops before its temp dir goes.
    daemon: Daemon,
    dir: TempDir,
}

impl WgGo {
    /// Starts `wireguard-go -f IFACE` in `ns`, sets its key and listen port. The interface is not
    /// up and has no address yet (see [`WgGo::add_addr`], [`WgGo::up`]).
    pub fn start(ns: &Netns, key: &Key, listen_port: u16) -> WgGo {
        let iface = format!("wgt{}", unique_id());
        assert!(iface.len() <= 15, "interface name {iface} too long");
        let dir = TempDir::new();
        let mut cmd = ns.cmd("wireguard-go");
        cmd.args(["-f", &iface])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .env("LOG_LEVEL", "debug");
        let log = dir.join("wireguard-go.log");
        let mut daemon = Daemon::spawn(&format!("wireguard-go {iface} ({})", ns.name()), cmd, &log);
        let sock = socket_path(&iface);
        let ready = wait_until(Duration::from_secs(10), || {
            !daemon.is_running() || (sock.exists() && ns.link_exists(&iface))
        });
        if !ready || !daemon.is_running() {
            panic!(
                "wireguard-go {iface} did not come up in {}; its log:\n{}",
                ns.name(),
                daemon.log()
            );
        }
        let wg = WgGo {
            ns_name: ns.name().to_string(),
            iface,
            key: key.clone(),
            port: listen_port,
            daemon,
            dir,
        };
        let key_path = wg.dir.join("private.key");
        key.write_private(&key_path, 0o600);
        let port = listen_port.to_string();
        wg.wg(&[
            "set",
            &wg.iface,
            "private-key",
            &key_path.to_string_lossy(),
            "listen-port",
            &port,
        ]);
        wg
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }

    fn netns_cmd(&self, program: &str) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.ns_name, program]);
        c
    }

    /// `wg ARGS` inside the namespace; must succeed.
    pub fn wg(&self, args: &[&str]) -> String {
        crate::command::run_ok(self.netns_cmd("wg").args(args))
    }

    /// Adds (or updates) a peer.
    pub fn set_peer(
        &self,
        public: &str,
        endpoint: Option<SocketAddr>,
        allowed_ips: &[&str],
        keepalive: Option<u16>,
    ) {
        let mut args: Vec<String> = vec![
            "set".into(),
            self.iface.clone(),
            "peer".into(),
            public.into(),
            "allowed-ips".into(),
            allowed_ips.join(","),
        ];
        if let Some(e) = endpoint {
            args.push("endpoint".into());
            args.push(e.to_string());
        }
        if let Some(k) = keepalive {
            args.push("persistent-keepalive".into());
            args.push(k.to_string());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.wg(&refs);
    }

    /// Adds an address (CIDR) to the interface (`nodad` for IPv6).
    pub fn add_addr(&self, ns: &Netns, cidr: &str) {
        ns.add_addr(&self.iface, cidr);
    }

    /// Brings the interface up.
    pub fn up(&self, ns: &Netns) {
        ns.link_up(&self.iface);
    }

    /// `wg show IFACE dump`.
    pub fn dump(&self) -> String {
        self.wg(&["show", &self.iface, "dump"])
    }

    /// Latest handshake (Unix seconds, 0 = never) with the peer `public`.
    pub fn latest_handshake(&self, public: &str) -> u64 {
        self.peer_field(public, 4)
    }

    /// Bytes received from / sent to the peer `public`.
    pub fn transfer(&self, public: &str) -> (u64, u64) {
        (self.peer_field(public, 5), self.peer_field(public, 6))
    }

    /// The peer's current endpoint as wireguard-go sees it (`(none)` if unknown).
    pub fn endpoint(&self, public: &str) -> String {
        let dump = self.dump();
        dump.lines()
            .skip(1)
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&public))
            .and_then(|f| f.get(2).map(|s| s.to_string()))
            .unwrap_or_default()
    }

    fn peer_field(&self, public: &str, idx: usize) -> u64 {
        let dump = self.dump();
        let row = dump
            .lines()
            .skip(1)
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&public));
        match row.and_then(|f| f.get(idx).and_then(|v| v.parse().ok())) {
            Some(v) => v,
            None => panic!("no peer {public} (field {idx}) in `wg show dump`:\n{dump}"),
        }
    }
}

/// wireguard-go's UAPI socket for `iface`.
pub fn socket_path(iface: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/wireguard/{iface}.sock"))
}

impl Drop for WgGo {
    fn drop(&mut self) {
        // Stop it now (SIGTERM, then SIGKILL) rather than in the field drop, so that the socket
        // can be removed afterwards. The name is unique to this run: no one else's socket.
        if self.daemon.is_running() {
            self.daemon.signal(libc::SIGTERM);
            if self.daemon.wait_exit(Duration::from_secs(3)).is_none() {
                self.daemon.signal(libc::SIGKILL);
                let _ = self.daemon.wait_exit(Duration::from_secs(5));
            }
        }
        let _ = std::fs::remove_file(socket_path(&self.iface));
    }
}
