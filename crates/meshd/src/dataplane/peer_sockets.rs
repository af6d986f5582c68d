//! Connected sockets, one per peer endpoint the data thread sends to.
//!
//! - Why: a connected socket keeps its route, and the kernel matches what comes back to it
//!   early (early demux), skipping a route and a socket lookup each way: about 10 µs off a
//!   ping's round trip (docs/performance.md). Receiving works the same on any socket.
//! - Made the first time packets from the device go to an endpoint (one only the peer's
//!   authenticated packets move), never for an answer to a datagram: a flood of forged
//!   initiations must not churn the table.
//! - Dropped when a send fails (its source address gone, say) or the peer is seen sending to
//!   another of this host's addresses; the next send connects afresh.
//! - Bounded ([`MAX_LINKS`]): past it, the endpoint least recently sent to gives its socket up.
//! - An endpoint the kernel refuses a socket for uses the listening socket for a second, as
//!   all do with `MESHD_CONNECTED_SOCKETS=off`.

use super::udp::{ListeningSockets, OffloadSocket};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The most connected sockets one node keeps.
pub(crate) const MAX_LINKS: usize = 256;
/// How long an endpoint the kernel refused a socket for goes without one.
const RETRY: Duration = Duration::from_secs(1);

struct Link {
    to: SocketAddr,
    endpoint: Rc<OffloadSocket>,
    /// The round it was last sent through (for choosing which one to drop when full).
    used: u64,
}

pub(crate) struct PeerSockets {
    enabled: bool,
    max: usize,
    /// Sorted by address.
    links: Vec<Link>,
    /// Endpoints the kernel refused a socket for, and when (bounded like `links`).
    refused: Vec<(SocketAddr, Instant)>,
    round: u64,
    /// The set of sockets changed since `take_changed` last said so.
    changed: bool,
}

impl PeerSockets {
    pub(crate) fn new(enabled: bool) -> Self {
        Self::with_max(enabled, MAX_LINKS)
    }

    fn with_max(enabled: bool, max: usize) -> Self {
        Self {
            enabled,
            max,
            links: Vec::new(),
            refused: Vec::new(),
            round: 0,
            changed: false,
        }
    }

    /// The socket to send to `to` through, connected first (like the listening socket of its
    /// family in `sockets`) if `connect` (see the module's notes); `None`: use the listening
    /// socket.
    pub(crate) fn get(
        &mut self,
        to: SocketAddr,
        connect: bool,
        sockets: &ListeningSockets,
    ) -> Option<Rc<OffloadSocket>> {
        if !self.enabled {
            return None;
        }
        self.round += 1;
        let at = match self.links.binary_search_by(|l| l.to.cmp(&to)) {
            Ok(at) => at,
            Err(_) if !connect => return None,
            Err(at) => {
                if let Some(i) = self.refused.iter().position(|&(a, _)| a == to) {
                    if self.refused[i].1.elapsed() < RETRY {
                        return None;
                    }
                    self.refused.remove(i);
                }
                let listening = sockets.for_addr(&to)?;
                let endpoint = match OffloadSocket::connected(sockets.port, to, listening) {
                    Ok(endpoint) => Rc::new(endpoint),
                    Err(e) => {
                        tracing::debug!(%to, "no connected socket: {e}");
                        self.refuse(to);
                        return None;
                    }
                };
                let at = if self.links.len() >= self.max {
                    let oldest = (0..self.links.len()).min_by_key(|&i| self.links[i].used)?;
                    self.links.remove(oldest);
                    at - usize::from(oldest < at)
                } else {
                    at
                };
                self.links.insert(
                    at,
                    Link {
                        to,
                        endpoint,
                        used: 0,
                    },
                );
                self.changed = true;
                at
            }
        };
        let link = &mut self.links[at];
        link.used = self.round;
        Some(Rc::clone(&link.endpoint))
    }

    /// Drops the socket to `to` (its sends fail); the next send to `to` connects a new one.
    pub(crate) fn remove(&mut self, to: SocketAddr) {
        if let Ok(at) = self.links.binary_search_by(|l| l.to.cmp(&to)) {
            self.links.remove(at);
            self.changed = true;
        }
    }

    /// Drops the socket to `to` and goes without one for a while (it cannot be waited on).
    pub(crate) fn refuse(&mut self, to: SocketAddr) {
        self.remove(to);
        if self.refused.len() >= self.max {
            self.refused.remove(0);
        }
        self.refused.push((to, Instant::now()));
    }

    /// A datagram from `from` came to a listening socket, sent to `local`: if `from` has a
    /// socket whose source address is another, that address is stale (the peer answers the
    /// host's new one): drop it.
    pub(crate) fn saw_on_listening(&mut self, from: SocketAddr, local: Option<IpAddr>) {
        if self.links.is_empty() {
            return;
        }
        let Ok(at) = self.links.binary_search_by(|l| l.to.cmp(&from)) else {
            return;
        };
        let source = self.links[at].endpoint.local_ip();
        if local.is_some() && source.is_some() && local != source {
            tracing::debug!(%from, "connected socket's source address is stale");
            self.links.remove(at);
            self.changed = true;
        }
    }

    /// Whether the set of sockets changed since the last call (the epoll set must follow).
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The sockets, to wait on.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = &Rc<OffloadSocket>> {
        self.links.iter().map(|l| &l.endpoint)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.links.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, IoSliceMut};
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant};

    fn some<T>(value: Option<T>, what: &str) -> io::Result<T> {
        value.ok_or_else(|| io::Error::other(format!("no {what}")))
    }

    /// The listening sockets on a free port of loopback's.
    fn listening() -> io::Result<(ListeningSockets, u16)> {
        for _ in 0..20 {
            let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
            if let Ok(sockets) = ListeningSockets::bind(port, true) {
                return Ok((sockets, port));
            }
        }
        Err(io::Error::other("no free port"))
    }

    /// A remote end at `ip` (loopback has all of 127/8).
    fn remote(ip: [u8; 4]) -> io::Result<(UdpSocket, SocketAddr)> {
        let s = UdpSocket::bind((Ipv4Addr::from(ip), 0))?;
        let addr = s.local_addr()?;
        Ok((s, addr))
    }

    /// Waits up to a second for a datagram on `endpoint`; its payload.
    fn receive(endpoint: &OffloadSocket) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        let mut meta = [quinn_udp::RecvMeta::default()];
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            let mut bufs = [IoSliceMut::new(&mut buf)];
            if let Ok(1) = endpoint.try_recv(&mut bufs, &mut meta) {
                return Some(buf[..meta[0].len].to_vec());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// A datagram the sockets' filter lets through: a data message carrying `tag`.
    fn wg(tag: &[u8]) -> Vec<u8> {
        let mut m = vec![4, 0, 0, 0];
        m.extend_from_slice(tag);
        m.resize(m.len().max(32), 0);
        m
    }

    #[test]
    fn a_connected_socket_gets_what_its_peer_sends_and_the_listening_one_the_rest() -> io::Result<()>
    {
        let (sockets, port) = listening()?;
        let (peer, peer_addr) = remote([127, 0, 0, 2])?;
        let (other, _) = remote([127, 0, 0, 3])?;
        let mut links = PeerSockets::new(true);
        assert!(
            links.get(peer_addr, false, &sockets).is_none(),
            "connected an answer"
        );
        assert!(!links.take_changed());
        let link = some(links.get(peer_addr, true, &sockets), "connected socket")?;
        assert!(links.take_changed());
        assert!(!links.take_changed());
        assert_eq!(link.peer(), Some(peer_addr));

        link.send(peer_addr, b"out", None)?;
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf)?;
        assert_eq!(&buf[..n], b"out");
        assert_eq!(from.port(), port, "not sent from the listening port");

        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        peer.send_to(&wg(b"from the peer"), to)?;
        other.send_to(&wg(b"from another"), to)?;
        assert_eq!(receive(&link).as_deref(), Some(&wg(b"from the peer")[..]));
        assert_eq!(
            receive(&sockets.v4).as_deref(),
            Some(&wg(b"from another")[..])
        );
        assert_eq!(
            receive(&link),
            None,
            "the connected socket got another's datagram"
        );

        // The same endpoint again, for an answer too: the same socket, no change to the set.
        let again = some(links.get(peer_addr, false, &sockets), "connected socket")?;
        assert!(Rc::ptr_eq(&link, &again));
        assert!(!links.take_changed());

        links.remove(peer_addr);
        assert!(links.take_changed());
        assert_eq!(links.len(), 0);
        drop((link, again));
        peer.send_to(&wg(b"after"), to)?;
        assert_eq!(receive(&sockets.v4).as_deref(), Some(&wg(b"after")[..]));
        Ok(())
    }

    #[test]
    fn the_port_stays_refused_to_a_second_listener() -> io::Result<()> {
        let (sockets, port) = listening()?;
        let mut links = PeerSockets::new(true);
        let (_peer, peer_addr) = remote([127, 0, 0, 2])?;
        assert!(links.get(peer_addr, true, &sockets).is_some());
        assert!(
            ListeningSockets::bind(port, true).is_err(),
            "a second meshd could listen on the port"
        );
        assert!(UdpSocket::bind(("0.0.0.0", port)).is_err());
        Ok(())
    }

    #[test]
    fn past_the_bound_the_endpoint_least_recently_sent_to_gives_up_its_socket() -> io::Result<()> {
        let (sockets, _) = listening()?;
        let mut links = PeerSockets::with_max(true, 2);
        let ends = (2..5)
            .map(|i| remote([127, 0, 0, i]))
            .collect::<io::Result<Vec<_>>>()?;
        let addrs: Vec<SocketAddr> = ends.iter().map(|(_, a)| *a).collect();
        for (k, what) in [
            (0, "first"),
            (1, "second"),
            (0, "first again"),
            (2, "third"),
        ] {
            some(links.get(addrs[k], true, &sockets), what)?;
        }
        assert_eq!(links.len(), 2);
        let kept: Vec<_> = links.endpoints().map(|e| e.peer()).collect();
        assert!(kept.contains(&Some(addrs[0])) && kept.contains(&Some(addrs[2])));
        assert!(!kept.contains(&Some(addrs[1])), "{kept:?}");
        Ok(())
    }

    #[test]
    fn switched_off_or_refused_means_the_listening_socket_for_a_while() -> io::Result<()> {
        let (sockets, _) = listening()?;
        let (_peer, peer_addr) = remote([127, 0, 0, 2])?;
        let mut off = PeerSockets::new(false);
        assert!(off.get(peer_addr, true, &sockets).is_none());
        assert!(!off.take_changed());
        // A listening socket without SO_REUSEPORT: no connected socket can join its port.
        let listening = socket2::SockRef::from(&sockets.v4.socket);
        listening.set_reuse_port(false)?;
        let mut links = PeerSockets::new(true);
        assert!(links.get(peer_addr, true, &sockets).is_none());
        listening.set_reuse_port(true)?;
        assert!(
            links.get(peer_addr, true, &sockets).is_none(),
            "tried again at once"
        );
        std::thread::sleep(RETRY + Duration::from_millis(100));
        assert!(
            links.get(peer_addr, true, &sockets).is_some(),
            "never tried again"
        );
        Ok(())
    }
}
