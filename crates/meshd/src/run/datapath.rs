//! The data path: one thread that moves batches between the kernel and the core.
//!
//! It sleeps in one `epoll_wait` on the device and the sockets (the listening ones and one
//! connected to each peer endpoint, `connected.rs`), after busy-polling for a moment while
//! traffic is light (`interface.busy_poll`, see `wait.rs` and `traffic.rs`). Whichever is
//! ready gets one batch, read without waiting into reused buffers: TUN → encrypt → UDP, or
//! UDP → decrypt → TUN.
//! A plain thread rather than async tasks, and one rather than one per direction: a packet's
//! arrival wakes the thread that reads it directly, and the answer the kernel queues on the
//! device inside the write that delivered a packet (a ping's reply, a TCP ack) is read by
//! the same thread without waking another. Those wake-ups are what the latency a ping sees
//! through the tunnel is made of (docs/performance.md). With offloads, one TUN read brings a
//! whole TCP segment the kernel did not cut (split here into MTU-sized packets), one UDP send
//! carries a run of datagrams to one peer (GSO), one UDP receive returns what the kernel
//! coalesced (GRO), and one TUN write carries packets of one flow merged back (GRO). The timer
//! thread drives handshakes and keepalives and turns core events into log lines.

use super::connected::Connected;
use super::handshake::HandshakeQueue;
use super::health::Health;
use super::placement::Placement;
use super::traffic::Traffic;
use super::udp::{Endpoint, Sockets};
use super::wait::Poller;
use arc_swap::ArcSwap;
use meshd_core::config::QuietCpu;
use meshd_core::counters::{DropReason, Side};
use meshd_core::node::{Batch, Event, HandshakeWork, Node, MAX_DATAGRAM, NO_ADDR};
use quinn_udp::RecvMeta;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::{ErrorKind, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tun_rs::{GROTable, SyncDevice, VIRTIO_NET_HDR_LEN};

/// Packets handed to the core at once.
pub(crate) const BATCH: usize = 128;
/// How often the timers run; boringtun's own timers have one-second granularity.
const TICK: Duration = Duration::from_millis(100);
/// The most one TUN read can bring with offload: a 64 KiB TCP segment cut at the smallest
/// MSS the kernel uses for a 1280-byte IPv6 MTU is 55 packets; more room is drained only
/// while this much is left.
const SEGMENTS_PER_READ: usize = 64;
/// A TUN read within this long of the one before is part of a stream, and the device is read
/// until it is empty; the first read after a pause stops after what it got (a lone ping, a
/// request): `epoll` says if more is waiting, and a lone packet saves the read that would
/// only have found the device empty.
const STREAM_GAP: Duration = Duration::from_millis(1);
/// The largest UDP payload one GSO send may carry.
const GSO_BYTES: usize = 65_000;
/// Receive buffers per UDP read (recvmmsg), each big enough for one GRO train.
const RECV_BUFS: usize = 16;
const RECV_BUF: usize = 65_536;

pub(crate) struct Shared {
    /// The node of the running plan; a reload swaps in the next one, and a batch runs on
    /// the one it loaded.
    pub(crate) node: ArcSwap<Node>,
    pub(crate) device: SyncDevice,
    /// The device carries virtio headers: read with `recv_multiple`, write with GRO.
    pub(crate) tun_offload: bool,
    pub(crate) sockets: Sockets,
    pub(crate) stride: usize,
    /// Progress of the data path's threads, for the systemd watchdog.
    pub(crate) health: Health,
    /// How long the data thread busy-polls after a round before it sleeps.
    pub(crate) busy_poll: Duration,
    /// The data thread connects a socket to each endpoint it sends to (`connected.rs`).
    pub(crate) connect_peers: bool,
    /// The CPU the data thread keeps to while traffic is light (`placement.rs`).
    pub(crate) quiet_cpu: QuietCpu,
    /// Handshake messages on their way to the handshake worker (`handshake.rs`).
    pub(crate) handshakes: HandshakeQueue,
}

/// Sends every datagram of `out`, runs of equal-sized datagrams to one peer as one GSO send
/// (zero-copy when they lie back to back, as full-sized ones do; else through `scratch`), each
/// through the socket connected to its endpoint when `links` has one (the data thread; with
/// `connect`, packets from the device, made if there is none yet), else through the listening
/// socket (the timers thread). A datagram the kernel refuses (no route
/// to the endpoint, say) is lost like any UDP datagram; the session's timers retry handshakes.
pub(crate) fn send_all(
    sockets: &Sockets,
    mut links: Option<&mut Connected>,
    connect: bool,
    out: &Batch,
    scratch: &mut Vec<u8>,
) {
    let mut i = 0;
    while let Some((first, to)) = out.get(i) {
        let link = links
            .as_deref_mut()
            .and_then(|l| l.get(to, connect, sockets));
        let Some(endpoint) = link.as_deref().or_else(|| sockets.for_addr(&to)) else {
            tracing::debug!(%to, "no socket for this address family");
            i += 1;
            continue;
        };
        let seg = first.len().max(1);
        let max = match out.get(i + 1) {
            // Only a run has a GSO limit to look up (a lone packet spares the cold line).
            Some((_, a)) if a == to => endpoint.gso_segments_for(seg).min(GSO_BYTES / seg).max(1),
            _ => 1,
        };
        let mut end = i + 1;
        while end - i < max {
            match out.get(end) {
                Some((d, a)) if a == to && d.len() <= seg => {
                    end += 1;
                    if d.len() < seg {
                        break; // a shorter one ends a GSO train
                    }
                }
                _ => break,
            }
        }
        let run = Run {
            out,
            range: i..end,
            to,
            seg,
        };
        if let Err(e) = run.send(endpoint, scratch) {
            // Only a failed send looks up the listening socket to fall back on.
            match sockets.for_addr(&to) {
                Some(listening) if link.is_some() && e.kind() != ErrorKind::WouldBlock => {
                    // The connected socket failed: its source address or route is gone, or
                    // it reports a port unreachable the peer sent earlier. The listening
                    // socket sends the run; unless it was only that report, the next send to
                    // this endpoint connects a new socket. (A buffer that stayed full is
                    // congestion, which another socket would not relieve: the run is lost, as
                    // below.)
                    tracing::debug!(%to, "send on the connected socket failed: {e}");
                    if run.send(listening, scratch).is_ok()
                        && e.kind() != ErrorKind::ConnectionRefused
                    {
                        if let Some(links) = links.as_deref_mut() {
                            links.remove(to);
                        }
                    }
                }
                _ => tracing::debug!(%to, "send failed: {e}"),
            }
        }
        i = end;
    }
}

/// Datagrams `range` of a batch, all to `to` and `seg` bytes long but the last.
struct Run<'a> {
    out: &'a Batch,
    range: std::ops::Range<usize>,
    to: SocketAddr,
    seg: usize,
}

impl Run<'_> {
    /// Sends the run through `endpoint`: one datagram, or a GSO train; a train the kernel
    /// refuses goes again one by one. The error is the last send's.
    fn send(&self, endpoint: &Endpoint, scratch: &mut Vec<u8>) -> std::io::Result<()> {
        let (out, to, seg) = (self.out, self.to, self.seg);
        let datagram = |k: usize| out.get(k).map_or(&[][..], |(d, _)| d);
        if self.range.len() == 1 {
            return endpoint.send(to, datagram(self.range.start), None);
        }
        let sent = if let Some(run) = out.contiguous(self.range.clone()) {
            endpoint.send(to, run, Some(seg))
        } else {
            scratch.clear();
            for k in self.range.clone() {
                scratch.extend_from_slice(datagram(k));
            }
            endpoint.send(to, scratch, Some(seg))
        };
        let Err(e) = sent else { return Ok(()) };
        if matches!(
            e.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::WouldBlock
        ) {
            // A port unreachable reported on a connected socket (the train was not sent), or
            // a buffer that stayed full: nothing to do with GSO.
            return Err(e);
        }
        // The kernel refuses a GSO train whose segments exceed the path MTU (it would fragment
        // each one alone): send this run, and such runs from now on, singly.
        endpoint.refuse_gso(seg, &e);
        let mut last = Ok(());
        for k in self.range.clone() {
            if let Err(e) = endpoint.send(to, datagram(k), None) {
                tracing::debug!(%to, "send failed: {e}");
                last = Err(e);
            }
        }
        last
    }
}

/// A TUN read error that ends the data path (the device is gone), as opposed to one packet
/// that could not be read or split.
fn fatal_device_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EIO)
    )
}

/// Reading the device: the buffers of one batch and what it becomes.
struct TunReader {
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
    fn new(stride: usize, offload: bool) -> Self {
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
    fn read_batch(
        &mut self,
        shared: &Shared,
        node: &Node,
        links: &mut Connected,
        now: Instant,
    ) -> std::io::Result<usize> {
        let streaming = self
            .last_read
            .is_some_and(|t| now.saturating_duration_since(t) < STREAM_GAP);
        self.last_read = Some(now);
        let mut n = 0;
        while n + self.per_read <= BATCH {
            match shared.device.recv_multiple(
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
            .map(|(b, &len)| (&b[..len], NO_ADDR));
        self.work.clear();
        node.handle_tun_packets(now, packets, &mut self.out, &mut self.work);
        shared.handshakes.push(&self.work, node.drops());
        send_all(
            &shared.sockets,
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

    fn write(&mut self, shared: &Shared, packets: &Batch) {
        if !shared.tun_offload {
            for (packet, _) in packets {
                if let Err(e) = shared.device.send(packet) {
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
        if let Err(e) = shared
            .device
            .send_multiple(&mut self.gro, bufs, VIRTIO_NET_HDR_LEN)
        {
            tracing::debug!("tun write: {e}");
        }
    }
}

/// Reading one UDP socket: the buffers of one receive and what it becomes.
struct UdpReader {
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
    fn new() -> Self {
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
    fn read_batch(
        &mut self,
        shared: &Shared,
        node: &Node,
        endpoint: &Endpoint,
        links: &mut Connected,
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
            self.writer.write(shared, &self.to_tun);
            shared.handshakes.push(&self.work, node.drops());
        }
        Ok(())
    }
}

/// The data path's thread (see the module's notes): each descriptor `epoll` finds ready gets
/// one batch, in turn, so neither direction starves the other.
pub(crate) fn serve(shared: Arc<Shared>) -> anyhow::Result<Infallible> {
    let mut tun = TunReader::new(shared.stride, shared.tun_offload);
    // One reader for every socket: they are read one after the other.
    let mut udp = UdpReader::new();
    let sockets = &shared.sockets;
    let mut links = Connected::new(shared.connect_peers);
    // Tokens: the device, the listening sockets, then the connected ones (`polled`, in
    // that order).
    const TUN: u64 = 0;
    const V4: u64 = 1;
    const V6: u64 = 2;
    const LINKS: u64 = 3;
    let mut poller = Poller::new()?;
    poller.add(shared.device.as_raw_fd(), TUN)?;
    poller.add(sockets.v4.socket.as_raw_fd(), V4)?;
    if let Some(v6) = &sockets.v6 {
        poller.add(v6.socket.as_raw_fd(), V6)?;
    }
    let mut polled: Vec<Rc<Endpoint>> = Vec::new();
    let mut ready: Vec<(u64, u32)> = Vec::with_capacity(16);
    // The running node, kept here and swapped when a reload stores another: one load of the
    // current pointer per round, where `ArcSwap::load` would also touch its thread-local and
    // global debt lists, cold lines after a pause (docs/performance.md). A round runs on the
    // node it found.
    let mut current = arc_swap::Cache::new(&shared.node);
    let mut placement = Placement::new(shared.quiet_cpu);
    let mut traffic = Traffic::new(Instant::now());
    Placement::follow(&mut placement, traffic.heavy());
    loop {
        if links.take_changed() {
            for endpoint in polled.drain(..) {
                if let Err(e) = poller.delete(endpoint.socket.as_raw_fd()) {
                    // Closing it (once dropped) takes it out all the same.
                    tracing::debug!("epoll delete: {e}");
                }
            }
            polled.extend(links.endpoints().cloned());
            let mut k = 0;
            while let Some(endpoint) = polled.get(k) {
                if let Err(e) = poller.add(endpoint.socket.as_raw_fd(), LINKS + k as u64) {
                    // Past the kernel's limit of watches, say: that endpoint goes through the
                    // listening socket for a while.
                    tracing::debug!("epoll add: {e}");
                    if let Some(to) = endpoint.peer() {
                        links.refuse(to);
                    }
                    polled.remove(k);
                    continue;
                }
                k += 1;
            }
        }
        shared.health.data_idle();
        ready.clear();
        // The busy-poll pays only between the packets of light traffic (`traffic.rs`).
        let spin = if traffic.heavy() {
            Duration::ZERO
        } else {
            shared.busy_poll
        };
        ready.extend(poller.wait(spin)?);
        // In token order, as the loop over `poll`'s array went: the device first.
        ready.sort_unstable_by_key(|&(token, _)| token);
        shared.health.data_busy();
        // One clock read per round, for the traffic and the device's read.
        let now = Instant::now();
        if let Some(heavy) = traffic.round(now) {
            Placement::follow(&mut placement, heavy);
        }
        let node = current.load();
        for &(token, events) in &ready {
            match token {
                TUN => {
                    let failed = events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
                    if tun.read_batch(&shared, node, &mut links, now)? == 0 && failed {
                        // Nothing to read and an error or hang-up pending: the device is
                        // gone, and it would be reported again at once, forever.
                        anyhow::bail!("the TUN device reports an error or hang-up");
                    }
                }
                V4 => udp.read_batch(&shared, node, &sockets.v4, &mut links)?,
                V6 => {
                    if let Some(v6) = &sockets.v6 {
                        udp.read_batch(&shared, node, v6, &mut links)?;
                    }
                }
                k => {
                    let Some(endpoint) = polled.get((k - LINKS) as usize) else {
                        continue;
                    };
                    if let Err(e) = udp.read_batch(&shared, node, endpoint, &mut links) {
                        // A connected socket failing is no reason to stop: drop it; the
                        // listening socket still receives from that endpoint.
                        tracing::debug!("receive on a connected socket: {e}");
                        if let Some(to) = endpoint.peer() {
                            links.remove(to);
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn timers(shared: Arc<Shared>) -> anyhow::Result<Infallible> {
    let mut out = Batch::new(BATCH, shared.stride);
    let mut seen_up: HashSet<usize> = HashSet::new();
    let mut scratch = Vec::new();
    loop {
        out.clear();
        let node = shared.node.load_full();
        node.update_timers(Instant::now(), &mut out);
        send_all(&shared.sockets, None, false, &out, &mut scratch);
        log_events(&node, &mut seen_up, node.take_events());
        shared.health.timers_ran();
        std::thread::sleep(TICK);
    }
}

/// One line per event, except roaming: a peer whose source flaps between addresses would
/// otherwise log a line per datagram, so its moves within one tick become one line. Peers
/// are named by slot; one a reload removed since is named `?`.
fn log_events(node: &Node, seen_up: &mut HashSet<usize>, events: Vec<Event>) {
    let name = |slot: usize| {
        node.peer_by_slot(slot)
            .map_or("?", |p| p.plan.name.as_str())
    };
    let mut moves: HashMap<usize, (Option<SocketAddr>, SocketAddr, usize)> = HashMap::new();
    for event in events {
        match event {
            Event::EndpointChanged { peer, from, to } => {
                let entry = moves.entry(peer).or_insert((from, to, 0));
                entry.1 = to;
                entry.2 += 1;
            }
            Event::HandshakeCompleted { peer, initiator } => {
                let role = if initiator { "initiator" } else { "responder" };
                if seen_up.insert(peer) {
                    tracing::info!("peer up peer={} role={role}", name(peer));
                } else {
                    tracing::debug!("handshake peer={} role={role}", name(peer));
                }
            }
        }
    }
    for (peer, (from, to, n)) in moves {
        let times = if n > 1 {
            format!(" changes={n}")
        } else {
            String::new()
        };
        match from {
            Some(from) => {
                tracing::info!(
                    "endpoint changed peer={} from={from} to={to}{times}",
                    name(peer)
                )
            }
            None => tracing::info!("endpoint learned peer={} to={to}", name(peer)),
        }
    }
}
