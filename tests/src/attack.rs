//! A WireGuard attacker: floods a node's UDP port with what the internet can send it.
//!
//! - [`noise`]: handshake initiations (mac1, mac2) and cookie replies, built by hand.
//! - [`flood`]: the paced send loop and its [`Summary`]; the `meshd-attacker` binary runs it.
//! - [`Attacker`]: that binary in a namespace, as a background [`Daemon`] of a test.

pub mod flood;
pub mod noise;

pub use flood::{FloodConfig, Kind, Summary};

use crate::mesh::Key;
use crate::netns::Netns;
use crate::process::Daemon;
use crate::setup::TempDir;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

static ATTACKER_BIN: OnceLock<PathBuf> = OnceLock::new();

/// Names the `meshd-attacker` binary; an e2e test passes
/// `env!("CARGO_BIN_EXE_meshd-attacker")`, which cargo builds for it.
pub fn use_attacker_bin(path: &str) {
    let _ = ATTACKER_BIN.set(PathBuf::from(path));
}

/// The `meshd-attacker` binary: `$MESHD_ATTACKER_BIN`, else the one given to
/// [`use_attacker_bin`], else next to the running test executable (`<target>/<profile>/`, the
/// test being in its `deps/`).
pub fn attacker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MESHD_ATTACKER_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "MESHD_ATTACKER_BIN={} is not a file",
            p.display()
        );
        return p;
    }
    if let Some(p) = ATTACKER_BIN.get() {
        return p.clone();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let near: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("meshd-attacker"))
        .collect();
    match near.iter().find(|p| p.is_file()) {
        Some(p) => p.clone(),
        None => panic!(
            "no meshd-attacker binary: set MESHD_ATTACKER_BIN or build it with \
             `cargo build --release -p meshd-e2e --bin meshd-attacker` (looked at {near:?})"
        ),
    }
}

/// One flood to start in a namespace.
#[derive(Debug, Clone)]
pub struct AttackOpts {
    pub target: SocketAddr,
    /// The target's public key, base64.
    pub responder_key: String,
    pub kind: Kind,
    /// Datagrams per second; 0 = as fast as possible.
    pub rate: u64,
    pub secs: f64,
    /// For `impersonate`: the public key (base64) to claim.
    pub claim: Option<String>,
    /// Answer cookies with a valid mac2 (always on for `init-mac2`).
    pub mac2: bool,
    pub bind: Option<SocketAddr>,
}

impl AttackOpts {
    pub fn new(target: SocketAddr, responder_key: &Key, kind: Kind, rate: u64, secs: f64) -> Self {
        AttackOpts {
            target,
            responder_key: responder_key.public.clone(),
            kind,
            rate,
            secs,
            claim: None,
            mac2: false,
            bind: None,
        }
    }

    /// The command line of `meshd-attacker` for this flood (with `--json`).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--target".into(),
            self.target.to_string(),
            "--responder-key".into(),
            self.responder_key.clone(),
            "--kind".into(),
            self.kind.as_str().into(),
            "--rate".into(),
            self.rate.to_string(),
            "--secs".into(),
            self.secs.to_string(),
            "--json".into(),
        ];
        if let Some(c) = &self.claim {
            a.extend(["--claim".into(), c.clone()]);
        }
        if self.mac2 {
            a.push("--mac2".into());
        }
        if let Some(b) = self.bind {
            a.extend(["--bind".into(), b.to_string()]);
        }
        a
    }
}

/// A running `meshd-attacker`; killed on drop.
#[derive(Debug)]
pub struct Attacker {
    // Field order matters for drop: the process stops before its log's dir goes.
    daemon: Daemon,
    _dir: TempDir,
}

impl Attacker {
    /// Floods `target` from `ns` with `kind` at `rate` datagrams a second for `secs`.
    pub fn spawn(
        ns: &Netns,
        target: SocketAddr,
        responder_key: &Key,
        kind: Kind,
        rate: u64,
        secs: f64,
    ) -> Attacker {
        Attacker::spawn_with(
            ns,
            &AttackOpts::new(target, responder_key, kind, rate, secs),
        )
    }

    pub fn spawn_with(ns: &Netns, opts: &AttackOpts) -> Attacker {
        let dir = TempDir::new();
        let mut cmd = ns.cmd(&attacker_bin().to_string_lossy());
        cmd.args(opts.args());
        let label = format!("meshd-attacker {} ({})", opts.kind.as_str(), ns.name());
        let daemon = Daemon::spawn(&label, cmd, &dir.join("attacker.log"));
        Attacker { daemon, _dir: dir }
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    /// Waits for the flood to end by itself (its `secs`, plus `grace`); its summary.
    pub fn wait(mut self, grace: Duration) -> Summary {
        if self.daemon.wait_exit(grace).is_none() {
            panic!(
                "{} still running after its time; its log:\n{}",
                self.daemon.label(),
                self.daemon.log()
            );
        }
        self.summary()
    }

    /// Stops the flood now (SIGTERM: it prints its summary and exits); its summary.
    pub fn stop(mut self) -> Summary {
        self.daemon.signal(libc::SIGTERM);
        if self.daemon.wait_exit(Duration::from_secs(5)).is_none() {
            panic!("{} ignored SIGTERM", self.daemon.label());
        }
        self.summary()
    }

    /// The JSON summary the attacker printed last (it has exited).
    fn summary(&mut self) -> Summary {
        let log = self.daemon.log();
        let status = self.daemon.try_status();
        let parsed = log
            .lines()
            .rev()
            .filter(|l| l.starts_with('{'))
            .find_map(|l| serde_json::from_str(l).ok())
            .and_then(|v| Summary::from_json(&v));
        match parsed {
            Some(s) if status.is_some_and(|st| st.success()) => s,
            _ => panic!(
                "{} exited ({status:?}) without a summary; its log:\n{log}",
                self.daemon.label()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::flood::run;
    use super::noise::{initiation, set_macs, Initiator, Responder, MSG_RESPONSE};
    use super::*;
    use boringtun::noise::errors::WireGuardError;
    use boringtun::noise::handshake::parse_handshake_anon;
    use boringtun::noise::rate_limiter::RateLimiter;
    use boringtun::noise::{Packet, Tunn, TunnResult};
    use boringtun::x25519::{PublicKey, StaticSecret};
    use rand_core::OsRng;
    use std::net::{IpAddr, Ipv4Addr, UdpSocket};
    use std::sync::atomic::AtomicBool;

    const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66));

    fn responder() -> (StaticSecret, PublicKey, Responder) {
        let private = StaticSecret::random_from_rng(OsRng);
        let public = PublicKey::from(&private);
        (private, public, Responder::new(public.to_bytes()))
    }

    fn static_in(private: &StaticSecret, public: &PublicKey, msg: &[u8]) -> [u8; 32] {
        let limiter = RateLimiter::new(public, 1_000_000);
        let mut dst = [0u8; 256];
        match limiter.verify_packet(Some(FROM), msg, &mut dst) {
            Ok(Packet::HandshakeInit(init)) => match parse_handshake_anon(private, public, &init) {
                Ok(half) => half.peer_static_public,
                Err(e) => panic!("boringtun cannot open the static key: {e:?}"),
            },
            Ok(other) => panic!("not parsed as an initiation: {other:?}"),
            Err(e) => panic!("boringtun's limiter refused it: {e:?}"),
        }
    }

    #[test]
    fn init_mac1_passes_boringtun_and_gets_a_response() {
        let (private, public, resp) = responder();
        let attacker = Initiator::random();
        let attacker_public = attacker.public();
        let mut msg = initiation(&resp, &attacker);
        set_macs(&mut msg, 0x1234_5678, &resp, None);
        assert_eq!(
            static_in(&private, &public, &msg),
            attacker_public.to_bytes()
        );

        // A responder that peers with the attacker's key completes the handshake.
        let mut tunn = Tunn::new(private.clone(), attacker_public, None, None, 1, None);
        let mut dst = [0u8; 256];
        match tunn.decapsulate(Some(FROM), &msg, &mut dst) {
            TunnResult::WriteToNetwork(reply) => {
                assert_eq!(
                    reply[0], MSG_RESPONSE,
                    "not a handshake response: {reply:?}"
                );
                assert_eq!(
                    &reply[8..12],
                    &0x1234_5678u32.to_le_bytes(),
                    "receiver index"
                );
            }
            other => panic!("no handshake response: {other:?}"),
        }

        // A flipped bit in the body breaks mac1: the test can fail.
        let mut bad = msg;
        bad[50] ^= 1;
        let limiter = RateLimiter::new(&public, 1_000_000);
        assert!(matches!(
            limiter.verify_packet(Some(FROM), &bad, &mut dst),
            Err(TunnResult::Err(WireGuardError::InvalidMac))
        ));
    }

    #[test]
    fn impersonation_claims_the_key_but_fails_the_timestamp() {
        let (private, public, resp) = responder();
        let victim = PublicKey::from(&StaticSecret::random_from_rng(OsRng));
        let mut msg = initiation(&resp, &Initiator::Claimed(victim));
        set_macs(&mut msg, 7, &resp, None);
        assert_eq!(static_in(&private, &public, &msg), victim.to_bytes());

        let mut tunn = Tunn::new(private, victim, None, None, 1, None);
        let mut dst = [0u8; 256];
        match tunn.decapsulate(Some(FROM), &msg, &mut dst) {
            TunnResult::Err(WireGuardError::InvalidAeadTag) => {}
            other => panic!("expected InvalidAeadTag, got {other:?}"),
        }
    }

    #[test]
    fn cookie_from_boringtun_opens_and_its_mac2_passes() {
        let (_, public, resp) = responder();
        let limiter = RateLimiter::new(&public, 0); // always under load
        let mut msg = initiation(&resp, &Initiator::random());
        let mac1 = set_macs(&mut msg, 42, &resp, None);
        let mut dst = [0u8; 256];
        let reply = match limiter.verify_packet(Some(FROM), &msg, &mut dst) {
            Err(TunnResult::WriteToNetwork(reply)) => reply.to_vec(),
            other => panic!("expected a cookie reply, got {other:?}"),
        };
        assert_eq!(&reply[4..8], &42u32.to_le_bytes());
        // Bound to the mac1 it answers.
        let mut other_mac1 = mac1;
        other_mac1[0] ^= 1;
        assert!(resp.open_cookie(&reply, &other_mac1).is_err());
        let cookie = match resp.open_cookie(&reply, &mac1) {
            Ok(c) => c,
            Err(e) => panic!("cannot open boringtun's cookie reply: {e}"),
        };

        set_macs(&mut msg, 43, &resp, Some(&cookie));
        assert!(
            matches!(
                limiter.verify_packet(Some(FROM), &msg, &mut dst),
                Ok(Packet::HandshakeInit(_))
            ),
            "boringtun refused the mac2"
        );
        // The cookie is bound to the source address.
        assert!(matches!(
            limiter.verify_packet(
                Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 67))),
                &msg,
                &mut dst
            ),
            Err(TunnResult::WriteToNetwork(_))
        ));
    }

    /// The whole loop over loopback: a responder thread answering with boringtun's cookies.
    #[test]
    fn flood_uses_cookies_from_a_loaded_responder() {
        let (_, public, _) = responder();
        let server = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        server
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("set a read timeout");
        let target = server.local_addr().unwrap();
        let stop = AtomicBool::new(false);
        let cfg = FloodConfig {
            target,
            bind: None,
            responder: public.to_bytes(),
            kind: Kind::InitMac2,
            rate: 2000,
            duration: Duration::from_millis(500),
            claim: None,
            mac2: true,
        };
        let (summary, valid_mac2) = std::thread::scope(|scope| {
            let answer = scope.spawn(|| {
                let limiter = RateLimiter::new(&public, 0);
                let (mut buf, mut dst, mut valid) = ([0u8; 2048], [0u8; 256], 0u64);
                while let Ok((n, from)) = server.recv_from(&mut buf) {
                    match limiter.verify_packet(Some(from.ip()), &buf[..n], &mut dst) {
                        Err(TunnResult::WriteToNetwork(c)) => {
                            let _ = server.send_to(c, from);
                        }
                        Ok(_) => valid += 1,
                        Err(e) => panic!("responder: {e:?}"),
                    }
                }
                valid
            });
            let s = run(&cfg, &stop).expect("flood");
            (s, answer.join().expect("responder panicked"))
        });
        assert_eq!(summary.cookies_bad, 0, "{summary:?}");
        assert!(summary.cookies_decrypted >= 1, "{summary:?}");
        assert_eq!(
            summary.cookies_used, 1,
            "one cookie while it does not rotate: {summary:?}"
        );
        assert!(summary.mac2_sent > 100, "{summary:?}");
        assert_eq!(valid_mac2, summary.mac2_sent, "{summary:?}");
        assert_eq!(summary.sent_by_kind.get("initiation"), Some(&summary.sent));
        let back = Summary::from_json(&summary.to_json());
        assert_eq!(back.as_ref(), Some(&summary));
    }
}
