//! Connected sockets: meshd sends packets from its device to a peer through a UDP socket
//! connected to the peer's endpoint (on the listening port), but answers a datagram (a
//! handshake response, a cookie reply) through the listening socket, so that whoever sends it
//! datagrams cannot make it open sockets; `MESHD_CONNECTED_SOCKETS=off` uses the listening
//! sockets only.

use meshd_e2e::topo::{endpoint, overlay_cidr, pair, two_node_mesh};
use meshd_e2e::{host_of, require_root, MeshSpec, Meshd, MeshdOpts};
use std::time::Duration;

const PORT: u16 = 51820;

#[test]
fn only_packets_from_the_device_connect_a_socket() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let mut mesh = MeshSpec::new();
    mesh.node("a", &overlay_cidr(1, false), Some(&endpoint(a.addr, PORT)));
    mesh.node("b", &overlay_cidr(2, false), Some(&endpoint(b.addr, PORT)));
    // a may reach b's tcp/5001 only: a datagram to b's udp/9 is dropped by b's firewall, and b
    // sends nothing back from its device.
    mesh.rule("a", "b", &["tcp/5001"]);
    let files = mesh.write();
    let ma = Meshd::start(&a.ns, &files, "a");
    let mut mb = Meshd::start(&b.ns, &files, "b");
    let ob = host_of(&overlay_cidr(2, false));
    let oa = host_of(&overlay_cidr(1, false));
    let (ea, eb) = (endpoint(a.addr, PORT), endpoint(b.addr, PORT));

    // a's first packet makes the session: the handshake goes through the listening sockets.
    let send = format!("echo probe > /dev/udp/{ob}/9");
    a.ns.exec_ok(&["bash", "-c", &send]);
    if let Err(e) = mb.wait_for_log("peer up peer=a", Duration::from_secs(10)) {
        panic!("no handshake: {e}");
    }
    a.ns.exec_ok(&["bash", "-c", &send]);
    // a's packet went through a socket connected to b; b took it through its listening one.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.ns.connected_udp(PORT), [(ea.clone(), eb.clone())]);
    assert_eq!(
        b.ns.connected_udp(PORT),
        [],
        "b connected a socket for an answer"
    );

    // Now b sends from its device (a's firewall drops it; what counts is that b sent).
    b.ns.ping(oa, 1);
    assert_eq!(b.ns.connected_udp(PORT), [(eb, ea)]);
    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
}

#[test]
fn switched_off_everything_goes_through_the_listening_sockets() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let files = two_node_mesh(&a, &b).write();
    let off = || MeshdOpts {
        env: vec![("MESHD_CONNECTED_SOCKETS".into(), "off".into())],
        ..MeshdOpts::default()
    };
    let ma = Meshd::start_with(&a.ns, &files, "a", off());
    let mb = Meshd::start_with(&b.ns, &files, "b", off());
    a.ns.assert_reaches(host_of(&overlay_cidr(2, false)));
    b.ns.assert_reaches(host_of(&overlay_cidr(1, false)));
    assert_eq!(a.ns.connected_udp(PORT), []);
    assert_eq!(b.ns.connected_udp(PORT), []);
    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
}
