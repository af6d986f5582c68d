//! meshd <-> wireguard-go interop, each side initiating: ping both ways and a 10 MB TCP
//! transfer in each direction with checksums. Only the initiator knows the other's endpoint, so
//! the other side cannot be the one that starts the handshake. meshd, knowing the endpoint of
//! a peer with persistent keepalive, starts it as it starts.

use meshd_e2e::topo::{endpoint, pair};
use meshd_e2e::{assert_tcp_transfer, ip, require_root, Key, MeshSpec, Meshd, WgGo, MB};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PORT: u16 = 51820;

fn interop(meshd_initiates: bool) {
    let (a, b) = pair(false); // a runs meshd ("m"), b runs wireguard-go ("w")
    let kw = Key::generate();
    let mut mesh = MeshSpec::new();
    mesh.node("m", "10.100.0.1/24", Some(&endpoint(a.addr, PORT)));
    let w_endpoint = endpoint(b.addr, PORT);
    let w = mesh.node_with_key(
        "w",
        kw.clone(),
        "10.100.0.2/24",
        meshd_initiates.then_some(w_endpoint.as_str()),
    );
    if meshd_initiates {
        w.keepalive = Some(25);
    }
    mesh.rule_both("m", "w", &["any"]);
    let files = mesh.write();
    let km = mesh.key("m").clone();

    let wg = WgGo::start(&b.ns, &kw, PORT);
    let m_endpoint = (!meshd_initiates).then_some(SocketAddr::new(a.addr, PORT));
    wg.set_peer(&km.public, m_endpoint, &["10.100.0.1/32"], None);
    wg.add_addr(&b.ns, "10.100.0.2/24");
    wg.up(&b.ns);
    let m = Meshd::start(&a.ns, &files, "m");
    if meshd_initiates {
        // meshd greets a keepalive peer with an endpoint as it starts, before any traffic.
        let started = Instant::now();
        while wg.latest_handshake(&km.public) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "meshd did not handshake with wireguard-go as it started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        // It knows no endpoint for wireguard-go: nothing until wireguard-go sends.
        assert_eq!(wg.latest_handshake(&km.public), 0);
    }

    let (om, ow) = (ip("10.100.0.1"), ip("10.100.0.2"));
    if meshd_initiates {
        a.ns.assert_reaches(ow);
        b.ns.assert_reaches(om);
    } else {
        b.ns.assert_reaches(om);
        a.ns.assert_reaches(ow);
    }
    assert!(
        wg.latest_handshake(&km.public) > 0,
        "wireguard-go reports no handshake with meshd"
    );
    let t = Duration::from_secs(90);
    let (server, client) = if meshd_initiates { (&b, &a) } else { (&a, &b) };
    let (dst_fwd, dst_back) = if meshd_initiates { (ow, om) } else { (om, ow) };
    assert_tcp_transfer(
        server.ns.name(),
        client.ns.name(),
        SocketAddr::new(dst_fwd, 5001),
        10 * MB,
        t,
    );
    assert_tcp_transfer(
        client.ns.name(),
        server.ns.name(),
        SocketAddr::new(dst_back, 5002),
        10 * MB,
        t,
    );
    let (rx, tx) = wg.transfer(&km.public);
    assert!(
        rx > 10 * MB && tx > 10 * MB,
        "wireguard-go counted rx {rx} tx {tx}"
    );
    if !meshd_initiates {
        // meshd had no endpoint for w: it learnt it from the handshake.
        assert_eq!(wg.endpoint(&km.public), format!("{}:{PORT}", a.addr));
    }
    let s = m.stop();
    s.assert_clean();
}

#[test]
fn meshd_initiates_to_wireguard_go() {
    if !require_root() {
        return;
    }
    interop(true);
}

#[test]
fn wireguard_go_initiates_to_meshd() {
    if !require_root() {
        return;
    }
    interop(false);
}
