//! Either side of a meshd pair is killed (SIGKILL, no goodbye) and started again while UDP
//! flows both ways through the tunnel: traffic flows again, both ways, within a second of the
//! restart. The side that kept running still sends on the session the other lost; the
//! restarted side answers such data with a new handshake instead of waiting for the
//! survivor's timers. A node that starts handshakes with its keepalive peers before any
//! traffic, and with the others at their first packet.

use meshd_e2e::pulse::Pulse;
use meshd_e2e::topo::{overlay_cidr, pair, two_node_mesh};
use meshd_e2e::{host_of, require_root, Meshd};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(10);
const LIMIT: Duration = Duration::from_secs(1);

#[test]
fn traffic_flows_again_within_a_second_of_either_side_restarting() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let files = two_node_mesh(&a, &b).write();
    let mut nodes = [
        Some(Meshd::start(&a.ns, &files, "a")),
        Some(Meshd::start(&b.ns, &files, "b")),
    ];
    let (oa, ob) = (
        host_of(&overlay_cidr(1, false)),
        host_of(&overlay_cidr(2, false)),
    );
    a.ns.assert_reaches(ob);
    // Traffic one way only, from the survivor to the restarted node: with traffic both ways
    // the restarted node's own packets would start a handshake and hide the case.
    for (i, name, ns, from, to, dst) in [
        (1, "b", &b.ns, &a.ns, &b.ns, SocketAddr::new(ob, 7001)),
        (0, "a", &a.ns, &b.ns, &a.ns, SocketAddr::new(oa, 7002)),
    ] {
        let pulse = Pulse::start(from.name(), to.name(), dst, EVERY).expect("start the pulse");
        let flowing = Instant::now();
        assert!(
            pulse.wait_after(flowing, Duration::from_secs(5)).is_some(),
            "nothing flows to {name} before its restart"
        );
        let mut old = nodes[i].take().expect("the node is running");
        old.daemon().signal(libc::SIGKILL);
        assert!(old.daemon().wait_exit(Duration::from_secs(10)).is_some());
        drop(old);
        // A moment down, as a crash and a restart by systemd would take.
        std::thread::sleep(Duration::from_millis(300));
        let restarted = Instant::now();
        nodes[i] = Some(Meshd::start(ns, &files, name));
        let ready = restarted.elapsed();
        let back = pulse.wait_after(restarted, Duration::from_secs(20));
        eprintln!(
            "{name} restarted (ready in {ready:.2?}): traffic to it flows again after {back:.2?}"
        );
        let back =
            back.unwrap_or_else(|| panic!("no traffic to {name} within 20 s of its restart"));
        assert!(
            back <= LIMIT,
            "traffic to {name} came back {back:.2?} after its restart (ready in {ready:.2?}), over {LIMIT:?}"
        );
    }
    for n in nodes.into_iter().flatten() {
        n.stop().assert_clean();
    }
}

#[test]
fn a_starting_node_greets_its_keepalive_peers_and_the_others_at_their_first_packet() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let mut mesh = two_node_mesh(&a, &b);
    // b has no keepalive: a makes no session with it until a packet is for it.
    let files = mesh.write();
    let mb = Meshd::start(&b.ns, &files, "b");
    let mut ma = Meshd::start(&a.ns, &files, "a");
    std::thread::sleep(Duration::from_millis(1500));
    let quiet = ma.stop();
    quiet.assert_clean();
    assert!(
        !quiet.log_contains("peer up"),
        "a handshook with b, a peer without keepalive, before any traffic"
    );
    ma = Meshd::start(&a.ns, &files, "a");
    let ob = host_of(&overlay_cidr(2, false));
    a.ns.assert_reaches(ob);
    ma.wait_for_log("peer up peer=b role=initiator", LIMIT)
        .unwrap_or_else(|e| panic!("a's first packet made no handshake: {e}"));
    ma.stop().assert_clean();
    mb.stop().assert_clean();

    // With keepalive on b, a greets it as it starts: no packet goes through the tunnel.
    mesh.get_mut("b").keepalive = Some(25);
    let files = mesh.write();
    let mb = Meshd::start(&b.ns, &files, "b");
    let started = Instant::now();
    let mut ma = Meshd::start(&a.ns, &files, "a");
    ma.wait_for_log("peer up peer=b role=initiator", LIMIT)
        .unwrap_or_else(|e| panic!("a did not greet b, a keepalive peer: {e}"));
    eprintln!("a started: session with b after {:.2?}", started.elapsed());
    ma.stop().assert_clean();
    mb.stop().assert_clean();

    // With keepalive on a itself (behind NAT, nobody reaches it first), a greets every peer.
    mesh.get_mut("b").keepalive = None;
    mesh.get_mut("a").keepalive = Some(25);
    let files = mesh.write();
    let mb = Meshd::start(&b.ns, &files, "b");
    let mut ma = Meshd::start(&a.ns, &files, "a");
    ma.wait_for_log("peer up peer=b role=initiator", LIMIT)
        .unwrap_or_else(|e| panic!("a, with keepalive, did not greet b: {e}"));
    ma.stop().assert_clean();
    mb.stop().assert_clean();

    // A reload that brings a keepalive peer greets it; here b changes (a new session).
    mesh.get_mut("a").keepalive = None;
    let files = mesh.write();
    let mb = Meshd::start(&b.ns, &files, "b");
    let mut ma = Meshd::start(&a.ns, &files, "a");
    std::thread::sleep(Duration::from_millis(500));
    mesh.get_mut("b").keepalive = Some(25);
    std::fs::write(&files.config, mesh.to_yaml()).expect("write the config");
    let bin = meshd_e2e::meshd_bin().to_string_lossy().into_owned();
    let out = ma.exec(&[&bin, "reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ma.wait_for_log("peer up peer=b role=initiator", LIMIT)
        .unwrap_or_else(|e| panic!("a did not greet b, made a keepalive peer by a reload: {e}"));
    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
    assert_eq!(
        sa.stopped.log.matches("peer up").count(),
        1,
        "a handshook with b before the reload made it a keepalive peer"
    );
}

#[test]
fn a_restarted_node_whose_greeting_was_lost_answers_the_old_session_with_a_handshake() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let mut mesh = two_node_mesh(&a, &b);
    // a has keepalive: b greets it as it starts.
    mesh.get_mut("a").keepalive = Some(25);
    let files = mesh.write();
    let ma = Meshd::start(&a.ns, &files, "a");
    let mut mb = Some(Meshd::start(&b.ns, &files, "b"));
    let ob = host_of(&overlay_cidr(2, false));
    a.ns.assert_reaches(ob);
    let pulse = Pulse::start(a.ns.name(), b.ns.name(), SocketAddr::new(ob, 7006), EVERY)
        .expect("start the pulse");
    assert!(
        pulse
            .wait_after(Instant::now(), Duration::from_secs(5))
            .is_some(),
        "nothing flows to b before its restart"
    );
    let mut old = mb.take().expect("b is running");
    old.daemon().signal(libc::SIGKILL);
    assert!(old.daemon().wait_exit(Duration::from_secs(10)).is_some());
    drop(old);

    // While b starts, everything it sends to a's WireGuard port is lost: its greeting too.
    let nft = |script: &str| b.ns.exec_ok(&["nft", script]);
    nft("add table inet lose");
    nft("add chain inet lose out { type filter hook output priority 0; }");
    nft("add rule inet lose out udp dport 51820 drop");
    let restarted = Instant::now();
    mb = Some(Meshd::start(&b.ns, &files, "b"));
    std::thread::sleep(Duration::from_millis(300));
    nft("delete table inet lose");
    let lost_until = restarted.elapsed();
    // a still sends on the session b lost; b answers with a new initiation (at most one a
    // second), well before its lost greeting's retransmit (5 s).
    let back = pulse.wait_after(restarted, Duration::from_secs(20));
    eprintln!(
        "b restarted, its handshakes lost for {lost_until:.2?}: traffic back after {back:.2?}"
    );
    let back = back.expect("no traffic to b within 20 s of its restart");
    assert!(
        back <= Duration::from_millis(2500),
        "traffic to b came back {back:.2?} after its restart, its handshakes lost for \
         {lost_until:.2?}"
    );
    drop(pulse);
    if let Some(m) = mb {
        m.stop().assert_clean();
    }
    ma.stop().assert_clean();
}
