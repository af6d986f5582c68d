//! A handshake storm: many real WireGuard peers (boringtun sessions in the test process, in a
//! namespace) handshaking with one node at once, as a hub's peers do when it comes back.
//!
//! - Peer `i` sends from `sources[i % sources.len()]`; peers sharing a source address share
//!   its socket, told apart by the receiver index of what comes back.
//! - A cookie reply is answered at once with the initiation again, now with mac2; an
//!   initiation without an answer is sent again after [`RETRY`].
//! - A peer is done when the response came and its first data message (a keepalive), which
//!   completes the handshake on the other side, went out.

use crate::transfer::spawn_in_netns;
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// How long an initiation waits for an answer before it is sent again.
pub const RETRY: Duration = Duration::from_secs(1);

/// What one storm did.
#[derive(Debug, Clone, Default)]
pub struct StormReport {
    /// Peers that completed their handshake.
    pub completed: usize,
    /// How long until the last of them did (`None` if not all did).
    pub all_after: Option<Duration>,
    pub initiations: u64,
    pub cookie_replies: u64,
}

struct StormPeer {
    tunn: Tunn,
    socket: usize,
    sent: Instant,
    done: bool,
}

/// Runs a storm from namespace `ns` against `target` (public key `target_key`) with the
/// private keys `keys`, until every peer completed or `deadline` passed.
pub fn storm(
    ns: &str,
    keys: &[[u8; 32]],
    target: SocketAddr,
    target_key: [u8; 32],
    sources: &[IpAddr],
    deadline: Duration,
) -> Result<StormReport, String> {
    let (keys, sources) = (keys.to_vec(), sources.to_vec());
    spawn_in_netns(ns, move || {
        run(&keys, target, target_key, &sources, deadline)
    })
    .join()
    .map_err(|_| "the storm thread panicked".to_string())?
}

fn run(
    keys: &[[u8; 32]],
    target: SocketAddr,
    target_key: [u8; 32],
    sources: &[IpAddr],
    deadline: Duration,
) -> Result<StormReport, String> {
    let sockets = sources
        .iter()
        .map(|&ip| {
            let s =
                UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(s)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let started = Instant::now();
    let mut report = StormReport::default();
    let mut buf = vec![0u8; 2048];
    let mut peers: Vec<StormPeer> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| StormPeer {
            tunn: Tunn::new(
                StaticSecret::from(*k),
                PublicKey::from(target_key),
                None,
                None,
                i as u32,
                None,
            ),
            socket: i % sockets.len(),
            sent: started,
            done: false,
        })
        .collect();
    // The storm: every initiation at once.
    for p in &mut peers {
        initiate(p, &sockets, target, &mut buf, &mut report)?;
    }
    let mut datagram = vec![0u8; 2048];
    while started.elapsed() < deadline && report.completed < peers.len() {
        let mut idle = true;
        for (s, socket) in sockets.iter().enumerate() {
            while let Ok((n, _)) = socket.recv_from(&mut datagram) {
                idle = false;
                let d = &datagram[..n];
                let index = match d.first() {
                    Some(2) if n >= 12 => u32::from_le_bytes([d[8], d[9], d[10], d[11]]),
                    Some(3) if n >= 8 => u32::from_le_bytes([d[4], d[5], d[6], d[7]]),
                    _ => continue,
                };
                let Some(p) = peers.get_mut((index >> 8) as usize) else {
                    continue;
                };
                if p.done || p.socket != s {
                    continue;
                }
                match p.tunn.decapsulate(None, d, &mut buf) {
                    TunnResult::WriteToNetwork(keepalive) => {
                        sockets[s]
                            .send_to(keepalive, target)
                            .map_err(|e| format!("send: {e}"))?;
                        p.done = true;
                        report.completed += 1;
                    }
                    TunnResult::Done if d[0] == 3 => {
                        report.cookie_replies += 1;
                        initiate(p, &sockets, target, &mut buf, &mut report)?;
                    }
                    _ => {}
                }
            }
        }
        let now = Instant::now();
        for p in peers.iter_mut().filter(|p| !p.done) {
            if now.duration_since(p.sent) >= RETRY {
                initiate(p, &sockets, target, &mut buf, &mut report)?;
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    if report.completed == peers.len() {
        report.all_after = Some(started.elapsed());
    }
    Ok(report)
}

/// Sends `p`'s initiation (again, with mac2 if it holds a cookie).
fn initiate(
    p: &mut StormPeer,
    sockets: &[UdpSocket],
    target: SocketAddr,
    buf: &mut [u8],
    report: &mut StormReport,
) -> Result<(), String> {
    if let TunnResult::WriteToNetwork(init) = p.tunn.format_handshake_initiation(buf, true) {
        match sockets[p.socket].send_to(init, target) {
            Ok(_) => {}
            // A full send buffer loses it, as the network would: the retry sends it again.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(format!("send: {e}")),
        }
        report.initiations += 1;
    }
    p.sent = Instant::now();
    Ok(())
}
