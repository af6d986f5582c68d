//! Micro-benchmarks of the core's hot paths (criterion): encrypting and decrypting a batch of
//! full-sized packets through two in-memory nodes with a live session, and AllowedIPs
//! lookups in a 1,000-peer trie, warm and with the caches emptied first. Each group also times
//! a baseline measured in the same run (copying the same bytes; a linear scan of the prefixes;
//! one load from a cold cache line), so results read as ratios.
//!
//!   cargo bench -p meshd-core --bench datapath

// A bench is test code: a panic is its failure report.
#![allow(clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ipnet::IpNet;
use meshd_core::config;
use meshd_core::key::PrivateKey;
use meshd_core::node::{slot_size, Batch, HandshakeWork, Node, MAX_DATAGRAM, NO_ADDR};
use meshd_core::plan::{Identity, NodePlan};
use meshd_core::trie::PrefixTrie;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

const MTU: u16 = 1420;
const PACKETS: usize = 64;

#[track_caller]
fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a bench address")
}

/// Two nodes with a completed handshake, n0 -> n1.
fn pair() -> (Node, Node) {
    let keys = [PrivateKey::generate(), PrivateKey::generate()];
    let yaml = format!(
        "nodes:\n\
         - {{name: a, public_key: \"{}\", address: 10.100.0.1/24, endpoint: \"192.0.2.1:51820\"}}\n\
         - {{name: b, public_key: \"{}\", address: 10.100.0.2/24, endpoint: \"192.0.2.2:51820\"}}\n\
         policy:\n\
         - {{from: a, to: b, allow: [any]}}\n",
        keys[0].public_key().to_base64(),
        keys[1].public_key().to_base64()
    );
    let cfg = config::parse("bench.yaml", &yaml).expect("the bench mesh parses");
    let node = |i: usize, name: &str| {
        let plan = NodePlan::new(&cfg, &Identity::Name(name.into())).expect("the node has a plan");
        Node::new(&plan, &keys[i])
    };
    let (n0, n1) = (node(0, "a"), node(1, "b"));
    let mut first = Batch::new(1, slot_size(MTU));
    first.push(&packet(), NO_ADDR);
    let mut init = Batch::new(8, slot_size(MTU));
    let mut work = HandshakeWork::default();
    n0.handle_tun_packets(Instant::now(), first.packets(), &mut init, &mut work);
    // The session, as the handshake worker makes it.
    for &slot in &work.start {
        n0.start(Instant::now(), slot, &mut init);
    }
    // The handshake, as the handshake worker runs it.
    let (a, b) = (addr("192.0.2.1:51820"), addr("192.0.2.2:51820"));
    let mut resp = Batch::new(8, slot_size(MTU));
    for (d, _) in &init {
        n1.handle_handshake(Instant::now(), d, a, false, &mut resp);
    }
    let mut flushed = Batch::new(8, slot_size(MTU));
    for (d, _) in &resp {
        n0.handle_handshake(Instant::now(), d, b, false, &mut flushed);
    }
    assert!(!flushed.is_empty(), "no session after the handshake");
    (n0, n1)
}

/// A full-sized IPv4/UDP packet from 10.100.0.1 to 10.100.0.2.
fn packet() -> Vec<u8> {
    let len = usize::from(MTU);
    let mut p = vec![0xabu8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 100, 0, 1]);
    p[16..20].copy_from_slice(&[10, 100, 0, 2]);
    p
}

fn crypto(c: &mut Criterion) {
    let (n0, n1) = pair();
    let mut packets = Batch::new(PACKETS, slot_size(MTU));
    for _ in 0..PACKETS {
        packets.push(&packet(), NO_ADDR);
    }
    let mut out = Batch::new(PACKETS, slot_size(MTU));
    let mut g = c.benchmark_group("batch of 64 x 1420 B");
    g.throughput(Throughput::Bytes((PACKETS * usize::from(MTU)) as u64));
    g.bench_function("baseline: copy", |b| {
        b.iter(|| {
            out.clear();
            for (p, a) in &packets {
                out.push(black_box(p), a);
            }
        })
    });
    let mut work = HandshakeWork::default();
    g.bench_function("encrypt (handle_tun_packets)", |b| {
        b.iter(|| {
            out.clear();
            n0.handle_tun_packets(Instant::now(), packets.packets(), &mut out, &mut work);
            assert_eq!(out.len(), PACKETS);
        })
    });
    let from = addr("192.0.2.1:51820");
    let mut to_tun = Batch::new(PACKETS, MAX_DATAGRAM);
    g.bench_function("decrypt (handle_datagrams)", |b| {
        b.iter_batched_ref(
            || {
                // Fresh datagrams each time: a replayed counter would be dropped.
                let mut sealed = Batch::new(PACKETS, slot_size(MTU));
                let mut none_waiting = HandshakeWork::default();
                n0.handle_tun_packets(
                    Instant::now(),
                    packets.packets(),
                    &mut sealed,
                    &mut none_waiting,
                );
                sealed
            },
            |sealed| {
                to_tun.clear();
                work.clear();
                let datagrams = sealed.iter().map(|(d, _)| (d, from));
                n1.handle_datagrams(Instant::now(), datagrams, &mut to_tun, &mut work);
                assert_eq!(to_tun.len(), PACKETS);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn trie(c: &mut Criterion) {
    // 1,000 peers: a /32 each in 10.100.0.0/16, and a /24 route for every tenth.
    let mut prefixes: Vec<(IpNet, usize)> = Vec::new();
    for i in 0..1000u32 {
        let host = Ipv4Addr::from(0x0a64_0000 + i + 1);
        prefixes.push((IpNet::from(IpAddr::V4(host)), i as usize));
        if i % 10 == 0 {
            let net = Ipv4Addr::from(0xc0a8_0000 + (i << 8));
            let route = IpNet::new(IpAddr::V4(net), 24).expect("a /24");
            prefixes.push((route, i as usize));
        }
    }
    let mut t = PrefixTrie::new();
    for (p, v) in &prefixes {
        t.insert(*p, *v);
    }
    let probes: Vec<IpAddr> = (0..256u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + (i * 7919) % 1000 + 1)))
        .collect();
    let mut g = c.benchmark_group("AllowedIPs lookup, 1,100 prefixes, 256 addresses");
    g.bench_function("baseline: linear scan", |b| {
        b.iter(|| {
            for a in &probes {
                let hit = prefixes
                    .iter()
                    .filter(|(p, _)| p.contains(a))
                    .max_by_key(|(p, _)| p.prefix_len());
                black_box(hit);
            }
        })
    });
    g.bench_function("trie", |b| {
        b.iter(|| {
            for a in &probes {
                black_box(t.lookup(*a));
            }
        })
    });
    g.finish();

    // What the data path meets after a pause: one lookup with the caches emptied first (by
    // writing 64 MiB, twice the L3 here), against one load from a line the same emptying left
    // cold. The ratio is roughly how many cache misses a lookup waits for, one after another.
    let mut evict = vec![0u8; 64 << 20];
    let line = vec![1u64; 1 << 20];
    let mut turn = 0usize;
    let mut g = c.benchmark_group("one AllowedIPs lookup, caches emptied first");
    g.sample_size(20);
    g.bench_function("baseline: one load from a cold line", |b| {
        b.iter_batched(
            || {
                turn += 1;
                empty_caches(&mut evict);
                (turn * 4099) % line.len()
            },
            |i| black_box(line[i]),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("trie", |b| {
        b.iter_batched(
            || {
                turn += 1;
                empty_caches(&mut evict);
                probes[turn % probes.len()]
            },
            |a| black_box(t.lookup(a).copied()),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Writes a line of every 64 bytes of `evict` (twice the L3 here), so that what was cached is
/// gone.
fn empty_caches(evict: &mut [u8]) {
    evict
        .iter_mut()
        .step_by(64)
        .for_each(|x| *x = x.wrapping_add(1));
}

criterion_group!(benches, crypto, trie);
criterion_main!(benches);
