//! UDP → decrypt → TUN: receiving datagrams (GRO trains included) and writing what the core
//! opens to the device; handshake messages go to the handshake worker.

use super::peer_sockets::PeerSockets;
use super::udp::OffloadSocket;
use super::{DataPlane, BATCH};
use meshd_core::node::{Batch, HandshakeWork, Node, MAX_DATAGRAM};
use quinn_udp::RecvMeta;
use std::io::{ErrorKind, IoSliceMut};
use std::net::SocketAddr;
use std::time::Instant;
use tun_rs::{GROTable, VIRTIO_NET_HDR_LEN};

/// Receive buffers per UDP read (recvmmsg), each big enough for one GRO train.
const RECV_BUFS: usize = 16;
const RECV_BUF: usize = 65_536;

/// Errors of one datagram (an ICMP error reported on the socket), not of the socket.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::Interrupted
    )
}

/// Writes decrypted packets to the device: one by one, or (offload) merged per flow (GRO)
/// into as few writes as possible, through `bufs` (reused; each holds a virtio header's room
/// and one packet).
struct TunWriter {
    gro: GROTable,
    bufs: Vec<Vec<u8>>,
}

impl TunWriter {
    fn new() -> Self {
        Self {
            gro: GROTable::default(),
            bufs: Vec::new(),
        }
    }

    fn write(&mut self, plane: &DataPlane, packets: &Batch) {
        if !plane.tun_offload {
            for (packet, _) in packets {
                if let Err(e) = plane.device.send(packet) {
                    tracing::debug!("tun write: {e}");
                }
            }
            return;
        }
        if packets.is_empty() {
            return;
        }
        if self.bufs.len() < packets.len() {
            // GRO appends a flow's packets to its first buffer only within that buffer's
            // capacity: give every buffer room for a whole 64 KiB segment up front (pages
            // are only backed once written).
            self.bufs.resize_with(packets.len(), || {
                Vec::with_capacity(2 * VIRTIO_NET_HDR_LEN + 65_535)
            });
        }
        for (buf, (packet, _)) in self.bufs.iter_mut().zip(packets) {
            buf.clear();
            buf.resize(VIRTIO_NET_HDR_LEN, 0);
            buf.extend_from_slice(packet);
        }
        let bufs = &mut self.bufs[..packets.len()];
        if let Err(e) = plane
            .device
            .send_multiple(&mut self.gro, bufs, VIRTIO_NET_HDR_LEN)
        {
            tracing::debug!("tun write: {e}");
        }
    }
}

/// Reading one UDP socket: the buffers of one receive and what it becomes.
pub(super) struct UdpReader {
    /// RECV_BUFS buffers of RECV_BUF bytes. With GRO a buffer holds a train of datagrams;
    /// without, one datagram, which may be larger than our own MTU allows: receive whatever
    /// UDP can carry rather than truncate it into a decryption failure. (Pages are only
    /// backed once written.)
    storage: Vec<u8>,
    meta: Vec<RecvMeta>,
    /// Where each datagram lies: (offset, length, sender).
    spans: Vec<(usize, usize, SocketAddr)>,
    to_tun: Batch,
    /// Handshake messages set aside for the handshake worker.
    work: HandshakeWork,
    writer: TunWriter,
}

impl UdpReader {
    pub(super) fn new() -> Self {
        Self {
            storage: vec![0u8; RECV_BUFS * RECV_BUF],
            meta: vec![RecvMeta::default(); RECV_BUFS],
            spans: Vec::with_capacity(BATCH),
            to_tun: Batch::new(BATCH, MAX_DATAGRAM),
            work: HandshakeWork::default(),
            writer: TunWriter::new(),
        }
    }

    /// One receive from `endpoint` without waiting (one `recvmmsg`: up to RECV_BUFS buffers,
    /// each a GRO train of datagrams): decrypts what came on `node` and writes the packets to
    /// the device; handshake messages go to the handshake worker.
    pub(super) fn read_batch(
        &mut self,
        plane: &DataPlane,
        node: &Node,
        endpoint: &OffloadSocket,
        links: &mut PeerSockets,
    ) -> std::io::Result<()> {
        let filled = {
            // On the stack: a receive allocates nothing.
            let mut chunks = self.storage.chunks_mut(RECV_BUF);
            let mut slices: [IoSliceMut<'_>; RECV_BUFS] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            match endpoint.try_recv(&mut slices, &mut self.meta) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // Woken with nothing to read: clear a pending socket error, which `epoll`
                    // would otherwise report again at once.
                    if let Ok(Some(e)) = endpoint.socket.take_error() {
                        tracing::debug!("udp socket error: {e}");
                    }
                    return Ok(());
                }
                Err(e) if transient(&e) => {
                    tracing::debug!("udp receive: {e}");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        };
        if endpoint.peer().is_none() {
            // A listening socket: a peer with a connected socket sending here instead is
            // sending to another of this host's addresses.
            for m in &self.meta[..filled] {
                links.saw_on_listening(m.addr, m.dst_ip);
            }
        }
        // A GRO buffer holds datagrams `stride` apart.
        self.spans.clear();
        for (i, m) in self.meta[..filled].iter().enumerate() {
            let (base, len, stride) = (i * RECV_BUF, m.len.min(RECV_BUF), m.stride.max(1));
            let mut off = 0;
            while off < len {
                self.spans.push((base + off, stride.min(len - off), m.addr));
                off += stride;
            }
        }
        // In batches, so that what one batch decrypts stays within its slots.
        for chunk in self.spans.chunks(BATCH) {
            self.to_tun.clear();
            self.work.clear();
            let datagrams = chunk
                .iter()
                .map(|&(at, len, from)| (&self.storage[at..at + len], from));
            node.handle_datagrams(Instant::now(), datagrams, &mut self.to_tun, &mut self.work);
            self.writer.write(plane, &self.to_tun);
            plane.handshakes.push(&self.work, node.drops());
        }
        Ok(())
    }
}
