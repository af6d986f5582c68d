//! The harness proves itself on wireguard-go <-> wireguard-go, without meshd: namespaces, veth and
//! switch underlays, ping, the TCP transfer with checksum, UDP probes from a chosen source, nft
//! counters, and an underlay address change mid-transfer. If one of these breaks here, the meshd
//! scenarios cannot be trusted either.

use meshd_e2e::nft::{install_counters, read_counter, CounterSpec, Dir};
use meshd_e2e::topo::{pair, switched, Host};
use meshd_e2e::transfer::{TcpTransfer, TransferOpts};
use meshd_e2e::{assert_tcp_transfer, host_of, ip, require_root, udp_send, Key, UdpCollector};
use meshd_e2e::{WgGo, MB};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const PORT: u16 = 51820;

struct WgPair {
    // Field order = drop order: the daemons stop before their namespaces go.
    wa: WgGo,
    wb: WgGo,
    a: Host,
    b: Host,
    oa: IpAddr,
    ob: IpAddr,
}

/// Two wireguard-go peers over a veth pair. Only A knows B's endpoint, so A initiates.
fn wg_pair(v6: bool) -> WgPair {
    let (a, b) = pair(v6);
    let (ka, kb) = (Key::generate(), Key::generate());
    let wa = WgGo::start(&a.ns, &ka, PORT);
    let wb = WgGo::start(&b.ns, &kb, PORT);
    let (ca, cb, ha, hb) = if v6 {
        (
            "2001:db8:100::1/64",
            "2001:db8:100::2/64",
            "2001:db8:100::1/128",
            "2001:db8:100::2/128",
        )
    } else {
        (
            "10.100.0.1/24",
            "10.100.0.2/24",
            "10.100.0.1/32",
            "10.100.0.2/32",
        )
    };
    wa.set_peer(&kb.public, Some(SocketAddr::new(b.addr, PORT)), &[hb], None);
    wb.set_peer(&ka.public, None, &[ha], None);
    wa.add_addr(&a.ns, ca);
    wb.add_addr(&b.ns, cb);
    wa.up(&a.ns);
    wb.up(&b.ns);
    WgPair {
        oa: host_of(ca),
        ob: host_of(cb),
        wa,
        wb,
        a,
        b,
    }
}

fn pair_ping_and_transfer(v6: bool) {
    let p = wg_pair(v6);
    assert_eq!(p.wb.latest_handshake(&p.wa.key().public), 0);
    p.a.ns.assert_reaches(p.ob);
    p.b.ns.assert_reaches(p.oa);
    assert_tcp_transfer(
        p.b.ns.name(),
        p.a.ns.name(),
        SocketAddr::new(p.ob, 5001),
        10 * MB,
        Duration::from_secs(60),
    );
    assert!(p.wb.latest_handshake(&p.wa.key().public) > 0);
    let (rx, _tx) = p.wb.transfer(&p.wa.key().public);
    assert!(rx > 10 * MB, "B received only {rx} bytes from A");
}

#[test]
fn wggo_pair_ipv4() {
    if !require_root() {
        return;
    }
    pair_ping_and_transfer(false);
}

#[test]
fn wggo_pair_ipv6() {
    if !require_root() {
        return;
    }
    pair_ping_and_transfer(true);
}

#[test]
fn transfer_failure_is_detected() {
    if !require_root() {
        return;
    }
    // A plain underlay transfer, cut in the middle: the harness must report a failure, not hang
    // and not pass.
    let (a, b) = pair(false);
    let mut o = TransferOpts::bytes(20 * MB);
    o.pace = Some(5 * MB);
    o.stall_timeout = Duration::from_secs(2);
    let t = TcpTransfer::start(b.ns.name(), a.ns.name(), SocketAddr::new(b.addr, 5001), o)
        .expect("start the transfer");
    assert!(t.wait_received(MB, Duration::from_secs(10)));
    a.ns.ip(&["link", "set", "eth0", "down"]);
    let r = t.wait(Duration::from_secs(30));
    assert!(r.is_err(), "a cut transfer was reported intact: {r:?}");
    // A listener cannot be bound on an address the namespace does not have.
    let nowhere = SocketAddr::new(ip("192.0.2.77"), 5001);
    assert!(
        TcpTransfer::start(b.ns.name(), a.ns.name(), nowhere, TransferOpts::bytes(MB)).is_err()
    );
    // And ping reports an absent host as unreachable.
    assert!(
        !b.ns.ping(ip("192.0.2.77"), 1),
        "ping to an absent host must fail"
    );
}

#[test]
fn wggo_drops_spoofed_source() {
    if !require_root() {
        return;
    }
    let p = wg_pair(false);
    p.a.ns.assert_reaches(p.ob);
    // An extra address on A's WireGuard interface, outside the AllowedIPs B has for A.
    p.a.ns.add_addr(p.wa.iface(), "10.100.0.99/32");
    let dst = SocketAddr::new(p.ob, 5555);
    let col = UdpCollector::start(p.b.ns.name(), dst).expect("start the UDP collector");
    let (_, tx_before) = p.wa.transfer(&p.wb.key().public);
    for i in 0..5 {
        udp_send(
            p.a.ns.name(),
            ip("10.100.0.99"),
            dst,
            format!("spoof-{i}").as_bytes(),
        )
        .expect("send a spoofed datagram");
    }
    for i in 0..3 {
        udp_send(p.a.ns.name(), p.oa, dst, format!("ctl-{i}").as_bytes()).expect("send a datagram");
    }
    assert!(
        col.wait_for(b"ctl-0", Duration::from_secs(5)),
        "control datagram from the legitimate address did not arrive: {:?}",
        col.received()
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = col.stop();
    assert!(
        got.iter().all(|d| !d.data.starts_with(b"spoof")),
        "a spoofed datagram got through: {got:?}"
    );
    assert!(got.iter().all(|d| d.from.ip() == p.oa), "{got:?}");
    // The spoofed datagrams did go into the tunnel (8 datagrams' worth of ciphertext at least).
    let (_, tx_after) = p.wa.transfer(&p.wb.key().public);
    assert!(
        tx_after >= tx_before + 8 * 32,
        "A sent too little into the tunnel: {tx_before} -> {tx_after}"
    );
}

#[test]
fn switch_and_nft_counters() {
    if !require_root() {
        return;
    }
    let (_sw, hosts) = switched(3, false);
    let (a, b, c) = (&hosts[0], &hosts[1], &hosts[2]);
    install_counters(
        &a.ns,
        &[
            CounterSpec::new("to_b", Dir::To, b.addr),
            CounterSpec::new("to_c", Dir::To, c.addr),
            CounterSpec::new("from_c", Dir::From, c.addr),
        ],
    );
    a.ns.assert_reaches(b.addr);
    b.ns.assert_reaches(c.addr);
    assert!(read_counter(&a.ns, "to_b") >= 3);
    assert_eq!(read_counter(&a.ns, "to_c"), 0);
    assert_eq!(read_counter(&a.ns, "from_c"), 0);
    // The counters for c work too: they count as soon as a talks to c.
    a.ns.assert_reaches(c.addr);
    assert!(read_counter(&a.ns, "to_c") >= 3);
    assert!(read_counter(&a.ns, "from_c") >= 3);
}

#[test]
fn wggo_roaming_mid_transfer() {
    if !require_root() {
        return;
    }
    let mut p = wg_pair(false);
    p.a.ns.assert_reaches(p.ob);
    let bytes = 40 * MB;
    let mut o = TransferOpts::bytes(bytes);
    o.pace = Some(10 * MB);
    // wireguard-go keeps sending from the vanished address for ~15 s before it recovers, and TCP
    // backs off meanwhile: be patient (meshd's own roaming test keeps the default).
    o.stall_timeout = Duration::from_secs(90);
    let t = TcpTransfer::start(p.b.ns.name(), p.a.ns.name(), SocketAddr::new(p.ob, 5001), o)
        .expect("start the transfer");
    assert!(
        t.wait_received(5 * MB, Duration::from_secs(30)),
        "transfer did not get going"
    );
    p.a.change_ipv4_address("192.0.2.11/24", "192.0.2.1/24");
    let at_change = t.received();
    let r = t
        .wait(Duration::from_secs(180))
        .expect("transfer across the address change");
    assert!(r.is_intact(bytes), "{r:?}");
    assert!(
        at_change < bytes,
        "the address changed only after the transfer"
    );
    assert_eq!(
        p.wb.endpoint(&p.wa.key().public),
        format!("192.0.2.11:{PORT}"),
        "B did not follow A to its new address"
    );
}
