//! Two meshd nodes over a veth underlay: ping both ways and a 100 MB TCP transfer whose
//! checksum is verified at the far end; IPv4 overlay over an IPv4 underlay, and IPv6 over IPv6;
//! with the TUN and UDP offloads and the default busy-poll (checked in the log), and without
//! either.

use meshd_e2e::mesh::MeshdOpts;
use meshd_e2e::topo::{endpoint, overlay_cidr, pair};
use meshd_e2e::{assert_tcp_transfer, host_of, require_root, MeshSpec, Meshd, Netns, MB};
use std::net::SocketAddr;
use std::time::Duration;

const PORT: u16 = 51820;

/// The node's TUN device carries its overlay address with the mesh prefix, and the MTU.
fn assert_device(ns: &Netns, iface: &str, cidr: &str, mtu: u16) {
    let out = ns.ip(&["-o", "addr", "show", "dev", iface]);
    assert!(
        out.split_whitespace().any(|w| w == cidr),
        "{iface} in {} lacks {cidr}:\n{out}",
        ns.name()
    );
    let link = ns.ip(&["-o", "link", "show", "dev", iface]);
    assert!(
        link.contains(&format!("mtu {mtu} ")),
        "{iface} does not have mtu {mtu}:\n{link}"
    );
}

/// The underlay MTU that is too small for the tunnel's 1420 + 32 + 28 (or 48) bytes.
const SMALL_UNDERLAY_MTU: &str = "1400";

/// Two nodes, a ping each way and a checksummed transfer of `mb` MB. `small_underlay`: the
/// underlay's MTU is smaller than the tunnel's datagrams (each must be fragmented, which a GSO
/// train cannot be: meshd must notice, say so once, and send such runs one by one).
fn two_nodes(v6: bool, offload: bool, small_underlay: bool, mb: u64) {
    let (a, b) = pair(v6);
    if small_underlay {
        for h in [&a, &b] {
            h.ns.ip(&["link", "set", "dev", &h.dev, "mtu", SMALL_UNDERLAY_MTU]);
        }
    }
    let (ca, cb) = (overlay_cidr(1, v6), overlay_cidr(2, v6));
    let mut mesh = MeshSpec::new();
    mesh.node("a", &ca, Some(&endpoint(a.addr, PORT)));
    mesh.node("b", &cb, Some(&endpoint(b.addr, PORT)));
    mesh.rule_both("a", "b", &["any"]);
    // The plain path also sleeps at once after each round (no busy-polling), so that both
    // ways of waiting carry this test's traffic.
    if !offload {
        mesh.busy_poll = Some(0);
    }
    let files = mesh.write();

    let opts = || {
        let mut o = MeshdOpts::default();
        if !offload {
            for var in ["MESHD_TUN_OFFLOAD", "MESHD_UDP_OFFLOAD"] {
                o.env.push((var.into(), "off".into()));
            }
        }
        o
    };
    let mut ma = Meshd::start_with(&a.ns, &files, "a", opts());
    let mb_node = Meshd::start_with(&b.ns, &files, "b", opts());
    // The log says which path this run takes.
    let (want, busy_poll) = if offload {
        ("offloads tun=on", " busy_poll=100us")
    } else {
        ("offloads tun=off udp_gso=1 udp_gro=1", " busy_poll=0us")
    };
    for line in [want, busy_poll] {
        if let Err(e) = ma.wait_for_log(line, Duration::from_secs(5)) {
            panic!("{e}");
        }
    }
    assert_device(&a.ns, &files.iface, &ca, mesh.mtu);
    assert_device(&b.ns, &files.iface, &cb, mesh.mtu);

    let (oa, ob) = (host_of(&ca), host_of(&cb));
    a.ns.assert_reaches(ob);
    b.ns.assert_reaches(oa);
    assert_tcp_transfer(
        b.ns.name(),
        a.ns.name(),
        SocketAddr::new(ob, 5001),
        mb * MB,
        Duration::from_secs(180),
    );
    if small_underlay && offload {
        if let Err(e) = ma.wait_for_log("UDP GSO refused", Duration::from_secs(2)) {
            panic!("no warning that GSO was refused: {e}");
        }
    }

    let (sa, sb) = (ma.stop(), mb_node.stop());
    sa.assert_clean();
    sb.assert_clean();
}

#[test]
fn ipv4_overlay_over_ipv4_underlay() {
    if !require_root() {
        return;
    }
    two_nodes(false, true, false, 100);
}

#[test]
fn ipv6_overlay_over_ipv6_underlay() {
    if !require_root() {
        return;
    }
    two_nodes(true, true, false, 100);
}

#[test]
fn ipv4_without_offloads() {
    if !require_root() {
        return;
    }
    two_nodes(false, false, false, 100);
}

#[test]
fn ipv6_without_offloads() {
    if !require_root() {
        return;
    }
    two_nodes(true, false, false, 100);
}

/// An underlay whose MTU (1400) is smaller than the tunnel's datagrams, IPv4 and IPv6.
#[test]
fn underlay_mtu_smaller_than_the_tunnel_needs() {
    if !require_root() {
        return;
    }
    two_nodes(false, true, true, 20);
    two_nodes(true, true, true, 20);
}
