//! One node of a 2,000-node mesh whose policy lets every node reach every other (all but two
//! nodes exist only in the config): it gets ready, passes traffic to its one real peer, applies
//! reloads that change one rule, and its memory does not grow over three of them. Its metrics
//! hold a few series per peer, all of them per peer once a reload asks for
//! `metrics_detail: peer`.

use base64::Engine;
use meshd_e2e::process::rss_kib;
use meshd_e2e::scrape::scrape;
use meshd_e2e::topo::{endpoint, pair};
use meshd_e2e::{ip, meshd_bin, require_root, Key, MeshSpec, Meshd};
use rand_core::{OsRng, RngCore};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const NODES: usize = 2000;
const PORT: u16 = 51820;

/// A node that never runs: any 32 bytes are a public key.
fn config_only_key() -> Key {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    Key {
        private: String::new(),
        public: base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// Sample lines in a scrape, and those of family `name`.
fn series(metrics: &str, name: &str) -> (usize, usize) {
    let samples: Vec<&str> = metrics.lines().filter(|l| !l.starts_with('#')).collect();
    let of = samples
        .iter()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .count();
    (samples.len(), of)
}

#[test]
fn a_node_of_two_thousand_starts_passes_traffic_and_reloads_in_bounded_memory() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let mut mesh = MeshSpec::new();
    mesh.metrics = "127.0.0.1:9586".into();
    mesh.node("a", "10.100.0.1/16", Some(&endpoint(a.addr, PORT)));
    mesh.node("b", "10.100.0.2/16", Some(&endpoint(b.addr, PORT)));
    for i in 2..NODES {
        // Unrouted endpoints (198.51.100.0/24): nothing is sent to them.
        let host = i + 1;
        mesh.node_with_key(
            &format!("n{i:04}"),
            config_only_key(),
            &format!("10.100.{}.{}/16", host >> 8, host & 255),
            Some(&format!("198.51.100.{}:{}", i % 250 + 1, 51820 + i / 250)),
        );
    }
    mesh.rule("\"*\"", "\"*\"", &["icmp", "tcp/22"]);
    mesh.rule("\"*\"", "\"*\"", &["tcp/8000"]);
    let files = mesh.write();

    let started = Instant::now();
    let mut ma = Meshd::start(&a.ns, &files, "a");
    eprintln!(
        "a, with {} peers: ready after {:.2?}",
        NODES - 1,
        started.elapsed()
    );
    let mb = Meshd::start(&b.ns, &files, "b");
    a.ns.assert_reaches(ip("10.100.0.2"));

    let bin = meshd_bin().to_string_lossy().into_owned();
    let config = std::fs::read_to_string(&files.config).expect("read the config");
    let mut rss = vec![rss_kib(ma.pid())];
    for port in [8001, 8002, 8003] {
        // One rule's port changed, nothing else.
        let next = config.replace("allow: [tcp/8000]", &format!("allow: [tcp/{port}]"));
        assert_ne!(next, config, "the rule to change is not in the config");
        std::fs::write(&files.config, next).expect("write the config");
        let took = Instant::now();
        let out = ma.exec(&[&bin, "reload"]);
        assert!(
            out.status.success(),
            "reload refused: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        rss.push(rss_kib(ma.pid()));
        eprintln!(
            "reload to tcp/{port}: {:.2?}, RSS {} MB",
            took.elapsed(),
            rss[rss.len() - 1] / 1024
        );
    }
    ma.wait_for_log(" reloaded ", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    a.ns.assert_reaches(ip("10.100.0.2"));

    // By default a peer has 4 series, whatever the traffic; node-wide families have no peer.
    let metrics_at: SocketAddr = "127.0.0.1:9586".parse().unwrap();
    let peers = NODES - 1;
    let metrics = scrape(a.ns.name(), metrics_at);
    let (total, sent) = series(&metrics, "wireguard_sent_bytes_total");
    assert_eq!(sent, peers);
    assert!(total <= 4 * peers + 100, "{total} series for {peers} peers");
    assert_eq!(series(&metrics, "meshd_payload_bytes_total").1, 2);
    assert!(!metrics.contains("meshd_payload_bytes_total{direction=\"tx\",peer="));
    // `metrics_detail: peer`, applied by a reload: every peer family per peer.
    let config = std::fs::read_to_string(&files.config).expect("read the config");
    let detailed = config.replace(
        "  metrics: \"127.0.0.1:9586\"\n",
        "  metrics: \"127.0.0.1:9586\"\n  metrics_detail: peer\n",
    );
    assert_ne!(detailed, config);
    std::fs::write(&files.config, detailed).expect("write the config");
    let out = ma.exec(&[&bin, "reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = scrape(a.ns.name(), metrics_at);
    let (total, payload) = series(&metrics, "meshd_payload_bytes_total");
    assert_eq!(payload, 2 * peers);
    assert!(total >= 30 * peers, "{total} series for {peers} peers");

    // The old plans' memory comes back: three reloads leave RSS within 10% (and 2 MB, the
    // allocator's noise at this size) of the first's.
    let (first, last) = (rss[1], rss[3]);
    assert!(
        last * 10 <= first * 11 + 20 * 1024,
        "RSS grew over reloads: {} MB at start, then {:?} MB",
        rss[0] / 1024,
        rss[1..].iter().map(|k| k / 1024).collect::<Vec<_>>()
    );
    ma.stop().assert_clean();
    mb.stop().assert_clean();
}
