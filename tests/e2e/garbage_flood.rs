//! A garbage flood from one attacker address at a meshd node's WireGuard port: random
//! datagrams, handshake types of the wrong length, data messages to random session indexes.
//! - a live session between two meshd nodes keeps flowing (no gap in its traffic);
//! - the kernel's socket filter drops nearly all of it: data to indexes no session of b's
//!   could have reaches meshd about one time in 256 (the flood replays a pool of 1024
//!   datagrams: a few of them), the rest never.

use meshd_e2e::attack::{Attacker, Kind};
use meshd_e2e::pulse::Pulse;
use meshd_e2e::topo::{overlay_cidr, switched, two_node_mesh};
use meshd_e2e::{host_of, require_root, Meshd};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PORT: u16 = 51820;

#[test]
fn the_kernel_drops_a_garbage_flood_and_the_session_keeps_flowing() {
    if !require_root() {
        return;
    }
    let (_switch, hosts) = switched(3, false);
    let (a, b, x) = (&hosts[0], &hosts[1], &hosts[2]);
    let mesh = two_node_mesh(a, b);
    let files = mesh.write();
    let ma = Meshd::start(&a.ns, &files, "a");
    let mb = Meshd::start(&b.ns, &files, "b");
    let ob = host_of(&overlay_cidr(2, false));
    a.ns.assert_reaches(ob);
    let pulse = Pulse::start(
        a.ns.name(),
        b.ns.name(),
        SocketAddr::new(ob, 7005),
        Duration::from_millis(10),
    )
    .expect("start the pulse");

    meshd_e2e::attack::use_attacker_bin(env!("CARGO_BIN_EXE_meshd-attacker"));
    let filtered_before = b.ns.udp_filtered();
    let target = SocketAddr::new(b.addr, PORT);
    let flood = Attacker::spawn(&x.ns, target, mesh.key("b"), Kind::Garbage, 20_000, 60.0);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let gap = pulse.longest_gap_after(started);
    let summary = flood.stop();
    let filtered = b.ns.udp_filtered() - filtered_before;
    drop(pulse);
    eprintln!(
        "garbage: {} sent at {:.0}/s ({:?}); longest gap in a -> b {gap:.2?}; b's socket \
         filter dropped {filtered}",
        summary.sent, summary.achieved_rate, summary.sent_by_kind
    );
    assert!(
        summary.achieved_rate > 5000.0,
        "the flood did not run: {summary:?}"
    );
    assert!(
        gap < Duration::from_millis(500),
        "a -> b stalled {gap:?} under the flood"
    );

    let sb = mb.stop();
    sb.assert_clean();
    let data = summary
        .sent_by_kind
        .get("data")
        .copied()
        .unwrap_or_default();
    let reached = sb.counter("dropped_unknown_session") + sb.counter("dropped_malformed");
    eprintln!(
        "b: {reached} of {data} garbage data messages reached meshd (unknown_session {}, malformed {})",
        sb.counter("dropped_unknown_session"),
        sb.counter("dropped_malformed")
    );
    assert!(data > 1000, "the flood sent no data messages: {summary:?}");
    assert!(
        reached * 20 < data,
        "{reached} of {data} garbage data messages reached meshd past the socket filter"
    );
    assert!(
        filtered * 10 >= summary.sent * 9,
        "b's socket filter dropped {filtered} of {} garbage datagrams",
        summary.sent
    );
    ma.stop().assert_clean();
}
