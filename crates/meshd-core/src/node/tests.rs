//! Two or three nodes in memory, talking real WireGuard to each other through batches.

use super::*;
use crate::config::{
    AdminConfig, Allow, Endpoint, InterfaceConfig, MeshConfig, NodeConfig, PolicyRule, Pos,
    Selector,
};
use crate::plan::Identity;

struct Mesh {
    keys: Vec<PrivateKey>,
    config: MeshConfig,
}

#[track_caller]
fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a test address")
}

/// Nodes n0, n1, n2 at 10.100.0.{1,2,3}; policy joins n0–n1 and n1–n2 only.
fn mesh() -> Mesh {
    let keys: Vec<PrivateKey> = (0..3).map(|_| PrivateKey::generate()).collect();
    let nodes = keys
        .iter()
        .enumerate()
        .map(|(i, k)| NodeConfig {
            name: format!("n{i}"),
            public_key: k.public_key(),
            address: format!("10.100.0.{}/24", i + 1).parse().unwrap(),
            endpoint: Some(Endpoint::Addr(addr(&format!("192.0.2.{}:51820", i + 1)))),
            routes: if i == 1 {
                vec!["192.168.50.0/24".parse().unwrap()]
            } else {
                vec![]
            },
            keepalive: None,
            open: vec![],
            pos: Pos::default(),
        })
        .collect();
    let rule = |a: &str, b: &str| PolicyRule {
        from: Selector::Nodes(vec![a.into()]),
        to: Selector::Nodes(vec![b.into()]),
        allow: vec![Allow::Any],
        pos: Pos::default(),
    };
    let config = MeshConfig {
        interface: InterfaceConfig::default(),
        admin: AdminConfig::default(),
        nodes,
        policy: vec![rule("n0", "n1"), rule("n2", "n1")],
    };
    Mesh { keys, config }
}

impl Mesh {
    /// Node `i`'s plan under the current config.
    fn plan(&self, i: usize) -> NodePlan {
        NodePlan::new(
            &self.config,
            &Identity::Key {
                public_key: self.keys[i].public_key(),
                name: None,
            },
        )
        .expect("the node has a plan")
    }

    fn node(&self, i: usize) -> Node {
        Node::new(&self.plan(i), &self.keys[i])
    }
}

fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

fn batch() -> Batch {
    Batch::new(8, slot_size(1420))
}

fn one(packet: &[u8]) -> Batch {
    let mut b = batch();
    b.push(packet, addr("0.0.0.0:0"));
    b
}

/// Delivers every datagram in `out` to `node` as if it came from `from`, through the data path
/// and then, for what it set aside, the handshake worker; returns what the node wrote to its
/// device and to the network.
fn deliver(node: &Node, out: &Batch, from: SocketAddr) -> (Batch, Batch) {
    deliver_loaded(node, out, from, false)
}

/// [`deliver`], with the handshake worker under load or not.
fn deliver_loaded(node: &Node, out: &Batch, from: SocketAddr, under_load: bool) -> (Batch, Batch) {
    // Sized as the daemon sizes its receive path.
    let mut inbound = Batch::new(8, MAX_DATAGRAM);
    for (d, _) in out.iter() {
        inbound.push(d, from);
    }
    let mut to_tun = Batch::new(8, MAX_DATAGRAM);
    let mut work = HandshakeWork::default();
    node.handle_datagrams(Instant::now(), &inbound, &mut to_tun, &mut work);
    (to_tun, work_off(node, &work, under_load))
}

/// What the handshake worker sends for `work`.
fn work_off(node: &Node, work: &HandshakeWork, under_load: bool) -> Batch {
    let mut to_net = batch();
    for (m, from) in work.messages.iter() {
        node.handle_handshake(Instant::now(), m, from, under_load, &mut to_net);
    }
    for &slot in &work.initiate {
        node.initiate(Instant::now(), slot, &mut to_net);
    }
    for &slot in &work.start {
        node.start(Instant::now(), slot, &mut to_net);
    }
    to_net
}

/// Into `out`, what `node` sends for `packets` read from its device: through the data path
/// and, for peers without a session, the handshake worker.
fn send(node: &Node, packets: &Batch, out: &mut Batch) {
    let mut work = HandshakeWork::default();
    node.handle_tun_packets(Instant::now(), packets.packets(), out, &mut work);
    for (d, to) in work_off(node, &work, false).iter() {
        out.push(d, to);
    }
}

/// What `node` sends for one packet read from its device.
fn encrypt(node: &Node, packet: &[u8]) -> Batch {
    let mut out = batch();
    send(node, &one(packet), &mut out);
    out
}

fn packets(b: &Batch) -> Vec<Vec<u8>> {
    b.iter().map(|(p, _)| p.to_vec()).collect()
}

const A: &str = "192.0.2.1:51820";
const B: &str = "192.0.2.2:51820";

/// Runs the handshake between n0 (initiator) and n1 with two packets queued behind it, and
/// checks both arrive. Returns the two nodes with a live session.
fn connected(m: &Mesh) -> (Node, Node) {
    let (n0, n1) = (m.node(0), m.node(1));
    let p1 = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"first");
    let p2 = ipv4(
        [10, 100, 0, 1],
        [192, 168, 50, 9],
        b"second, to a routed subnet",
    );
    let mut input = one(&p1);
    input.push(&p2, addr("0.0.0.0:0"));
    let mut init = batch();
    send(&n0, &input, &mut init);
    assert_eq!(
        init.len(),
        1,
        "one handshake initiation, both packets queued"
    );
    assert_eq!(init.get(0).map(|(d, a)| (d.len(), a)), Some((148, addr(B))));

    let (tun, response) = deliver(&n1, &init, addr(A));
    assert!(tun.is_empty());
    assert_eq!(response.len(), 1);
    assert_eq!(
        response.get(0).map(|(d, a)| (d.len(), a)),
        Some((92, addr(A)))
    );

    let (tun, flushed) = deliver(&n0, &response, addr(B));
    assert!(tun.is_empty());
    assert_eq!(flushed.len(), 3, "a keepalive and the two queued packets");

    let (tun, replies) = deliver(&n1, &flushed, addr(A));
    assert!(replies.is_empty());
    let sent = (p1.len() + p2.len()) as u64;
    assert_eq!(packets(&tun), vec![p1, p2]);
    // The initiator counted one initiation and the two flushed packets as data, nothing more.
    let c = &n0.peers()[0].counters;
    assert_eq!(c.handshake_initiations.load(RELAXED), 1);
    let tx = c.tx.snapshot();
    assert_eq!((tx.packets, tx.payload_bytes), (2, sent));
    assert_eq!(tx.wire_bytes, 148 + 32 + sent + 2 * DATA_OVERHEAD as u64);
    assert_eq!(
        n0.peers()[0].counters.handshakes_as_initiator.load(RELAXED),
        1
    );
    assert_eq!(
        n1.peers()[0].counters.handshakes_as_responder.load(RELAXED),
        1
    );
    // Only the initiator times the handshake (initiation sent → response received).
    let timed = |n: &Node| n.peers()[0].counters.handshake_duration.snapshot();
    assert_eq!(timed(&n0).count, 1);
    assert_eq!(timed(&n1).count, 0);
    assert!(n0.peers()[0]
        .status(Instant::now())
        .last_handshake_duration
        .is_some());
    (n0, n1)
}

#[test]
fn handshake_flushes_queued_packets_and_data_flows_both_ways() {
    let m = mesh();
    let (n0, n1) = connected(&m);
    let back = ipv4([10, 100, 0, 2], [10, 100, 0, 1], b"reply");
    let out = encrypt(&n1, &back);
    assert_eq!(
        out.get(0).map(|(d, a)| (d.len(), a)),
        Some((back.len() + DATA_OVERHEAD, addr(A)))
    );
    let (tun, _) = deliver(&n0, &out, addr(B));
    assert_eq!(packets(&tun), vec![back.clone()]);

    let peer = &n0.peers()[0];
    let rx = peer.counters.rx.snapshot();
    assert_eq!((rx.packets, rx.payload_bytes), (1, back.len() as u64));
    assert!(rx.wire_bytes >= rx.payload_bytes + DATA_OVERHEAD as u64);
    let now = Instant::now();
    assert_eq!(peer.status(now).endpoint, Some(addr(B)));
    assert!(peer.status(now).since_last_handshake.is_some());
    assert!(peer.status(now).last_handshake_duration.is_some());
    // The handshake's age keeps growing past the session's expiry (180 s), where boringtun
    // itself forgets it: "stale", not "never".
    let later = now + Duration::from_secs(600);
    let age = peer.status(later).since_last_handshake;
    assert!(
        age.is_some_and(|a| a >= Duration::from_secs(600)),
        "{age:?}"
    );
    let mut ticks = batch();
    n0.update_timers(later, &mut ticks);
    assert!(peer.status(later).since_last_handshake.is_some());
}

#[test]
fn outbound_without_a_route_is_dropped_and_counted() {
    let m = mesh();
    let n0 = m.node(0);
    let mut out = batch();
    // n2 (10.100.0.3) shares no rule with n0: no peer, no route, nothing on the wire.
    send(
        &n0,
        &one(&ipv4([10, 100, 0, 1], [10, 100, 0, 3], b"x")),
        &mut out,
    );
    send(&n0, &one(b"\x45junk"), &mut out);
    assert!(out.is_empty());
    assert_eq!(n0.drops().get(DropReason::NoRoute), 1);
    assert_eq!(n0.drops().get(DropReason::Malformed), 1);
}

#[test]
fn inbound_source_outside_allowed_ips_is_dropped_and_counted() {
    let m = mesh();
    let (n0, n1) = connected(&m);
    // n0 forges a source it does not own (n2's address, then an outside one).
    let mut out = batch();
    for src in [[10, 100, 0, 3], [172, 16, 0, 1]] {
        send(&n0, &one(&ipv4(src, [10, 100, 0, 2], b"spoof")), &mut out);
    }
    assert_eq!(out.len(), 2);
    let (tun, _) = deliver(&n1, &out, addr(A));
    assert!(tun.is_empty());
    assert_eq!(n1.drops().get(DropReason::AllowedIps), 2);
}

#[test]
fn endpoint_follows_the_latest_authenticated_datagram() {
    let m = mesh();
    let (n0, n1) = connected(&m);
    n1.take_events();
    let out = encrypt(&n0, &ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"moved"));
    let roamed = addr("198.51.100.7:40000");
    let (tun, _) = deliver(&n1, &out, roamed);
    assert_eq!(tun.len(), 1);
    assert_eq!(n1.peers()[0].endpoint(), Some(roamed));
    assert_eq!(
        n1.take_events(),
        vec![Event::EndpointChanged {
            peer: 0,
            from: Some(addr(A)),
            to: roamed
        }]
    );
    // Forged garbage from yet another address does not move it.
    let mut junk = batch();
    junk.push(
        &[
            4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            13, 14, 15, 16,
        ],
        addr("0.0.0.0:0"),
    );
    let _ = deliver(&n1, &junk, addr("198.51.100.8:1"));
    assert_eq!(n1.peers()[0].endpoint(), Some(roamed));
}

#[test]
fn tampered_and_replayed_datagrams_are_dropped() {
    let m = mesh();
    let (n0, n1) = connected(&m);
    let out = encrypt(&n0, &ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"once"));
    let (tun, _) = deliver(&n1, &out, addr(A));
    assert_eq!(tun.len(), 1);
    let (tun, _) = deliver(&n1, &out, addr(A));
    assert!(tun.is_empty());
    assert_eq!(n1.drops().get(DropReason::Replay), 1);

    let tampered = encrypt(&n0, &ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"twice"));
    let mut bytes = tampered.get(0).map(|(d, _)| d.to_vec()).unwrap_or_default();
    if let Some(last) = bytes.last_mut() {
        *last ^= 1;
    }
    let (tun, _) = deliver(&n1, &one(&bytes), addr(A));
    assert!(tun.is_empty());
    assert_eq!(n1.drops().get(DropReason::Decrypt), 1);
}

#[test]
fn a_node_outside_the_policy_cannot_complete_a_handshake() {
    // n0 is forced to hold n2 as a peer (as a misconfigured or hostile node would);
    // n2 does not have n0, so it answers nothing and counts the attempt.
    let mut m = mesh();
    m.config.policy.push(PolicyRule {
        from: Selector::Nodes(vec!["n0".into()]),
        to: Selector::Nodes(vec!["n2".into()]),
        allow: vec![Allow::Any],
        pos: Pos::default(),
    });
    let n0 = m.node(0);
    m.config.policy.pop();
    let n2 = m.node(2);
    let init = encrypt(&n0, &ipv4([10, 100, 0, 1], [10, 100, 0, 3], b"hi"));
    assert_eq!(init.len(), 1);
    let (tun, reply) = deliver(&n2, &init, addr(A));
    assert!(tun.is_empty() && reply.is_empty());
    assert_eq!(n2.drops().get(DropReason::UnknownPeer), 1);
}

#[test]
fn garbage_from_the_network_never_panics_and_is_counted() {
    let m = mesh();
    let (_n0, n1) = connected(&m);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut inbound = batch();
    let mut sent = 0u64;
    for round in 0..2000 {
        inbound.clear();
        let len = (round * 7) % 200;
        let mut d = vec![0u8; len];
        for b in d.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *b = seed as u8;
        }
        // Make most of them look like real message types with plausible sizes.
        if let Some(first) = d.first_mut() {
            *first = (round % 5) as u8;
        }
        inbound.push(&d, addr("198.51.100.9:9"));
        sent += 1;
        let (tun, net) = deliver(&n1, &inbound, addr("198.51.100.9:9"));
        assert!(tun.is_empty());
        assert!(net.is_empty());
    }
    let dropped: u64 = n1.drops().snapshot().iter().map(|(_, n)| n).sum();
    assert_eq!(dropped, sent);
    assert_eq!(n1.peers()[0].endpoint(), Some(addr(A)));
}

#[test]
fn timers_send_initiations_only_where_an_endpoint_is_known() {
    let m = mesh();
    let n0 = m.node(0);
    let mut out = batch();
    n0.update_timers(Instant::now(), &mut out);
    assert!(out.is_empty(), "idle peers without keepalive stay quiet");
}

/// A fresh initiation from `node` to its first peer, whatever is in flight.
fn initiation(node: &Node) -> Batch {
    let mut out = batch();
    let peer = &node.peers()[0];
    let mut state = peer.lock();
    let len = match node
        .session(peer, &mut state)
        .format_handshake_initiation(out.next_slot(), true)
    {
        TunnResult::WriteToNetwork(d) => d.len(),
        other => panic!("no initiation: {other:?}"),
    };
    out.commit(len, addr(B));
    out
}

fn is_cookie(d: &[u8]) -> bool {
    d.len() == COOKIE_REPLY_LEN && d[0] == 3
}

#[test]
fn under_load_the_cookie_comes_back_at_once_with_mac2_and_the_handshake_completes() {
    let m = mesh();
    let (n0, n1) = (m.node(0), m.node(1));
    let init = encrypt(&n0, &ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"queued"));
    let (_, net) = deliver_loaded(&n1, &init, addr(A), true);
    assert!(net.iter().all(|(d, to)| is_cookie(d) && to == addr(A)));
    assert_eq!(net.len(), 1);
    assert_eq!(n1.drops().get(DropReason::UnderLoad), 1);
    assert_eq!(n1.peers()[0].endpoint(), Some(addr(A)));
    // n0 takes the cookie and sends its initiation again at once, now with mac2.
    let (_, resent) = deliver(&n0, &net, addr(B));
    assert_eq!(resent.len(), 1);
    assert_eq!(resent.get(0).map(|(d, to)| (d[0], to)), Some((1, addr(B))));
    let (_, response) = deliver_loaded(&n1, &resent, addr(A), true);
    assert_eq!(response.get(0).map(|(d, _)| d[0]), Some(2), "a response");
    let (_, flushed) = deliver(&n0, &response, addr(B));
    let (tun, _) = deliver(&n1, &flushed, addr(A));
    assert_eq!(packets(&tun).len(), 1, "the queued packet arrives");
    // A second cookie within the second (for another address: n0's mac2 is A's) is taken
    // but not answered at once again.
    let (_, net) = deliver_loaded(&n1, &initiation(&n0), addr("192.0.2.77:51820"), true);
    assert!(net.iter().all(|(d, _)| is_cookie(d)) && net.len() == 1);
    let (_, resent) = deliver(&n0, &net, addr(B));
    assert!(resent.is_empty());
}

#[test]
fn an_address_past_its_budget_gets_cookies_and_with_mac2_its_own_budget() {
    let m = mesh();
    let (n0, n1) = (m.node(0), m.node(1));
    let mut responses = 0;
    let mut cookies = Batch::new(8, MIN_SLOT);
    for _ in 0..10 {
        let (_, net) = deliver(&n1, &initiation(&n0), addr(A));
        for (d, to) in net.iter() {
            match d[0] {
                2 => responses += 1,
                _ if is_cookie(d) => cookies.push(d, to),
                _ => panic!("unexpected {d:?}"),
            }
        }
    }
    assert_eq!(responses, 5, "the burst of one address");
    assert_eq!(cookies.len(), 5);
    // With the cookie (for n0's latest initiation), the first address has a budget of its
    // own again.
    let (_, resent) = deliver(&n0, &cookies, addr(B));
    let (_, net) = deliver(&n1, &resent, addr(A));
    assert_eq!(net.get(0).map(|(d, _)| d[0]), Some(2));
    // Another address is not affected.
    let (_, net) = deliver(&n1, &initiation(&n0), addr("192.0.2.77:51820"));
    assert_eq!(net.get(0).map(|(d, _)| d[0]), Some(2));
}

#[test]
fn under_load_an_address_past_its_cookie_budget_is_dropped_unanswered() {
    let m = mesh();
    let (n0, n1) = (m.node(0), m.node(1));
    let init = initiation(&n0);
    let mut cookies = 0;
    for _ in 0..150 {
        let (_, net) = deliver_loaded(&n1, &init, addr(A), true);
        cookies += net.iter().filter(|(d, _)| is_cookie(d)).count();
    }
    // A burst of 100, then what refills (100 a second) while the loop runs.
    assert!((100..120).contains(&cookies), "{cookies} cookie replies");
    assert_eq!(n1.drops().get(DropReason::UnderLoad), cookies as u64);
    assert_eq!(
        n1.drops().get(DropReason::RateLimited),
        150 - cookies as u64
    );
    // Another address still gets its cookie.
    let (_, net) = deliver_loaded(&n1, &init, addr("192.0.2.77:51820"), true);
    assert!(net.iter().all(|(d, _)| is_cookie(d)) && net.len() == 1);
}

#[test]
fn an_address_with_its_budgets_spent_stops_at_the_data_path_unless_it_shows_a_cookie() {
    let m = mesh();
    let (n0, n1) = (m.node(0), m.node(1));
    let init = initiation(&n0); // n0 holds no cookie yet: mac2 is zero
    let mut cookie = Batch::new(8, MIN_SLOT);
    for _ in 0..300 {
        let (_, net) = deliver(&n1, &init, addr(A));
        for (d, to) in net.iter().filter(|(d, _)| is_cookie(d)) {
            cookie.clear();
            cookie.push(d, to);
        }
    }
    assert_eq!(
        cookie.len(),
        1,
        "cookie replies until that budget was spent"
    );
    let limited = n1.drops().get(DropReason::RateLimited);
    assert!(limited > 100, "{limited} dropped for the address's budgets");
    // The next one is not even queued for the worker.
    let mut work = HandshakeWork::default();
    let again = init.iter().map(|(d, _)| (d, addr(A)));
    n1.handle_datagrams(Instant::now(), again, &mut batch(), &mut work);
    assert!(work.is_empty());
    assert_eq!(n1.drops().get(DropReason::RateLimited), limited + 1);
    // With the cookie, n0's initiation carries mac2: queued, and answered.
    let (_, resent) = deliver(&n0, &cookie, addr(B));
    assert_eq!(resent.len(), 1);
    let (_, net) = deliver(&n1, &resent, addr(A));
    assert_eq!(net.get(0).map(|(d, _)| d[0]), Some(2), "a response");
}

#[test]
fn one_address_queues_no_more_than_the_worker_could_take_from_it() {
    let m = mesh();
    let (n0, n1) = (m.node(0), m.node(1));
    let sent = initiation(&n0);
    let Some((init, _)) = sent.iter().next() else {
        panic!("no initiation")
    };
    let mut forged = init.to_vec();
    let mac2 = forged.len() - 16;
    forged[mac2..].fill(0xA5); // a mac2, but not one keyed with A's cookie
    let mut work = HandshakeWork::default();
    let flood = (0..500).map(|i| (if i % 2 == 0 { init } else { &forged[..] }, addr(A)));
    n1.handle_datagrams(Instant::now(), flood, &mut batch(), &mut work);
    // The worker has not run: only the queue's own budget (200 at once) held them back.
    let queued = work.messages.len();
    assert!((200..210).contains(&queued), "{queued} queued");
    assert_eq!(n1.drops().get(DropReason::RateLimited), 500 - queued as u64);
    assert!(work.flooding.is_empty(), "not yet refused a second's worth");
    // Past 1000 refused, the address is named for blocking, once per batch.
    let mut work = HandshakeWork::default();
    let flood = (0..1000).map(|_| (init, addr(A)));
    n1.handle_datagrams(Instant::now(), flood, &mut batch(), &mut work);
    assert!(work.messages.len() < 5, "{} queued", work.messages.len());
    assert_eq!(work.flooding, [addr(A).ip()]);
    // Another address is not affected.
    let mut work = HandshakeWork::default();
    let other = [(init, addr("192.0.2.77:51820"))];
    n1.handle_datagrams(Instant::now(), other, &mut batch(), &mut work);
    assert_eq!(work.messages.len(), 1);
    assert!(work.flooding.is_empty());
}

#[test]
fn initiations_that_claim_a_peer_but_fail_leave_its_session_alone() {
    let m = mesh();
    let (n0, n1) = connected(&m);
    let stolen = initiation(&n0); // never delivered: as if captured on the wire
    let (_, net) = deliver(&n1, &stolen, addr(A));
    assert_eq!(net.get(0).map(|(d, _)| d[0]), Some(2));
    let handshakes = n1.peers()[0].counters.handshakes_as_responder.load(RELAXED);
    // The same initiation again (a replayed timestamp), and one whose timestamp was tampered
    // with (what an attacker without n0's private key sends), from another address.
    let mut tampered = Batch::new(1, MIN_SLOT);
    let mut m0 = stolen.get(0).map(|(d, _)| d.to_vec()).unwrap_or_default();
    m0[100] ^= 0x55;
    let mac1 = cookie::tests_support::mac1(n1.static_public.as_bytes(), &m0[..116]);
    m0[116..132].copy_from_slice(&mac1);
    tampered.push(&m0, addr(A));
    let spoofed = addr("198.51.100.66:6666");
    for fake in [&stolen, &tampered] {
        let (tun, net) = deliver(&n1, fake, spoofed);
        assert!(tun.is_empty() && net.is_empty());
    }
    assert_eq!(n1.drops().get(DropReason::Handshake), 2);
    let peer = &n1.peers()[0];
    assert_eq!(
        peer.counters.handshakes_as_responder.load(RELAXED),
        handshakes
    );
    assert_eq!(peer.endpoint(), Some(addr(A)), "no roaming to the impostor");
    // The session n0 holds still carries data both ways.
    let p = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"still here");
    let (tun, _) = deliver(&n1, &encrypt(&n0, &p), addr(A));
    assert_eq!(packets(&tun), vec![p]);
}

#[test]
fn data_on_a_lost_session_from_a_peers_endpoint_starts_a_handshake_once_a_second() {
    let m = mesh();
    let (n0, _n1) = connected(&m);
    let n1 = m.node(1); // n1 restarted: n0 still sends on the old session
    let p = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"to the old session");
    let (tun, net) = deliver(&n1, &encrypt(&n0, &p), addr(A));
    assert!(tun.is_empty());
    assert_eq!(n1.drops().get(DropReason::UnknownSession), 1);
    assert_eq!(net.len(), 1);
    assert_eq!(net.get(0).map(|(d, to)| (d[0], to)), Some((1, addr(A))));
    // Not again within the second, and never for a sender that is no peer's endpoint.
    let (_, again) = deliver(&n1, &encrypt(&n0, &p), addr(A));
    assert!(again.is_empty());
    let fresh = m.node(1);
    let (_, spoofed) = deliver(&fresh, &encrypt(&n0, &p), addr("198.51.100.66:6666"));
    assert!(spoofed.is_empty());
    assert_eq!(fresh.drops().get(DropReason::UnknownSession), 1);
    // n0 answers, and the new session carries n0's packets to the restarted n1.
    let (_, response) = deliver(&n0, &net, addr(B));
    let (_, keepalive) = deliver(&n1, &response, addr(A));
    deliver(&n0, &keepalive, addr(B));
    let (tun, _) = deliver(&n1, &encrypt(&n0, &p), addr(A));
    assert_eq!(packets(&tun), vec![p]);
}

#[test]
fn packets_above_the_device_mtu_are_dropped_not_fatal() {
    // Someone raised the device MTU under meshd: 1500-byte packets into 1420-sized slots.
    let m = mesh();
    let n0 = m.node(0);
    let big = ipv4([10, 100, 0, 1], [10, 100, 0, 2], &[7u8; 1480]);
    let mut input = Batch::new(8, 2048);
    input.push(&big, addr("0.0.0.0:0"));
    let mut out = batch();
    send(&n0, &input, &mut out); // no session yet: would queue
    assert!(out.is_empty());
    assert_eq!(n0.drops().get(DropReason::TooBig), 1);
    let (n0, _n1) = connected(&m);
    let mut out = batch();
    send(&n0, &input, &mut out); // with a session
    assert!(out.is_empty());
    assert_eq!(n0.drops().get(DropReason::TooBig), 1);
}

#[test]
fn a_peer_with_a_larger_mtu_is_received_whole() {
    let m = mesh();
    let (n0, n1) = connected(&m);
    // n0 runs with MTU 1500 (its slots are larger), n1 with 1420: n1 still takes it whole.
    let big = ipv4([10, 100, 0, 1], [10, 100, 0, 2], &[9u8; 1480]);
    let mut input = Batch::new(8, slot_size(1500));
    input.push(&big, addr("0.0.0.0:0"));
    let mut out = Batch::new(8, slot_size(1500));
    send(&n0, &input, &mut out);
    assert_eq!(out.get(0).map(|(d, _)| d.len()), Some(1500 + DATA_OVERHEAD));
    let (tun, _) = deliver(&n1, &out, addr(A));
    assert_eq!(packets(&tun), vec![big]);
    // A datagram larger than any decryption slot is refused and counted, not truncated.
    let mut inbound = Batch::new(1, 70000);
    inbound.push(&vec![4u8; 66000], addr(A));
    let mut to_tun = Batch::new(1, MAX_DATAGRAM);
    let mut work = HandshakeWork::default();
    n1.handle_datagrams(Instant::now(), &inbound, &mut to_tun, &mut work);
    assert!(to_tun.is_empty() && work.is_empty());
    assert_eq!(n1.drops().get(DropReason::TooBig), 1);
}

#[test]
fn an_inner_packet_with_a_bogus_length_is_malformed() {
    let m = mesh();
    let (n0, n1) = connected(&m);
    // An IPv4 header whose total-length field says 8 bytes: authentic, but not a packet.
    let mut bogus = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"........");
    bogus[2..4].copy_from_slice(&8u16.to_be_bytes());
    let out = encrypt(&n0, &bogus);
    assert_eq!(out.len(), 1);
    let (tun, _) = deliver(&n1, &out, addr(A));
    assert!(tun.is_empty());
    assert_eq!(n1.drops().get(DropReason::Malformed), 1);
}

/// n0 sends one packet to n1 over their session; returns the datagram.
fn data_from_n0(n0: &Node) -> Batch {
    let p = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"after the reload");
    let out = encrypt(n0, &p);
    assert_eq!(out.len(), 1);
    out
}

#[test]
fn a_reload_keeps_unchanged_sessions_and_forgets_removed_peers() {
    let mut m = mesh();
    let (n0, n1) = connected(&m);
    let n2 = m.node(2);
    // n2 leaves n1's policy; n0 is untouched.
    m.config.policy.truncate(1);
    let reloaded = n1.reloaded(&m.plan(1));
    assert_eq!(reloaded.peers().len(), 1);
    assert!(Arc::ptr_eq(&reloaded.peers()[0], &n1.peers()[0]));

    // The session carries on: n0's next datagram decrypts with no handshake in between.
    let (tun, replies) = deliver(&reloaded, &data_from_n0(&n0), addr(A));
    assert_eq!(tun.len(), 1);
    assert!(replies.is_empty());
    let peer = &reloaded.peers()[0];
    assert_eq!(peer.counters.handshakes_as_responder.load(RELAXED), 1);
    assert_eq!(peer.counters.rx.snapshot().packets, 3);

    // n2 is gone: nothing routes to it, and its handshakes find no peer.
    let to_n2 = ipv4([10, 100, 0, 2], [10, 100, 0, 3], b"to n2");
    let out = encrypt(&reloaded, &to_n2);
    assert!(out.is_empty());
    assert_eq!(reloaded.drops().get(DropReason::NoRoute), 1);
    let init = encrypt(&n2, &ipv4([10, 100, 0, 3], [10, 100, 0, 2], b"hi"));
    assert_eq!(init.len(), 1);
    let (tun, replies) = deliver(&reloaded, &init, addr("192.0.2.3:51820"));
    assert!(tun.is_empty() && replies.is_empty());
    assert_eq!(reloaded.drops().get(DropReason::UnknownPeer), 1);
    // Drop counters are the node's, across reloads.
    assert_eq!(n1.drops().get(DropReason::UnknownPeer), 1);
}

#[test]
fn a_changed_peer_gets_a_new_session_in_a_new_slot() {
    let mut m = mesh();
    let (n0, n1) = connected(&m);
    m.config.nodes[0].keepalive = Some(25);
    let reloaded = n1.reloaded(&m.plan(1));
    let (old, new) = (&n1.peers()[0], &reloaded.peers()[0]);
    assert!(!Arc::ptr_eq(old, new));
    assert_ne!(old.slot, new.slot);
    assert!(new.slot > n1.highest_slot().unwrap_or_default());
    assert_eq!(reloaded.highest_slot(), Some(new.slot));
    assert_eq!(new.plan.keepalive, Some(25));
    assert!(reloaded.peer_by_slot(old.slot).is_none());
    assert_eq!(
        reloaded.peer_by_slot(new.slot).map(|p| p.slot),
        Some(new.slot)
    );

    // The old session's datagrams name the old slot (the receiver index's upper 24 bits,
    // which the socket filter bounds): no session takes them.
    let stale = data_from_n0(&n0);
    let index = stale
        .get(0)
        .map(|(d, _)| u32::from_le_bytes([d[4], d[5], d[6], d[7]]));
    assert_eq!(index.map(|i| i as usize >> 8), Some(old.slot));
    let (tun, _) = deliver(&reloaded, &stale, addr(A));
    assert!(tun.is_empty());
    assert_eq!(reloaded.drops().get(DropReason::UnknownSession), 1);
    // A fresh handshake (n0 restarted, say) makes the new session work.
    let fresh = m.node(0);
    let init2 = encrypt(&fresh, &ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"again"));
    let (_, response) = deliver(&reloaded, &init2, addr(A));
    assert_eq!(response.len(), 1);
    let (_, flushed) = deliver(&fresh, &response, addr(B));
    let (tun, _) = deliver(&reloaded, &flushed, addr(A));
    assert_eq!(tun.len(), 1);
    assert_eq!(new.counters.handshakes_as_responder.load(RELAXED), 1);
}

fn has_state(node: &Node) -> Vec<bool> {
    node.peers()
        .iter()
        .map(|p| p.lock().tunn.is_some())
        .collect()
}

#[test]
fn a_peer_gets_its_session_from_the_worker_with_its_first_packet_not_at_start() {
    let m = mesh();
    let n1 = m.node(1);
    assert_eq!(has_state(&n1), [false, false], "sessions made at start");
    let mut out = batch();
    n1.update_timers(Instant::now(), &mut out);
    assert!(out.is_empty());
    assert_eq!(has_state(&n1), [false, false], "the timers made a session");

    // The data path holds the packets and names the peer; it makes no session itself.
    let mut input = batch();
    for i in 0..3u8 {
        input.push(&ipv4([10, 100, 0, 2], [10, 100, 0, 3], &[i]), NO_ADDR);
    }
    let mut work = HandshakeWork::default();
    n1.handle_tun_packets(Instant::now(), input.packets(), &mut out, &mut work);
    assert!(out.is_empty());
    let n2_slot = n1.peers()[1].slot;
    assert_eq!(work.start, [n2_slot], "named once for three packets");
    assert_eq!(has_state(&n1), [false, false]);

    // The worker makes it: one initiation, the packets queued behind it.
    n1.start(Instant::now(), n2_slot, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out.get(0).map(|(d, _)| (d.len(), d[0])), Some((148, 1)));
    assert_eq!(has_state(&n1), [false, true]);
    // A second call (the peer named again before the first ran) sends nothing more.
    n1.start(Instant::now(), n2_slot, &mut out);
    assert_eq!(out.len(), 1);

    // The initiation makes n2's session for n1 (only n1's) and the packets arrive.
    let n2 = m.node(2);
    let (_, response) = deliver(&n2, &out, addr(B));
    assert_eq!(has_state(&n2), [true]);
    let (_, flushed) = deliver(&n1, &response, addr("192.0.2.3:51820"));
    let (tun, _) = deliver(&n2, &flushed, addr(B));
    assert_eq!(tun.len(), 3);
}

#[test]
fn packets_past_the_waiting_room_are_dropped_and_counted() {
    let m = mesh();
    let n0 = m.node(0);
    let mut input = batch();
    let mut work = HandshakeWork::default();
    let mut out = batch();
    for i in 0..WAITING_PACKETS + 2 {
        input.clear();
        input.push(&ipv4([10, 100, 0, 1], [10, 100, 0, 2], &[i as u8]), NO_ADDR);
        n0.handle_tun_packets(Instant::now(), input.packets(), &mut out, &mut work);
    }
    assert_eq!(n0.drops().get(DropReason::QueueFull), 2);
    assert_eq!(n0.peers()[0].lock().waiting.len(), WAITING_PACKETS);
}

#[test]
fn a_response_or_data_for_a_peer_without_a_session_makes_none() {
    let m = mesh();
    let (n0, n1) = connected(&m);
    // A fresh n1 (restarted) gets n0's data and n0's response to an old initiation.
    let fresh = m.node(1);
    let data = encrypt(&n0, &ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"old session"));
    let (tun, to_net) = deliver(&fresh, &data, addr(A));
    assert!(tun.is_empty());
    assert_eq!(fresh.drops().get(DropReason::UnknownSession), 1);
    // Data from n0's endpoint on a lost session: the worker initiates, making the session.
    assert_eq!(to_net.get(0).map(|(d, _)| (d.len(), d[0])), Some((148, 1)));
    // A restarted n0 gets n1's response to the old n0's initiation.
    let (_, response) = deliver(&n1, &initiation(&n0), addr(A));
    let restarted = m.node(0);
    let (_, sent) = deliver(&restarted, &response, addr(B));
    assert!(sent.is_empty());
    assert_eq!(restarted.drops().get(DropReason::UnknownPeer), 1);
    assert_eq!(has_state(&restarted), [false]);
}

#[test]
fn a_node_greets_its_keepalive_peers_or_all_of_them_when_it_keeps_alive_itself() {
    let mut m = mesh();
    // n1 peers with n0 and n2; n2 has keepalive.
    m.config.nodes[2].keepalive = Some(25);
    let n1 = m.node(1);
    let greeted: Vec<bool> = n1.peers().iter().map(|p| n1.greets(p)).collect();
    assert_eq!(greeted, [false, true]);
    // n1 behind NAT (keepalive of its own): nobody can reach it first, it greets everyone.
    m.config.nodes[1].keepalive = Some(25);
    let n1 = m.node(1);
    assert!(n1.peers().iter().all(|p| n1.greets(p)));
}

#[test]
fn what_retired_peers_counted_stays_in_the_node_total() {
    let mut m = mesh();
    let (_n0, n1) = connected(&m);
    let counted = n1.peers()[0].counters.rx.snapshot();
    assert!(counted.packets > 0);
    // n0 changes (a new session in a new slot): its counts move to the retired total.
    m.config.nodes[0].keepalive = Some(25);
    let reloaded = n1.reloaded(&m.plan(1));
    assert_eq!(reloaded.retired().rx.snapshot(), counted);
    assert_eq!(reloaded.peers()[0].counters.rx.snapshot().packets, 0);
    // A reload that keeps the peer retires nothing more.
    let again = reloaded.reloaded(&m.plan(1));
    assert_eq!(again.retired().rx.snapshot(), counted);
}

#[test]
fn held_packets_go_out_once_a_session_exists_even_if_the_worker_never_started_it() {
    let m = mesh();
    let (n0, n1) = (m.node(0), m.node(1));
    // n0 holds a packet for n1; its Start job is lost (never run).
    let mut out = batch();
    let mut work = HandshakeWork::default();
    let held = ipv4([10, 100, 0, 1], [10, 100, 0, 2], b"held");
    n0.handle_tun_packets(Instant::now(), one(&held).packets(), &mut out, &mut work);
    assert_eq!(work.start.len(), 1);
    // Named again only a second later.
    work.clear();
    n0.handle_tun_packets(Instant::now(), one(&held).packets(), &mut out, &mut work);
    assert!(work.start.is_empty());
    // n1 initiates instead: n0 answers and, on its next timer tick, sends what it held.
    let init = encrypt(&n1, &ipv4([10, 100, 0, 2], [10, 100, 0, 1], b"hi"));
    let (_, response) = deliver(&n0, &init, addr(B));
    let (_, keepalive) = deliver(&n1, &response, addr(A));
    deliver(&n0, &keepalive, addr(B));
    let mut ticks = batch();
    n0.update_timers(Instant::now(), &mut ticks);
    let (tun, _) = deliver(&n1, &ticks, addr(A));
    assert_eq!(packets(&tun), vec![held.clone(), held]);
    assert!(n0.peers()[0].lock().waiting.is_empty());
}
