//! A handshake storm at a hub: 1,000 real peers (boringtun sessions in the test process, from
//! 100 addresses of a third host) handshake with a meshd hub at once, while a meshd peer's
//! traffic runs through the hub; then the hub is killed and restarted and they all come back
//! at once, and once more on the running hub.
//! - Every storm peer gets its session within 10 s, each time.
//! - The established peer's traffic does not stall during a storm (gap under 500 ms), and
//!   flows again within 2 s of the hub's restart, storm or not.
//! - The hub's memory grows by about a session per storm peer the first time (their state
//!   is made on first use), and not again when they all handshake anew.

use meshd_e2e::process::rss_kib;
use meshd_e2e::pulse::Pulse;
use meshd_e2e::storm::{storm, StormReport};
use meshd_e2e::topo::{endpoint, switched};
use meshd_e2e::{host_of, require_root, Key, MeshSpec, Meshd};
use rand_core::{OsRng, RngCore};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const PORT: u16 = 51820;
const STORM_PEERS: usize = 1000;
const SOURCES: u8 = 100;
const EVERY: Duration = Duration::from_millis(10);
const DEADLINE: Duration = Duration::from_secs(10);

fn assert_all_in(what: &str, r: &StormReport) {
    eprintln!(
        "{what}: {} of {STORM_PEERS} peers in after {:.2?} ({} initiations, {} cookie replies)",
        r.completed, r.all_after, r.initiations, r.cookie_replies
    );
    assert_eq!(
        r.completed, STORM_PEERS,
        "{what}: not every peer got a session within {DEADLINE:?}: {r:?}"
    );
}

#[test]
fn a_hub_takes_a_thousand_handshakes_at_once_without_stalling_or_growing() {
    if !require_root() {
        return;
    }
    let (_switch, hosts) = switched(3, false);
    let (a, b, x) = (&hosts[0], &hosts[1], &hosts[2]);
    // The storm's source addresses, on the third host.
    let sources: Vec<IpAddr> = (0..SOURCES)
        .map(|i| {
            let cidr = format!("192.0.2.{}/24", 100 + i);
            x.ns.add_addr(&x.dev, &cidr);
            host_of(&cidr)
        })
        .collect();

    let mut mesh = MeshSpec::new();
    mesh.node("a", "10.100.0.1/16", Some(&endpoint(a.addr, PORT)));
    mesh.node("b", "10.100.0.2/16", Some(&endpoint(b.addr, PORT)));
    let mut keys = Vec::with_capacity(STORM_PEERS);
    for i in 0..STORM_PEERS {
        let mut private = [0u8; 32];
        OsRng.fill_bytes(&mut private);
        let secret = boringtun::x25519::StaticSecret::from(private);
        let public = boringtun::x25519::PublicKey::from(&secret);
        use base64::Engine as _;
        let key = Key {
            private: String::new(),
            public: base64::engine::general_purpose::STANDARD.encode(public.as_bytes()),
        };
        let host = i + 3;
        // No endpoint: the hub learns each one from its handshake.
        mesh.node_with_key(
            &format!("s{i:04}"),
            key,
            &format!("10.100.{}.{}/16", host >> 8, host & 255),
            None,
        );
        keys.push(private);
    }
    mesh.rule("\"*\"", "a", &["icmp"]);
    mesh.rule_both("a", "b", &["any"]);
    let files = mesh.write();
    let hub_key: [u8; 32] = {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&mesh.key("a").public)
            .unwrap_or_default();
        bytes.try_into().expect("the hub's key is 32 bytes")
    };
    let hub = SocketAddr::new(a.addr, PORT);

    let mut ma = Meshd::start(&a.ns, &files, "a");
    let mb = Meshd::start(&b.ns, &files, "b");
    let oa = host_of("10.100.0.1/16");
    b.ns.assert_reaches(oa);
    let pulse = Pulse::start(b.ns.name(), a.ns.name(), SocketAddr::new(oa, 7010), EVERY)
        .expect("start the pulse");
    assert!(
        pulse
            .wait_after(Instant::now(), Duration::from_secs(5))
            .is_some(),
        "nothing flows from b to the hub"
    );
    let before = rss_kib(ma.pid());

    // 1. The storm on a running hub.
    let t = Instant::now();
    let first = storm(x.ns.name(), &keys, hub, hub_key, &sources, DEADLINE)
        .expect("storm on the running hub");
    assert_all_in("storm on the running hub", &first);
    let gap = pulse.longest_gap_after(t);
    eprintln!("b -> hub: longest gap during the storm {gap:.2?}");
    assert!(gap < Duration::from_millis(500), "b -> hub stalled {gap:?}");
    let after_first = rss_kib(ma.pid());
    eprintln!(
        "hub RSS {} KiB before, {} KiB after ({} KiB a storm peer)",
        before,
        after_first,
        after_first.saturating_sub(before) / STORM_PEERS as u64
    );
    assert!(
        after_first <= before + STORM_PEERS as u64 * 40,
        "hub RSS grew from {before} to {after_first} KiB for {STORM_PEERS} sessions"
    );

    // 2. The hub is killed and comes back: everyone at once, b through its lost session.
    ma.daemon().signal(libc::SIGKILL);
    assert!(ma.daemon().wait_exit(Duration::from_secs(10)).is_some());
    drop(ma);
    let restarted = Instant::now();
    let ma = Meshd::start(&a.ns, &files, "a");
    let second = storm(x.ns.name(), &keys, hub, hub_key, &sources, DEADLINE)
        .expect("storm on the restarted hub");
    assert_all_in("storm on the restarted hub", &second);
    let back = pulse.wait_after(restarted, Duration::from_secs(10));
    eprintln!("b -> hub flows again {back:.2?} after the restart");
    let back = back.expect("b's traffic did not come back");
    assert!(
        back <= Duration::from_secs(2),
        "b's traffic back after {back:?}"
    );

    // 3. Once more on the running hub: new handshakes for sessions it has.
    let after_second = rss_kib(ma.pid());
    let t = Instant::now();
    let third = storm(x.ns.name(), &keys, hub, hub_key, &sources, DEADLINE).expect("storm again");
    assert_all_in("storm again", &third);
    let gap = pulse.longest_gap_after(t);
    assert!(gap < Duration::from_millis(500), "b -> hub stalled {gap:?}");
    let after_third = rss_kib(ma.pid());
    eprintln!(
        "hub RSS {after_second} KiB after the second storm, {after_third} KiB after the third"
    );
    assert!(
        after_third * 10 <= after_second * 11 + 2048 * 10,
        "hub RSS grew from {after_second} to {after_third} KiB on handshakes for sessions it had"
    );
    drop(pulse);
    let stopped = ma.stop();
    stopped.assert_clean();
    mb.stop().assert_clean();
}
