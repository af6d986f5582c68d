//! Fixtures the protocol tests share: a sample snapshot and address helpers.

use super::snapshot::{Counts, PeerSnapshot, Snapshot};
use ipnet::IpNet;
use meshd_core::counters::{HistogramSnapshot, Traffic};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, UNIX_EPOCH};

pub(crate) fn ip(octets: [u8; 4]) -> IpAddr {
    IpAddr::from(octets)
}

pub(crate) fn net(octets: [u8; 4], len: u8) -> IpNet {
    IpNet::new_assert(IpAddr::from(octets), len)
}

/// Two peers: `app1` never handshaken and without endpoint, `edge1` up behind an IPv6
/// endpoint with a route. Shared by the control and table tests.
pub(crate) fn sample() -> Snapshot {
    let taken = UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000);
    let since = Duration::new(12, 250_000_000);
    let mut app1_key = [0u8; 32];
    for (i, b) in app1_key.iter_mut().enumerate() {
        *b = i as u8;
    }
    Snapshot {
        interface: "meshd0".into(),
        node: "db1".into(),
        public_key: [7; 32],
        address: net([10, 100, 0, 2], 24),
        listen_port: 51820,
        metrics_detail: meshd_core::config::MetricsDetail::Node,
        retired: Default::default(),
        taken,
        peers: vec![
            PeerSnapshot {
                name: "app1".into(),
                public_key: app1_key,
                address: ip([10, 100, 0, 3]),
                allowed_ips: vec![net([10, 100, 0, 3], 32)],
                endpoint: None,
                last_handshake: None,
                since_last_handshake: None,
                last_handshake_duration: None,
                keepalive: None,
                counts: Counts {
                    tx: Traffic {
                        payload_bytes: 0,
                        wire_bytes: 0,
                        packets: 0,
                    },
                    rx: Traffic::default(),
                    handshake_initiations: 0,
                    handshakes_as_initiator: 0,
                    handshakes_as_responder: 0,
                    endpoint_changes: 0,
                    handshake_durations: HistogramSnapshot::default(),
                },
            },
            PeerSnapshot {
                name: "edge1".into(),
                public_key: [0xfe; 32],
                address: ip([10, 100, 0, 4]),
                allowed_ips: vec![net([10, 100, 0, 4], 32), net([192, 168, 50, 0], 24)],
                endpoint: Some(SocketAddr::from((
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 4),
                    51820,
                ))),
                last_handshake: Some(taken - since),
                since_last_handshake: Some(since),
                last_handshake_duration: Some(Duration::from_micros(1_500)),
                keepalive: Some(25),
                counts: Counts {
                    tx: Traffic {
                        payload_bytes: 1_200_000,
                        wire_bytes: 1_268_924,
                        packets: 1_000,
                    },
                    rx: Traffic {
                        payload_bytes: 500,
                        wire_bytes: 532,
                        packets: 1,
                    },
                    handshake_initiations: 2,
                    handshakes_as_initiator: 1,
                    handshakes_as_responder: 0,
                    endpoint_changes: 1,
                    handshake_durations: HistogramSnapshot::default(),
                },
            },
        ],
        drops: vec![("no_route", 3), ("allowed_ips", 0)],
    }
}
