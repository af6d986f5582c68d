//! The UDP sockets: one listening socket per address family on `listen_port`, and the
//! [`OffloadSocket`] that each socket (listening or connected to a peer) is.
//!
//! - Segmentation offload through quinn-udp where the kernel has it: one `sendmsg` carries a
//!   run of equal-sized datagrams (UDP GSO), one `recvmmsg` returns what the kernel coalesced
//!   (UDP GRO). `MESHD_UDP_OFFLOAD=off`, or an old kernel: a system call per datagram.
//! - Non-blocking; the data thread waits for them with `epoll`.
//! - Sockets connected to peers (`peer_sockets.rs`) share the port through `SO_REUSEPORT`; the
//!   listening sockets bind without it, so anything already on the port makes the bind fail.

use super::poller::writable;
use super::socket_filter::{self, Refused};
use anyhow::{Context, Result};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, ErrorKind, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Kernel socket buffers: big enough that a burst of a few thousand datagrams does not drop.
const SOCKET_BUFFER: usize = 4 << 20;
/// How long a send waits for room in a full socket buffer.
const SEND_WAIT: Duration = Duration::from_millis(200);

/// `setsockopt` of one int-valued option (the ones socket2 has no setter for).
fn set_int(
    socket: &impl std::os::fd::AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid fd, and a pointer/length pair to a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn force_buffer(socket: &Socket, option: libc::c_int) -> io::Result<()> {
    set_int(
        socket,
        libc::SOL_SOCKET,
        option,
        SOCKET_BUFFER as libc::c_int,
    )
}

/// A non-blocking UDP socket with big buffers and the WireGuard filter (`socket_filter.rs`),
/// IPv6 only for an IPv6 address, not bound yet.
fn new_socket(addr: SocketAddr) -> io::Result<Socket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // With CAP_NET_ADMIN the *FORCE options lift net.core.{r,w}mem_max; otherwise take what
    // the sysctl allows.
    if force_buffer(&socket, libc::SO_RCVBUFFORCE).is_err() {
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    }
    if force_buffer(&socket, libc::SO_SNDBUFFORCE).is_err() {
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    }
    socket.set_nonblocking(true)?;
    if let Err(e) = socket_filter::attach(&socket) {
        tracing::warn!("no socket filter on the UDP socket, garbage reaches meshd: {e}");
    }
    Ok(socket)
}

/// A listening socket on `addr`. It is bound alone, so that a port in use (another meshd on
/// it, say) is an error, then lets the connected sockets join it on the same port.
fn bind(addr: SocketAddr) -> Result<UdpSocket> {
    let socket = new_socket(addr)?;
    socket.bind(&addr.into())?;
    socket
        .set_reuse_port(true)
        .context("cannot set SO_REUSEPORT")?;
    Ok(socket.into())
}

/// Lets the kernel fragment a datagram larger than the path MTU, as WireGuard does:
/// quinn-udp sets "don't fragment" for QUIC's path-MTU probing, which meshd does not do.
/// (IPv6 needs both options: IPV6_DONTFRAG forbids fragmenting whatever the MTU discovery
/// mode says.)
fn allow_fragmentation(socket: &UdpSocket, v6: bool) {
    let options = if v6 {
        &[
            (
                libc::IPPROTO_IPV6,
                libc::IPV6_MTU_DISCOVER,
                libc::IPV6_PMTUDISC_DONT,
            ),
            (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 0),
        ][..]
    } else {
        &[(
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        )][..]
    };
    for &(level, name, value) in options {
        if let Err(e) = set_int(socket, level, name, value) {
            tracing::debug!("setsockopt({level}, {name}): {e}");
        }
    }
}

/// quinn-udp's state for `socket` (which turns GSO and GRO on), with fragmentation allowed
/// again (see [`allow_fragmentation`]).
fn offload_state(socket: &UdpSocket, v6: bool) -> io::Result<UdpSocketState> {
    let state = UdpSocketState::new(socket.into())?;
    allow_fragmentation(socket, v6);
    Ok(state)
}

/// One bound socket, with quinn-udp's state when segmentation offload is in use.
pub(crate) struct OffloadSocket {
    pub(crate) socket: UdpSocket,
    offload: Option<UdpSocketState>,
    /// The smallest segment size a GSO send was refused for (the path MTU is smaller than
    /// segment plus headers, so only fragmentation gets it through): runs of datagrams this
    /// big or bigger go one by one from then on.
    /// Shared by a listening socket and the connected ones of its family.
    gso_refused: Arc<AtomicUsize>,
    /// The address a connected socket is connected to, and its source address.
    peer: Option<SocketAddr>,
    local: Option<IpAddr>,
}

impl OffloadSocket {
    /// A socket on `port` connected to `to`: the kernel gives it what `to` sends to the port,
    /// and sends through it take the route found at connect time. It has offload if
    /// `listening` (of `to`'s family) has, and shares what that one learns of GSO refusals.
    pub(crate) fn connected(
        port: u16,
        to: SocketAddr,
        listening: &OffloadSocket,
    ) -> io::Result<Self> {
        let local = match to {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
        };
        let socket = new_socket(local)?;
        socket.set_reuse_port(true)?;
        socket.bind(&local.into())?;
        socket.connect(&to.into())?;
        let socket: UdpSocket = socket.into();
        let offload = match listening.offload {
            Some(_) => Some(offload_state(&socket, to.is_ipv6())?),
            None => None,
        };
        let local = socket.local_addr().ok().map(|a| a.ip());
        Ok(Self {
            socket,
            offload,
            gso_refused: Arc::clone(&listening.gso_refused),
            peer: Some(to),
            local,
        })
    }

    fn new(socket: UdpSocket, want_offload: bool, v6: bool) -> Self {
        let offload = if want_offload {
            match offload_state(&socket, v6) {
                Ok(state) => Some(state),
                Err(e) => {
                    tracing::warn!("UDP offload unavailable ({e}): one datagram per system call");
                    None
                }
            }
        } else {
            None
        };
        Self {
            socket,
            offload,
            gso_refused: Arc::new(AtomicUsize::new(usize::MAX)),
            peer: None,
            local: None,
        }
    }

    /// The address a connected socket is connected to.
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The source address a connected socket sends from.
    pub(crate) fn local_ip(&self) -> Option<IpAddr> {
        self.local
    }

    /// Datagrams of `segment` bytes one send may carry.
    pub(crate) fn gso_segments_for(&self, segment: usize) -> usize {
        if segment >= self.gso_refused.load(Ordering::Relaxed) {
            1
        } else {
            self.gso_segments()
        }
    }

    /// A GSO send of `segment`-byte datagrams failed: send such runs one by one from now on
    /// (logged once per size).
    pub(crate) fn refuse_gso(&self, segment: usize, why: &io::Error) {
        if self.gso_refused.fetch_min(segment, Ordering::Relaxed) > segment {
            tracing::warn!(
                "UDP GSO refused for {segment}-byte datagrams ({why}): sending them one by one \
                 (is the underlay MTU smaller than the device MTU + 80?)"
            );
        }
    }

    /// Datagrams one send may carry (1 without GSO).
    pub(crate) fn gso_segments(&self) -> usize {
        self.offload
            .as_ref()
            .map_or(1, UdpSocketState::max_gso_segments)
    }

    /// Datagrams the kernel may coalesce into one receive buffer (1 without GRO).
    pub(crate) fn gro_segments(&self) -> usize {
        self.offload
            .as_ref()
            .map_or(1, UdpSocketState::gro_segments)
    }

    /// Sends `contents` to `to`: one datagram, or (`segment` set, GSO) datagrams of `segment`
    /// bytes back to back, the last one possibly shorter. Waits while the socket's buffer is
    /// full (at most SEND_WAIT). On a connected socket, `to` must be its peer: a lone datagram
    /// goes without an address, to use the route the socket keeps.
    pub(crate) fn send(
        &self,
        to: SocketAddr,
        contents: &[u8],
        segment: Option<usize>,
    ) -> io::Result<()> {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        loop {
            let sent = match (&self.offload, segment) {
                // A GSO train goes through quinn-udp. A lone datagram goes by plain `sendto`:
                // quinn-udp's `sendmsg` carries an IP_TOS control message on every send, and
                // a lone ping's round trip measured 16 µs less without (docs/performance.md).
                (Some(state), Some(_)) => state.try_send((&self.socket).into(), &transmit),
                _ if self.peer == Some(to) => self.socket.send(contents).map(|_| ()),
                _ => self.socket.send_to(contents, to).map(|_| ()),
            };
            match sent {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // The socket's buffer is full: wait for room, but not for ever, since the
                    // one data-path thread waits with it. Past that the datagram is lost, as
                    // one the kernel refuses would be.
                    if !writable(&self.socket, SEND_WAIT)? {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    /// Receives what is ready into `bufs` (several datagrams each, with GRO: `meta[i].stride`
    /// apart) and returns how many buffers were filled; `WouldBlock` if nothing was. Without
    /// offload, one datagram per buffer.
    pub(crate) fn try_recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        match &self.offload {
            Some(state) => state.recv((&self.socket).into(), bufs, meta),
            None => self.recv_one_by_one(bufs, meta),
        }
    }

    fn recv_one_by_one(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let one = |(n, addr)| RecvMeta {
            addr,
            len: n,
            stride: n,
            ecn: None,
            dst_ip: None,
        };
        let mut filled = 0;
        for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()) {
            match self.socket.recv_from(buf) {
                Ok(got) => *m = one(got),
                Err(e) if filled == 0 => return Err(e),
                Err(_) => break, // WouldBlock, or an error the next receive reports
            }
            filled += 1;
        }
        Ok(filled)
    }
}

/// The IPv4 and IPv6 sockets. IPv6 is optional (a host may have it disabled); IPv4 is not.
pub(crate) struct ListeningSockets {
    pub(crate) v4: OffloadSocket,
    pub(crate) v6: Option<OffloadSocket>,
    pub(crate) port: u16,
    /// What the listening sockets' filters drop besides what cannot be WireGuard.
    refused: Mutex<Refused>,
}

impl ListeningSockets {
    pub(crate) fn bind(port: u16, offload: bool) -> Result<Self> {
        let v4 = bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .with_context(|| format!("cannot listen on udp/{port} (IPv4)"))?;
        let v6 = match bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
            Ok(s) => Some(OffloadSocket::new(s, offload, true)),
            Err(e) => {
                tracing::warn!("no IPv6 endpoint on udp/{port}: {e:#}");
                None
            }
        };
        Ok(Self {
            v4: OffloadSocket::new(v4, offload, false),
            v6,
            port,
            refused: Mutex::default(),
        })
    }

    /// Changes what the listening sockets' filters refuse, and re-attaches them if it changed.
    pub(crate) fn refuse(&self, change: impl FnOnce(&mut Refused)) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = refused.clone();
        change(&mut next);
        if next == *refused {
            return;
        }
        let listening =
            std::iter::once((&self.v4, false)).chain(self.v6.as_ref().map(|s| (s, true)));
        let mut attached = true;
        for (endpoint, v6) in listening {
            if let Err(e) = socket_filter::attach_refusing(&endpoint.socket, &next, v6) {
                tracing::warn!("cannot update the socket filter: {e}");
                attached = false;
            }
        }
        // Kept only once in force, so that the next change tries again.
        if attached {
            *refused = next;
        }
    }

    pub(crate) fn for_addr(&self, addr: &SocketAddr) -> Option<&OffloadSocket> {
        match addr {
            SocketAddr::V4(_) => Some(&self.v4),
            SocketAddr::V6(_) => self.v6.as_ref(),
        }
    }
}
