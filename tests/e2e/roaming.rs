//! Roaming: node a's underlay address changes in the middle of a 100 MB transfer a -> b. The
//! transfer completes intact, and b follows a to its new address and logs it. Each end sends
//! through a socket connected to the other's endpoint; a's, left with a source address that is
//! gone, is replaced by one from the new address, and b connects one to a's new endpoint.

use meshd_e2e::topo::{endpoint, overlay_cidr, pair};
use meshd_e2e::transfer::{TcpTransfer, TransferOpts};
use meshd_e2e::{host_of, require_root, MeshSpec, Meshd, MB};
use std::net::SocketAddr;
use std::time::Duration;

const PORT: u16 = 51820;

#[test]
fn endpoint_follows_the_peer_mid_transfer() {
    if !require_root() {
        return;
    }
    let (mut a, b) = pair(false);
    let mut mesh = MeshSpec::new();
    mesh.node("a", &overlay_cidr(1, false), Some(&endpoint(a.addr, PORT)));
    mesh.node("b", &overlay_cidr(2, false), Some(&endpoint(b.addr, PORT)));
    mesh.rule_both("a", "b", &["any"]);
    let files = mesh.write();
    let ma = Meshd::start(&a.ns, &files, "a");
    let mut mb = Meshd::start(&b.ns, &files, "b");
    let ob = host_of(&overlay_cidr(2, false));
    a.ns.assert_reaches(ob);
    let (ea, eb) = (endpoint(a.addr, PORT), endpoint(b.addr, PORT));
    assert_eq!(
        a.ns.connected_udp(PORT),
        [(ea.clone(), eb.clone())],
        "a's connected sockets"
    );
    assert_eq!(
        b.ns.connected_udp(PORT),
        [(eb.clone(), ea)],
        "b's connected sockets"
    );

    let bytes = 100 * MB;
    let mut o = TransferOpts::bytes(bytes);
    // Paced so that the change surely happens mid-transfer (about 4 s in all).
    o.pace = Some(25 * MB);
    let t = TcpTransfer::start(b.ns.name(), a.ns.name(), SocketAddr::new(ob, 5001), o)
        .expect("start the transfer");
    assert!(
        t.wait_received(20 * MB, Duration::from_secs(60)),
        "the transfer did not get going: {} bytes",
        t.received()
    );
    a.change_ipv4_address("192.0.2.11/24", "192.0.2.1/24");
    let at_change = t.received();
    let r = t
        .wait(Duration::from_secs(150))
        .expect("transfer across the address change");
    assert!(r.is_intact(bytes), "{r:?}");
    assert!(
        at_change < bytes,
        "the address changed only after the transfer"
    );
    eprintln!("100 MB across the address change in {:.2?}", r.elapsed);

    if let Err(e) = mb.wait_for_log("endpoint changed", Duration::from_secs(10)) {
        panic!("b did not log the endpoint change: {e}");
    }
    let moved = format!("192.0.2.11:{PORT}");
    assert_eq!(
        a.ns.connected_udp(PORT),
        [(moved.clone(), eb.clone())],
        "a's connected sockets"
    );
    assert!(
        b.ns.connected_udp(PORT).contains(&(eb, moved)),
        "b has no socket connected to a's new endpoint: {:?}",
        b.ns.connected_udp(PORT)
    );
    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
    assert!(
        sb.log_contains("endpoint changed peer=a"),
        "b's log lacks `endpoint changed peer=a`:\n{}",
        sb.stopped.log
    );
}
