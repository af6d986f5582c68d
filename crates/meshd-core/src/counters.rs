//! Counters kept by the core and read by status, metrics and logs.
//!
//! Counters are relaxed atomic adds. The two data-path directions (TUN→network and
//! network→TUN) live on separate cache lines, so a caller that runs them on separate threads
//! never makes them contend; meshd runs both on its data-path thread, and its timers thread
//! adds what handshakes and keepalives send. Readers take relaxed snapshots.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a packet or datagram was dropped. `as_str` is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Outbound: no peer's AllowedIPs contain the destination.
    NoRoute,
    /// Inbound: the decrypted packet's source is not in the sending peer's AllowedIPs.
    AllowedIps,
    /// Authentication failed (bad MAC or AEAD tag).
    Decrypt,
    /// Not a well-formed WireGuard message or IP packet.
    Malformed,
    /// A handshake message for a key or session index this node does not peer with.
    UnknownPeer,
    /// A data message whose receiver index names no live session (the sender's session
    /// outlived ours, after a restart, or a forged index).
    UnknownSession,
    /// A replayed or too old data counter.
    Replay,
    /// A handshake message that failed its checks (replayed timestamp, wrong state).
    Handshake,
    /// A handshake answered with a cookie reply instead of a response: the node is under load,
    /// or the sender's address is over its budget, and the sender had no valid cookie.
    UnderLoad,
    /// A handshake with a valid cookie from an address over its budget of handshakes.
    RateLimited,
    /// A handshake message that found the handshake queue full.
    QueueFull,
    /// Outbound to a peer whose endpoint is not known yet (it has never contacted us).
    NoEndpoint,
    /// Larger than this node can carry: an inner packet above the device MTU, or a datagram
    /// above the largest UDP payload.
    TooBig,
}

impl DropReason {
    pub const ALL: [DropReason; 13] = [
        DropReason::NoRoute,
        DropReason::AllowedIps,
        DropReason::Decrypt,
        DropReason::Malformed,
        DropReason::UnknownPeer,
        DropReason::UnknownSession,
        DropReason::Replay,
        DropReason::Handshake,
        DropReason::UnderLoad,
        DropReason::RateLimited,
        DropReason::QueueFull,
        DropReason::NoEndpoint,
        DropReason::TooBig,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoRoute => "no_route",
            DropReason::AllowedIps => "allowed_ips",
            DropReason::Decrypt => "decrypt",
            DropReason::Malformed => "malformed",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::UnknownSession => "unknown_session",
            DropReason::Replay => "replay",
            DropReason::Handshake => "handshake",
            DropReason::UnderLoad => "under_load",
            DropReason::RateLimited => "rate_limited",
            DropReason::QueueFull => "handshake_queue_full",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::TooBig => "too_big",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct DropRow([AtomicU64; DropReason::ALL.len()]);

/// Drops by reason, one row per data-path direction, each on its own cache line.
#[derive(Debug, Default)]
pub struct DropCounters {
    outbound: DropRow,
    inbound: DropRow,
}

/// Which side of the data path is counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// TUN → encrypt → network, and timers.
    Outbound,
    /// Network → decrypt → TUN.
    Inbound,
}

impl DropCounters {
    pub fn add(&self, side: Side, reason: DropReason, n: u64) {
        let row = match side {
            Side::Outbound => &self.outbound,
            Side::Inbound => &self.inbound,
        };
        row.0[reason.index()].fetch_add(n, Relaxed);
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        let i = reason.index();
        self.outbound.0[i].load(Relaxed) + self.inbound.0[i].load(Relaxed)
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn snapshot(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL.iter().map(|r| (*r, self.get(*r))).collect()
    }
}

/// Traffic of one direction of one peer.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct DirectionCounters {
    /// Inner IP bytes (what the applications sent).
    pub payload_bytes: AtomicU64,
    /// UDP payload bytes on the wire: data, handshakes, cookies and keepalives.
    pub wire_bytes: AtomicU64,
    /// Inner IP packets.
    pub packets: AtomicU64,
}

/// A peer's counters: `tx` written by the outbound side, `rx` by the inbound side.
#[derive(Debug, Default)]
pub struct PeerCounters {
    pub tx: DirectionCounters,
    pub rx: DirectionCounters,
    pub handshake_initiations: AtomicU64,
    pub handshakes_as_initiator: AtomicU64,
    pub handshakes_as_responder: AtomicU64,
    pub endpoint_changes: AtomicU64,
    /// Initiation sent → response received, for handshakes this node initiated.
    pub handshake_duration: DurationHistogram,
}

impl PeerCounters {
    /// Adds what `other` counted to these: a node's total for the peers a reload retired, so
    /// that node-wide sums never go down.
    pub fn absorb(&self, other: &PeerCounters) {
        self.tx.absorb(&other.tx);
        self.rx.absorb(&other.rx);
        for (mine, theirs) in [
            (&self.handshake_initiations, &other.handshake_initiations),
            (
                &self.handshakes_as_initiator,
                &other.handshakes_as_initiator,
            ),
            (
                &self.handshakes_as_responder,
                &other.handshakes_as_responder,
            ),
            (&self.endpoint_changes, &other.endpoint_changes),
        ] {
            mine.fetch_add(theirs.load(Relaxed), Relaxed);
        }
        self.handshake_duration.absorb(&other.handshake_duration);
    }
}

/// Upper bounds (seconds) of the handshake-duration buckets: from a LAN (sub-millisecond) to
/// a retried handshake (5 s per retry).
pub const HANDSHAKE_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations with the [`HANDSHAKE_BUCKETS`] bounds. Recorded once per
/// handshake (every two minutes per peer), never per packet.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Observations per bucket (not cumulative); the last slot is above every bound.
    buckets: [AtomicU64; HANDSHAKE_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A plain copy of a [`DurationHistogram`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSnapshot {
    /// Cumulative counts, one per bound of [`HANDSHAKE_BUCKETS`] (Prometheus' `le` buckets).
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl DurationHistogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        let i = HANDSHAKE_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(HANDSHAKE_BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    fn absorb(&self, other: &DurationHistogram) {
        for (mine, theirs) in self.buckets.iter().zip(&other.buckets) {
            mine.fetch_add(theirs.load(Relaxed), Relaxed);
        }
        self.sum_nanos
            .fetch_add(other.sum_nanos.load(Relaxed), Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(HANDSHAKE_BUCKETS.len());
        for b in &self.buckets[..HANDSHAKE_BUCKETS.len()] {
            running += b.load(Relaxed);
            cumulative.push(running);
        }
        let count = running + self.buckets[HANDSHAKE_BUCKETS.len()].load(Relaxed);
        HistogramSnapshot {
            cumulative,
            count,
            sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// A plain copy of one direction's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub payload_bytes: u64,
    pub wire_bytes: u64,
    pub packets: u64,
}

impl DirectionCounters {
    pub fn add(&self, payload: usize, wire: usize, packets: u64) {
        if payload > 0 {
            self.payload_bytes.fetch_add(payload as u64, Relaxed);
        }
        self.wire_bytes.fetch_add(wire as u64, Relaxed);
        if packets > 0 {
            self.packets.fetch_add(packets, Relaxed);
        }
    }

    fn absorb(&self, other: &DirectionCounters) {
        for (mine, theirs) in [
            (&self.payload_bytes, &other.payload_bytes),
            (&self.wire_bytes, &other.wire_bytes),
            (&self.packets, &other.packets),
        ] {
            mine.fetch_add(theirs.load(Relaxed), Relaxed);
        }
    }

    pub fn snapshot(&self) -> Traffic {
        Traffic {
            payload_bytes: self.payload_bytes.load(Relaxed),
            wire_bytes: self.wire_bytes.load(Relaxed),
            packets: self.packets.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_add_up_across_sides_and_reasons_are_distinct() {
        let d = DropCounters::default();
        d.add(Side::Outbound, DropReason::NoRoute, 2);
        d.add(Side::Inbound, DropReason::NoRoute, 3);
        d.add(Side::Inbound, DropReason::AllowedIps, 1);
        assert_eq!(d.get(DropReason::NoRoute), 5);
        assert_eq!(d.get(DropReason::AllowedIps), 1);
        assert_eq!(d.get(DropReason::Decrypt), 0);
        let labels: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), DropReason::ALL.len());
        assert_eq!(d.snapshot().len(), DropReason::ALL.len());
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_what_is_above_every_bound() {
        use std::time::Duration;
        let h = DurationHistogram::default();
        h.observe(Duration::from_micros(300)); // <= 0.0005
        h.observe(Duration::from_millis(1)); // exactly on the 0.001 bound
        h.observe(Duration::from_millis(40)); // <= 0.05
        h.observe(Duration::from_secs(20)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative.len(), HANDSHAKE_BUCKETS.len());
        assert_eq!(&s.cumulative[..3], &[1, 2, 2]);
        assert_eq!(s.cumulative[6], 3);
        assert_eq!(*s.cumulative.last().unwrap_or(&0), 3);
        assert!((s.sum_seconds - 20.0413).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn directions_sit_on_their_own_cache_lines() {
        assert!(std::mem::align_of::<DirectionCounters>() >= 64);
        assert!(std::mem::align_of::<DropCounters>() >= 64);
    }
}
