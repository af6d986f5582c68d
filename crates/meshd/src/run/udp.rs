//! The UDP endpoint: one socket per address family on `listen_port`.

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

/// Kernel socket buffers: big enough that a burst of a few thousand datagrams does not drop.
const SOCKET_BUFFER: usize = 4 << 20;

fn force_buffer(socket: &Socket, option: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let size = SOCKET_BUFFER as libc::c_int;
    // SAFETY: a valid fd, and a pointer/length pair to a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn bind(addr: SocketAddr) -> Result<UdpSocket> {
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
    socket.bind(&addr.into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}

/// The IPv4 and IPv6 sockets. IPv6 is optional (a host may have it disabled); IPv4 is not.
pub(crate) struct Sockets {
    pub(crate) v4: UdpSocket,
    pub(crate) v6: Option<UdpSocket>,
}

impl Sockets {
    pub(crate) fn bind(port: u16) -> Result<Self> {
        let v4 = bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
            .with_context(|| format!("cannot listen on udp/{port} (IPv4)"))?;
        let v6 = match bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("no IPv6 endpoint on udp/{port}: {e:#}");
                None
            }
        };
        Ok(Self { v4, v6 })
    }

    pub(crate) fn for_addr(&self, addr: &SocketAddr) -> Option<&UdpSocket> {
        match addr {
            SocketAddr::V4(_) => Some(&self.v4),
            SocketAddr::V6(_) => self.v6.as_ref(),
        }
    }
}
