//! Sending a batch of datagrams: runs to one peer as one GSO send, each through the peer's
//! connected socket when there is one, else through the listening socket.

use super::peer_sockets::PeerSockets;
use super::udp::{ListeningSockets, OffloadSocket};
use meshd_core::node::Batch;
use std::io::ErrorKind;
use std::net::SocketAddr;

/// The largest UDP payload one GSO send may carry.
const GSO_BYTES: usize = 65_000;

/// Sends every datagram of `out`.
///
/// - A run of equal-sized datagrams to one peer goes as one GSO send: zero-copy when they lie
///   back to back (as full-sized ones do), else through `scratch`.
/// - Through the socket `links` has connected to the endpoint (the data thread; with
///   `connect`, one is made if there is none yet), else the listening socket (timers,
///   handshake worker).
/// - A datagram the kernel refuses (no route to the endpoint, say) is lost like any UDP
///   datagram; the session's timers retry handshakes.
pub(crate) fn send_all(
    sockets: &ListeningSockets,
    mut links: Option<&mut PeerSockets>,
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
    fn send(&self, endpoint: &OffloadSocket, scratch: &mut Vec<u8>) -> std::io::Result<()> {
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
