//! The WireGuard port skips conntrack (table `inet meshd`'s raw chains), and path MTU errors
//! about meshd's own datagrams still reach the kernel: over IPv4 and IPv6 underlays.
//!
//! - After traffic through the tunnel, the node's conntrack table holds the tunnelled ping
//!   (conntrack is on) but no flow of the WireGuard port.
//! - A router's "fragmentation needed" / "packet too big" quoting a datagram meshd sent to its
//!   peer lowers the path MTU the node's kernel holds for the peer. Conntrack cannot relate
//!   such an error to an untracked flow (it is "invalid" to it), so only `input`'s own rule
//!   for them lets it in: without it, this part fails.

use meshd_e2e::pmtu::{learnt_mtu, send_too_big};
use meshd_e2e::setup::wait_until;
use meshd_e2e::topo::{overlay_cidr, pair, two_node_mesh};
use meshd_e2e::{host_of, require_root, Meshd};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const PORT: u16 = 51820;
const MTU: u16 = 1300;

/// An address as /proc/net/nf_conntrack writes it (IPv6 in full, every group of four digits).
fn conntrack_form(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:04x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

fn untracked_port_and_path_mtu(v6: bool) {
    let (a, b) = pair(v6);
    let files = two_node_mesh(&a, &b).write();
    let ma = Meshd::start(&a.ns, &files, "a");
    let mb = Meshd::start(&b.ns, &files, "b");
    let overlay_b = host_of(&overlay_cidr(2, v6));
    a.ns.assert_reaches(overlay_b);

    let table = a.ns.exec_ok(&["cat", "/proc/net/nf_conntrack"]);
    let port = format!("port={PORT}");
    let of_port: Vec<&str> = table
        .lines()
        .filter(|l| l.contains(" udp ") && l.contains(&port))
        .collect();
    assert!(
        of_port.is_empty(),
        "conntrack tracks the WireGuard port:\n{}",
        of_port.join("\n")
    );
    let inner = format!("dst={} ", conntrack_form(overlay_b));
    assert!(
        table.lines().any(|l| l.contains(&inner)),
        "the tunnelled ping to {overlay_b} is not in conntrack, so the check above proves \
         nothing:\n{table}"
    );

    assert_eq!(
        learnt_mtu(&a.ns, b.addr),
        None,
        "a path MTU before any error"
    );
    let (victim, peer) = (SocketAddr::new(a.addr, PORT), SocketAddr::new(b.addr, PORT));
    send_too_big(b.ns.name(), victim, peer, MTU).expect("send the ICMP error");
    let mut learnt = None;
    wait_until(Duration::from_secs(2), || {
        learnt = learnt_mtu(&a.ns, b.addr);
        learnt.is_some()
    });
    assert_eq!(
        learnt,
        Some(u32::from(MTU)),
        "the path MTU error about {victim} -> {peer} did not get through meshd's table"
    );
    eprintln!(
        "ok (ipv{}): no conntrack entry for udp/{PORT}; path MTU {MTU} learnt",
        if v6 { 6 } else { 4 }
    );
    ma.stop().assert_clean();
    mb.stop().assert_clean();
}

#[test]
fn wireguard_port_is_untracked_and_path_mtu_errors_arrive_ipv4() {
    if !require_root() {
        return;
    }
    untracked_port_and_path_mtu(false);
}

#[test]
fn wireguard_port_is_untracked_and_path_mtu_errors_arrive_ipv6() {
    if !require_root() {
        return;
    }
    untracked_port_and_path_mtu(true);
}
