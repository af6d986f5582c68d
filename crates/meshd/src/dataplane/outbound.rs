//! TUN → encrypt → UDP: reading the device in batches and sending what the core seals.

use super::peer_sockets::PeerSockets;
use super::send::send_all;
use super::{DataPlane, BATCH};
use meshd_core::counters::{DropReason, Side};
use meshd_core::node::{Batch, HandshakeWork, Node};
use std::io::ErrorKind;
use std::time::{Duration, Instant};
use tun_rs::VIRTIO_NET_HDR_LEN;

/// The most one TUN read can bring with offload: a 64 KiB TCP segment cut at the smallest
/// MSS the kernel uses for a 1280-byte IPv6 MTU is 55 packets; more room is drained only
/// while this much is left.
const SEGMENTS_PER_READ: usize = 64;
/// A TUN read within this long of the previous one is part of a stream: the device is read
/// until empty. The first read after a pause stops after what it got (a lone ping), sparing
/// a read that would find the device empty; `epoll` says if more is waiting.
const STREAM_GAP: Duration = Duration::from_millis(1);

/// A TUN read error that ends the data path (the device is gone), as opposed to one packet
/// that could not be read or split.
fn fatal_device_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EIO)
    )
}

/// Reading the device: the buffers of one batch and what it becomes.
pub(super) struct TunReader {
    /// One read with offload: a virtio header and a segment of up to 64 KiB (unused without).
    original: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    /// Packets one read may bring: a segment's worth with offload, else one.
    per_read: usize,
    /// When the device was last read (see STREAM_GAP).
    last_read: Option<Instant>,
    out: Batch,
    /// Peers whose packets wait for the handshake worker to make their session.
    work: HandshakeWork,
    scratch: Vec<u8>,
}

impl TunReader {
    pub(super) fn new(stride: usize, offload: bool) -> Self {
        Self {
            original: if offload {
                vec![0u8; VIRTIO_NET_HDR_LEN + 65_535]
            } else {
                Vec::new()
            },
            bufs: vec![vec![0u8; stride]; BATCH],
            sizes: vec![0; BATCH],
            per_read: if offload { SEGMENTS_PER_READ } else { 1 },
            last_read: None,
            out: Batch::new(BATCH, stride),
            work: HandshakeWork::default(),
            scratch: Vec::new(),
        }
    }

    /// Reads what the device has ready, up to a batch, without waiting; encrypts it on `node`
    /// and sends it. `now`: the time of the round (the device is read first in it). Returns
    /// how many packets it read.
    pub(super) fn read_batch(
        &mut self,
        plane: &DataPlane,
        node: &Node,
        links: &mut PeerSockets,
        now: Instant,
    ) -> std::io::Result<usize> {
        let streaming = self
            .last_read
            .is_some_and(|t| now.saturating_duration_since(t) < STREAM_GAP);
        self.last_read = Some(now);
        let mut n = 0;
        while n + self.per_read <= BATCH {
            match plane.device.recv_multiple(
                &mut self.original,
                &mut self.bufs[n..],
                &mut self.sizes[n..],
                0,
            ) {
                Ok(k) => {
                    n += k;
                    if !streaming {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if fatal_device_error(&e) => return Err(e),
                Err(e) => {
                    // What was read so far goes out; `epoll` says if more is waiting.
                    dropped_read(node, &e);
                    break;
                }
            }
        }
        if n == 0 {
            return Ok(0);
        }
        self.out.clear();
        let packets = self.bufs[..n]
            .iter()
            .zip(&self.sizes[..n])
            .map(|(b, &len)| &b[..len]);
        self.work.clear();
        node.handle_tun_packets(now, packets, &mut self.out, &mut self.work);
        plane.handshakes.push(&self.work, node.drops());
        send_all(
            &plane.sockets,
            Some(links),
            true,
            &self.out,
            &mut self.scratch,
        );
        Ok(n)
    }
}

/// A TUN read that lost its packet (a segment the buffers could not hold, say): counted as
/// `too_big`, never silent.
fn dropped_read(node: &Node, e: &std::io::Error) {
    tracing::debug!("tun read: {e}");
    node.drops().add(Side::Outbound, DropReason::TooBig, 1);
}
