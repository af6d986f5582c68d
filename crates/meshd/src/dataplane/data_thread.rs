//! The data thread: sleeps in one `epoll_wait` on the device and the sockets (the listening
//! ones and one connected to each peer endpoint), and gives each ready descriptor one batch.
//!
//! - One plain thread for both directions: a packet wakes the thread that reads it directly,
//!   and what the kernel queues on the device in answer to a write (a ping's reply, a TCP
//!   ack) is read without waking another thread.
//! - While traffic is light it busy-polls for a moment before sleeping, and keeps to one CPU
//!   (`activity.rs`, `poller.rs`, `placement.rs`).

use super::activity::Activity;
use super::inbound::UdpReader;
use super::outbound::TunReader;
use super::peer_sockets::PeerSockets;
use super::placement::Placement;
use super::poller::Poller;
use super::udp::OffloadSocket;
use super::DataPlane;
use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The data path's thread (see the module's notes): each descriptor `epoll` finds ready gets
/// one batch, in turn, so neither direction starves the other.
pub(crate) fn run(plane: Arc<DataPlane>) -> anyhow::Result<Infallible> {
    let mut tun = TunReader::new(plane.stride, plane.tun_offload);
    // One reader for every socket: they are read one after the other.
    let mut udp = UdpReader::new();
    let sockets = &plane.sockets;
    let mut links = PeerSockets::new(plane.connect_peers);
    // Tokens: the device, the listening sockets, then the connected ones (`polled`, in
    // that order).
    const TUN: u64 = 0;
    const V4: u64 = 1;
    const V6: u64 = 2;
    const LINKS: u64 = 3;
    let mut poller = Poller::new()?;
    poller.add(plane.device.as_raw_fd(), TUN)?;
    poller.add(sockets.v4.socket.as_raw_fd(), V4)?;
    if let Some(v6) = &sockets.v6 {
        poller.add(v6.socket.as_raw_fd(), V6)?;
    }
    let mut polled: Vec<Rc<OffloadSocket>> = Vec::new();
    let mut ready: Vec<(u64, u32)> = Vec::with_capacity(16);
    // The running node, kept here and swapped when a reload stores another: one load of the
    // current pointer per round, where `ArcSwap::load` would also touch its thread-local and
    // global debt lists, cold lines after a pause (docs/performance.md). A round runs on the
    // node it found.
    let mut current = arc_swap::Cache::new(&plane.node);
    let mut placement = Placement::new(plane.quiet_cpu);
    let mut activity = Activity::new(Instant::now());
    placement.follow(activity.heavy());
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
        plane.health.data_idle();
        ready.clear();
        // The busy-poll pays only between the packets of light traffic (`activity.rs`).
        let spin = if activity.heavy() {
            Duration::ZERO
        } else {
            plane.busy_poll
        };
        ready.extend(poller.wait(spin)?);
        // In token order, as the loop over `poll`'s array went: the device first.
        ready.sort_unstable_by_key(|&(token, _)| token);
        plane.health.data_busy();
        // One clock read per round, for the traffic and the device's read.
        let now = Instant::now();
        if let Some(heavy) = activity.round(now) {
            placement.follow(heavy);
        }
        let node = current.load();
        for &(token, events) in &ready {
            match token {
                TUN => {
                    let failed = events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0;
                    if tun.read_batch(&plane, node, &mut links, now)? == 0 && failed {
                        // Nothing to read and an error or hang-up pending: the device is
                        // gone, and it would be reported again at once, forever.
                        anyhow::bail!("the TUN device reports an error or hang-up");
                    }
                }
                V4 => udp.read_batch(&plane, node, &sockets.v4, &mut links)?,
                V6 => {
                    if let Some(v6) = &sockets.v6 {
                        udp.read_batch(&plane, node, v6, &mut links)?;
                    }
                }
                k => {
                    let Some(endpoint) = polled.get((k - LINKS) as usize) else {
                        continue;
                    };
                    if let Err(e) = udp.read_batch(&plane, node, endpoint, &mut links) {
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
