//! A wireguard-go peer sends inner packets whose source is outside its AllowedIPs: meshd must
//! drop them after decryption (cryptokey routing, inbound) and count them as allowed_ips, while a
//! datagram from the peer's legitimate address arrives.

use meshd_e2e::topo::{endpoint, pair};
use meshd_e2e::{ip, require_root, udp_send, Key, MeshSpec, Meshd, UdpCollector, WgGo};
use std::net::SocketAddr;
use std::time::Duration;

const PORT: u16 = 51820;
const SPOOFED: u64 = 5;

#[test]
fn spoofed_inner_source_is_dropped_and_counted() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false); // a: meshd "m", b: wireguard-go "w"
    let kw = Key::generate();
    let mut mesh = MeshSpec::new();
    mesh.node("m", "10.100.0.1/24", Some(&endpoint(a.addr, PORT)));
    mesh.node_with_key(
        "w",
        kw.clone(),
        "10.100.0.2/24",
        Some(&endpoint(b.addr, PORT)),
    );
    mesh.rule_both("m", "w", &["any"]);
    let files = mesh.write();
    let km = mesh.key("m").clone();

    let wg = WgGo::start(&b.ns, &kw, PORT);
    wg.set_peer(
        &km.public,
        Some(SocketAddr::new(a.addr, PORT)),
        &["10.100.0.1/32"],
        None,
    );
    wg.add_addr(&b.ns, "10.100.0.2/24");
    // Outside the AllowedIPs meshd has for w (10.100.0.2/32).
    wg.add_addr(&b.ns, "10.100.0.99/32");
    wg.up(&b.ns);
    let m = Meshd::start(&a.ns, &files, "m");

    let (om, ow, spoof) = (ip("10.100.0.1"), ip("10.100.0.2"), ip("10.100.0.99"));
    b.ns.assert_reaches(om);

    let dst = SocketAddr::new(om, 5555);
    let col = UdpCollector::start(a.ns.name(), dst).expect("start the UDP collector");
    let (_, tx_before) = wg.transfer(&km.public);
    for i in 0..SPOOFED {
        udp_send(b.ns.name(), spoof, dst, format!("spoof-{i}").as_bytes())
            .expect("send a spoofed datagram");
    }
    for i in 0..3 {
        udp_send(b.ns.name(), ow, dst, format!("ctl-{i}").as_bytes()).expect("send a datagram");
    }
    assert!(
        col.wait_for(b"ctl-0", Duration::from_secs(5)),
        "the datagram from w's legitimate address did not arrive: {:?}",
        col.received()
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = col.stop();
    assert!(
        got.iter().all(|d| !d.data.starts_with(b"spoof")),
        "meshd delivered a packet with a source outside the peer's AllowedIPs: {got:?}"
    );
    // wireguard-go did put them into the tunnel (each datagram is >= 32 bytes of ciphertext).
    let (_, tx_after) = wg.transfer(&km.public);
    assert!(
        tx_after >= tx_before + (SPOOFED + 3) * 32,
        "wireguard-go sent too little: {tx_before} -> {tx_after}"
    );

    let s = m.stop();
    s.assert_clean();
    assert!(
        s.counter("dropped_allowed_ips") >= SPOOFED,
        "dropped_allowed_ips={} < {SPOOFED} spoofed packets",
        s.counter("dropped_allowed_ips")
    );
}
