//! Three meshd nodes a, b, c on one switch; policy joins a–b and b–c only. a reaches b, b
//! reaches c, a cannot reach c, and not a single packet goes between a and c on the underlay
//! (nft counters inside a's namespace, installed before any meshd starts).

use meshd_e2e::nft::{install_counters, read_counter, CounterSpec, Dir};
use meshd_e2e::topo::{endpoint, overlay_cidr, switched};
use meshd_e2e::transfer::{TcpTransfer, TransferOpts};
use meshd_e2e::{host_of, require_root, udp_send, MeshSpec, Meshd, UdpCollector};
use std::net::SocketAddr;
use std::time::Duration;

const PORT: u16 = 51820;

#[test]
fn policy_decides_who_peers() {
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

    let mut mesh = MeshSpec::new();
    for (i, (name, h)) in [("a", a), ("b", b), ("c", c)].into_iter().enumerate() {
        let n = u8::try_from(i + 1).unwrap_or(1);
        mesh.node(name, &overlay_cidr(n, false), Some(&endpoint(h.addr, PORT)));
    }
    mesh.rule_both("a", "b", &["any"]);
    mesh.rule_both("b", "c", &["any"]);
    let files = mesh.write();
    let (oa, ob, oc) = (
        host_of(&overlay_cidr(1, false)),
        host_of(&overlay_cidr(2, false)),
        host_of(&overlay_cidr(3, false)),
    );

    let ma = Meshd::start(&a.ns, &files, "a");
    let mb = Meshd::start(&b.ns, &files, "b");
    let mc = Meshd::start(&c.ns, &files, "c");

    a.ns.assert_reaches(ob);
    b.ns.assert_reaches(oc);
    c.ns.assert_reaches(ob);

    // a tries c every way it can: ping, UDP, TCP. c tries a.
    let col = UdpCollector::start(c.ns.name(), SocketAddr::new(oc, 5555))
        .expect("start the UDP collector");
    assert!(!a.ns.ping(oc, 3), "a reached c, which policy does not join");
    for i in 0..3 {
        // The send itself may fail (e.g. EHOSTUNREACH from meshd's ICMP): nothing may arrive.
        let _ = udp_send(
            a.ns.name(),
            oa,
            SocketAddr::new(oc, 5555),
            format!("x{i}").as_bytes(),
        );
    }
    let mut o = TransferOpts::bytes(1000);
    o.connect_timeout = Duration::from_secs(3);
    if let Ok(t) = TcpTransfer::start(c.ns.name(), a.ns.name(), SocketAddr::new(oc, 5001), o) {
        assert!(
            t.wait(Duration::from_secs(15)).is_err(),
            "a opened a TCP connection to c"
        );
    }
    assert!(!c.ns.ping(oa, 3), "c reached a, which policy does not join");
    std::thread::sleep(Duration::from_secs(1));
    let got = col.stop();
    assert!(got.is_empty(), "c received datagrams from a: {got:?}");

    let to_b = read_counter(&a.ns, "to_b");
    let to_c = read_counter(&a.ns, "to_c");
    let from_c = read_counter(&a.ns, "from_c");
    eprintln!("underlay packets seen in a: to b {to_b}, to c {to_c}, from c {from_c}");
    assert!(
        to_b > 0,
        "the counters see nothing (a talked to b): broken counting"
    );
    assert_eq!(to_c, 0, "a sent {to_c} packets to c's underlay address");
    assert_eq!(
        from_c, 0,
        "a received {from_c} packets from c's underlay address"
    );

    let (sa, sb, sc) = (ma.stop(), mb.stop(), mc.stop());
    sa.assert_clean();
    sb.assert_clean();
    sc.assert_clean();
    assert!(
        sa.counter("dropped_no_route") >= 3,
        "a's pings to c (no peer, no route) were not counted as dropped_no_route: {:?}",
        sa.counters
    );
}
