//! Handshake floods from one attacker address on the same underlay: initiations with a valid
//! mac1 (from the target's public key) at 10,000 a second, plus initiations that claim a
//! peer's key with a forged timestamp at 2,000 a second. Under both:
//! - a live session between two meshd nodes is untouched (no gap in its traffic);
//! - a restarted meshd peer gets in within a second;
//! - a new wireguard-go peer gets in within 6 s (its retransmit, if it must answer a cookie);
//! - each kind of attack is counted under its own drop reason, and the attacker's address is
//!   blocked in the socket filter.

use meshd_e2e::attack::{AttackOpts, Attacker, Kind, Summary};
use meshd_e2e::pulse::Pulse;
use meshd_e2e::topo::{endpoint, overlay_cidr, switched, two_node_mesh, Host};
use meshd_e2e::{host_of, require_root, Key, MeshSpec, Meshd, WgGo};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PORT: u16 = 51820;
const EVERY: Duration = Duration::from_millis(10);

/// Both floods from `attacker` at `target` (whose key is `target_key`), the forged initiations
/// claiming `claim`'s key.
fn floods(
    attacker: &Host,
    target: SocketAddr,
    target_key: &Key,
    claim: &Key,
    secs: f64,
) -> [Attacker; 2] {
    meshd_e2e::attack::use_attacker_bin(env!("CARGO_BIN_EXE_meshd-attacker"));
    let mac1 = Attacker::spawn(
        &attacker.ns,
        target,
        target_key,
        Kind::InitMac1,
        10_000,
        secs,
    );
    let mut o = AttackOpts::new(target, target_key, Kind::Impersonate, 2_000, secs);
    o.claim = Some(claim.public.clone());
    [mac1, Attacker::spawn_with(&attacker.ns, &o)]
}

fn stop(floods: [Attacker; 2]) -> Vec<Summary> {
    let summaries: Vec<Summary> = floods.into_iter().map(Attacker::stop).collect();
    for s in &summaries {
        eprintln!(
            "flood {}: {} sent at {:.0}/s, {} cookie replies",
            s.kind, s.sent, s.achieved_rate, s.cookie_replies
        );
        assert!(s.achieved_rate > 1000.0, "the flood did not run: {s:?}");
    }
    summaries
}

#[test]
fn meshd_peers_keep_their_session_and_a_restarted_one_gets_in_within_a_second() {
    if !require_root() {
        return;
    }
    let (_switch, hosts) = switched(3, false);
    let (a, b, x) = (&hosts[0], &hosts[1], &hosts[2]);
    let mesh = two_node_mesh(a, b);
    let files = mesh.write();
    let mut ma = Some(Meshd::start(&a.ns, &files, "a"));
    let mb = Meshd::start(&b.ns, &files, "b");
    let ob = host_of(&overlay_cidr(2, false));
    a.ns.assert_reaches(ob);
    let pulse = Pulse::start(a.ns.name(), b.ns.name(), SocketAddr::new(ob, 7003), EVERY)
        .expect("start the pulse");
    let target = SocketAddr::new(b.addr, PORT);
    let attack = floods(x, target, mesh.key("b"), mesh.key("a"), 60.0);
    std::thread::sleep(Duration::from_secs(3));
    let gap = pulse.longest_gap_after(Instant::now() - Duration::from_secs(3));
    eprintln!("longest gap in a -> b under the floods: {gap:.2?}");
    assert!(
        gap < Duration::from_millis(500),
        "a -> b stalled {gap:?} under the floods"
    );

    let mut old = ma.take().expect("a is running");
    old.daemon().signal(libc::SIGKILL);
    assert!(old.daemon().wait_exit(Duration::from_secs(10)).is_some());
    drop(old);
    std::thread::sleep(Duration::from_millis(300));
    let restarted = Instant::now();
    ma = Some(Meshd::start(&a.ns, &files, "a"));
    let back = pulse.wait_after(restarted, Duration::from_secs(30));
    eprintln!("a restarted under the floods: a -> b flows again after {back:.2?}");
    let back = back.expect("a never got back in under the floods");
    assert!(
        back <= Duration::from_secs(1),
        "a got back in only after {back:?}"
    );
    stop(attack);
    drop(pulse);

    let sb = mb.stop();
    sb.assert_clean();
    // Initiations from keys b does not know, and forged ones claiming a's key, each where it
    // belongs; what was over the attacker's budget was refused before any Diffie-Hellman.
    for (reason, what) in [
        ("dropped_unknown_peer", "initiations from unknown keys"),
        ("dropped_handshake", "forged initiations claiming a's key"),
        (
            "dropped_rate_limited",
            "initiations over the attacker's budget",
        ),
    ] {
        assert!(sb.counter(reason) > 0, "b counted no {what} ({reason})");
    }
    // Far over its budget, the attacker's address was blocked in b's socket filter.
    let blocked = format!("handshake messages from {} dropped in the kernel", x.addr);
    assert!(sb.log_contains(&blocked), "b's log has no '{blocked}'");
    let in_kernel = b.ns.udp_filtered();
    eprintln!("b's socket filter dropped {in_kernel} datagrams");
    let refused = sb.counter("dropped_rate_limited") + sb.counter("dropped_under_load") + in_kernel;
    let worked = sb.counter("dropped_unknown_peer") + sb.counter("dropped_handshake");
    assert!(
        worked * 20 < refused,
        "b did Diffie-Hellman work for {worked} attacker initiations, refused {refused}"
    );
    if let Some(m) = ma {
        m.stop().assert_clean();
    }
}

#[test]
fn a_new_wireguard_go_peer_gets_in_within_six_seconds() {
    if !require_root() {
        return;
    }
    let (_switch, hosts) = switched(3, false);
    let (m, w, x) = (&hosts[0], &hosts[1], &hosts[2]);
    let kw = Key::generate();
    let mut mesh = MeshSpec::new();
    mesh.node("m", "10.100.0.1/24", Some(&endpoint(m.addr, PORT)));
    mesh.node_with_key("w", kw.clone(), "10.100.0.2/24", None);
    mesh.rule_both("m", "w", &["any"]);
    let files = mesh.write();
    let km = mesh.key("m").clone();
    let meshd = Meshd::start(&m.ns, &files, "m");
    let attack = floods(x, SocketAddr::new(m.addr, PORT), &km, &kw, 60.0);
    std::thread::sleep(Duration::from_secs(3));

    let started = Instant::now();
    let wg = WgGo::start(&w.ns, &kw, PORT);
    wg.set_peer(
        &km.public,
        Some(SocketAddr::new(m.addr, PORT)),
        &["10.100.0.1/32"],
        None,
    );
    wg.add_addr(&w.ns, "10.100.0.2/24");
    wg.up(&w.ns);
    let dst = SocketAddr::new(host_of("10.100.0.1/24"), 7004);
    let pulse = Pulse::start(w.ns.name(), m.ns.name(), dst, EVERY).expect("start the pulse");
    let back = pulse.wait_after(started, Duration::from_secs(30));
    eprintln!("wireguard-go under the floods: first packet through after {back:.2?}");
    let back = back.expect("wireguard-go never got in under the floods");
    assert!(
        back <= Duration::from_secs(6),
        "wireguard-go got in only after {back:?}"
    );
    stop(attack);
    drop(pulse);
    meshd.stop().assert_clean();
}
