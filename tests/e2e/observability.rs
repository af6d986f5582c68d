//! Observability end to end: two meshd nodes, a 50 MB TCP transfer, then what
//! the metrics endpoint, `meshd peers`, `meshd whois`, Debian's `wg show` (over the UAPI
//! socket) and the control socket say about it, checked against what the test itself sent,
//! and against each other. Malformed requests on every endpoint get an error reply and the
//! daemon keeps answering; no endpoint reveals the private key.

use meshd_e2e::probe::{tcp_connect, Connect};
use meshd_e2e::scrape::{daemon_socket, http_raw, sample, scrape, unix_request};
use meshd_e2e::setup::{meshd_bin, wait_until};
use meshd_e2e::text::hex_of_base64;
use meshd_e2e::topo::{endpoint, overlay_cidr, pair};
use meshd_e2e::transfer::udp_send;
use meshd_e2e::{assert_tcp_transfer, host_of, require_root, MeshSpec, Meshd, MB};
use std::net::SocketAddr;
use std::time::Duration;

const PORT: u16 = 51820;
const BYTES: u64 = 50 * MB;
/// IPv4 (20) + TCP with timestamps (32): the inner headers of every data segment.
const TCP_IP_HEADERS: f64 = 52.0;
/// WireGuard's per-packet cost on the wire: type, index, counter (16) and the AEAD tag (16).
const WG_OVERHEAD: f64 = 32.0;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn get(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(metrics, name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{metrics}"))
}

/// `meshd ARGS` run in the node's namespaces (it needs the node's private `/run`).
fn meshd(node: &Meshd, args: &[&str]) -> std::process::Output {
    let bin = meshd_bin().to_string_lossy().into_owned();
    let mut all = vec![bin.as_str()];
    all.extend_from_slice(args);
    node.exec(&all)
}

#[test]
fn metrics_peers_whois_and_wg_show_agree_with_the_traffic() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let (ca, cb) = (overlay_cidr(1, false), overlay_cidr(2, false));
    let mut mesh = MeshSpec::new();
    mesh.metrics = "127.0.0.1:9586".into();
    // Every peer metric per peer (by default most are summed over the node).
    mesh.metrics_detail = Some("peer".into());
    mesh.node("a", &ca, Some(&endpoint(a.addr, PORT)));
    mesh.node("b", &cb, Some(&endpoint(b.addr, PORT)));
    mesh.rule("a", "b", &["any"]);
    mesh.rule("b", "a", &["icmp"]);
    let files = mesh.write();
    let metrics_at: SocketAddr = "127.0.0.1:9586".parse().unwrap();

    // a's first packet makes the handshake: a is the initiator.
    let mb = Meshd::start(&b.ns, &files, "b");
    let ma = Meshd::start(&a.ns, &files, "a");
    let (oa, ob) = (host_of(&ca), host_of(&cb));
    a.ns.assert_reaches(ob);

    // Before the transfer, so that the bytes it adds can be told apart.
    let before_a = scrape(a.ns.name(), metrics_at);
    let before_b = scrape(b.ns.name(), metrics_at);
    let tx = |m: &str, what: &str| get(m, what, &[("peer", "b"), ("direction", "tx")]);
    let rx = |m: &str, what: &str| get(m, what, &[("peer", "a"), ("direction", "rx")]);
    assert_tcp_transfer(
        b.ns.name(),
        a.ns.name(),
        SocketAddr::new(ob, 5001),
        BYTES,
        Duration::from_secs(180),
    );
    let after_a = scrape(a.ns.name(), metrics_at);
    let after_b = scrape(b.ns.name(), metrics_at);

    // Payload bytes: what the test sent plus the inner TCP/IP headers of each packet.
    let d = |after: &str, before: &str, f: &dyn Fn(&str, &str) -> f64, what: &str| {
        f(after, what) - f(before, what)
    };
    let (payload, packets, wire) = (
        d(&after_a, &before_a, &tx, "meshd_payload_bytes_total"),
        d(&after_a, &before_a, &tx, "meshd_packets_total"),
        d(&after_a, &before_a, &tx, "meshd_wire_bytes_total"),
    );
    let app = payload - TCP_IP_HEADERS * packets;
    let err = (app - BYTES as f64).abs() / BYTES as f64;
    eprintln!(
        "a -> b: sent {BYTES} B; meshd counted {payload} payload B in {packets} packets \
         ({app:.0} B less inner headers, {:.3}% off), {wire} wire B, overhead {:.2}%",
        err * 100.0,
        (wire / payload - 1.0) * 100.0
    );
    assert!(
        err < 0.01,
        "payload bytes off by {:.3}% (> 1%)",
        err * 100.0
    );
    assert!(
        wire >= payload + WG_OVERHEAD * packets,
        "wire bytes {wire} < payload {payload} + 32 x {packets} packets"
    );
    // The receiver counted the same traffic coming in.
    let (rx_payload, rx_packets, rx_wire) = (
        d(&after_b, &before_b, &rx, "meshd_payload_bytes_total"),
        d(&after_b, &before_b, &rx, "meshd_packets_total"),
        d(&after_b, &before_b, &rx, "meshd_wire_bytes_total"),
    );
    assert!(
        (rx_payload - payload).abs() / payload < 0.01,
        "b received {rx_payload} payload bytes, a sent {payload}"
    );
    assert!(rx_wire >= rx_payload + WG_OVERHEAD * rx_packets);
    // Wire bytes as counted by the other end, from the datagrams it received.
    assert!(
        (rx_wire - wire).abs() / wire < 0.01,
        "b received {rx_wire} wire bytes, a sent {wire}"
    );

    // Handshakes: a initiated and timed it.
    let hs = get(
        &after_a,
        "meshd_handshakes_total",
        &[("peer", "b"), ("role", "initiator")],
    );
    assert!(hs >= 1.0, "no initiator handshake counted on a");
    assert!(
        get(
            &after_b,
            "meshd_handshakes_total",
            &[("peer", "a"), ("role", "responder")]
        ) >= 1.0
    );
    assert!(
        get(
            &after_a,
            "meshd_handshake_initiations_total",
            &[("peer", "b")]
        ) >= 1.0
    );
    assert!(
        get(
            &after_a,
            "meshd_handshake_duration_seconds_count",
            &[("peer", "b")]
        ) >= 1.0
    );
    assert!(
        get(
            &after_a,
            "meshd_handshake_duration_seconds_bucket",
            &[("peer", "b"), ("le", "+Inf")]
        ) >= 1.0
    );
    assert_eq!(get(&after_a, "meshd_peer_up", &[("peer", "b")]), 1.0);
    // The exporter-compatible series, with their labels.
    let exported = get(
        &after_a,
        "wireguard_sent_bytes_total",
        &[("friendly_name", "b"), ("interface", "meshd0")],
    );
    assert_eq!(
        exported,
        tx(&after_a, "meshd_wire_bytes_total"),
        "wireguard_sent_bytes_total and meshd_wire_bytes_total{{direction=tx}} disagree"
    );
    assert!(
        get(
            &after_a,
            "wireguard_latest_handshake_seconds",
            &[("friendly_name", "b")]
        ) > 1.7e9
    );
    assert!(
        get(
            &after_a,
            "meshd_firewall_applies_total",
            &[("result", "ok")]
        ) >= 1.0
    );
    // A connection the policy does not allow (b may only ping a) is dropped by a's mesh_in,
    // and the firewall's own counter, read back by meshd, shows it.
    let fw_drops = |m: &str| {
        get(
            m,
            "meshd_firewall_dropped_packets_total",
            &[("chain", "mesh_in")],
        )
    };
    let f0 = fw_drops(&after_a);
    let c = tcp_connect(b.ns.name(), SocketAddr::new(oa, 22), Duration::from_secs(1));
    assert_eq!(
        c,
        Connect::TimedOut,
        "b -> a:22 must be dropped by a's firewall"
    );
    assert!(
        wait_until(Duration::from_secs(6), || fw_drops(&scrape(
            a.ns.name(),
            metrics_at
        )) > f0),
        "meshd_firewall_dropped_packets_total{{chain=mesh_in}} on a stayed at {f0} after a \
         dropped SYN"
    );
    assert!(get(&after_a, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(sample(&after_a, "meshd_build_info", &[]).is_some());

    // Injected bad datagrams are counted as drops by reason. Plain junk never reaches meshd (the
    // kernel's socket filter drops it); two initiations' length in one datagram passes the
    // filter (it could be a coalesced train) and is meshd's to refuse.
    let malformed = |m: &str| get(m, "meshd_dropped_packets_total", &[("reason", "malformed")]);
    let m0 = malformed(&after_b);
    for i in 0..10u8 {
        udp_send(
            a.ns.name(),
            a.addr,
            SocketAddr::new(b.addr, PORT),
            &[[1, 0, 0, 0, i].as_slice(), &[0u8; 291]].concat(),
        )
        .expect("send a datagram");
    }
    assert!(
        wait_until(Duration::from_secs(5), || malformed(&scrape(
            b.ns.name(),
            metrics_at
        )) >= m0 + 10.0),
        "10 junk datagrams: dropped_packets_total{{reason=malformed}} went from {m0} to {}",
        malformed(&scrape(b.ns.name(), metrics_at))
    );

    // `meshd peers --json` (documented schema) and `wg show meshd0 dump` agree.
    let out = meshd(&ma, &["peers", "--json"]);
    assert!(
        out.status.success(),
        "meshd peers --json: {}",
        text(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(json["ok"], true);
    assert_eq!(json["interface"], "meshd0");
    assert_eq!(json["node"], "a");
    let peer = &json["peers"][0];
    for (key, kind) in [
        ("name", "string"),
        ("public_key", "string"),
        ("address", "string"),
        ("allowed_ips", "array"),
        ("endpoint", "string"),
        ("latest_handshake_unix", "number"),
        ("latest_handshake_age_seconds", "number"),
        ("state", "string"),
        ("rx_bytes", "number"),
        ("tx_bytes", "number"),
        ("rx_payload_bytes", "number"),
        ("tx_payload_bytes", "number"),
        ("rx_packets", "number"),
        ("tx_packets", "number"),
        ("keepalive_seconds", "null"),
        ("handshake_duration_seconds", "number"),
    ] {
        let v = &peer[key];
        let ok = match kind {
            "string" => v.is_string(),
            "array" => v.is_array(),
            "number" => v.is_number(),
            _ => v.is_null(),
        };
        assert!(ok, "peers --json: `{key}` should be a {kind}, is {v}");
    }
    assert_eq!(peer["name"], "b");
    assert_eq!(peer["state"], "up");
    assert_eq!(peer["address"], ob.to_string());
    assert_eq!(peer["endpoint"], format!("{}:{PORT}", b.addr));

    let dump = ma.exec(&["wg", "show", "meshd0", "dump"]);
    assert!(
        dump.status.success(),
        "wg show meshd0 dump: {}",
        text(&dump.stderr)
    );
    let dump = text(&dump.stdout);
    let b_key = peer["public_key"].as_str().unwrap_or_default().to_string();
    let line = dump
        .lines()
        .find(|l| l.starts_with(&b_key))
        .unwrap_or_else(|| panic!("no peer {b_key} in `wg show dump`:\n{dump}"));
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!(cols.len(), 8, "{line}");
    assert_eq!(cols[2], format!("{}:{PORT}", b.addr), "{line}");
    assert_eq!(cols[3], format!("{ob}/32"), "{line}");
    let num = |s: &str| s.parse::<f64>().unwrap_or_else(|e| panic!("{s}: {e}"));
    let near = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol;
    assert!(
        near(
            num(cols[4]),
            peer["latest_handshake_unix"].as_f64().unwrap_or(0.0),
            1.0
        ),
        "{line}"
    );
    // (A passive keepalive may pass between the two reads.)
    assert!(
        near(
            num(cols[5]),
            peer["rx_bytes"].as_f64().unwrap_or(0.0),
            256.0
        ),
        "rx {line}"
    );
    assert!(
        near(
            num(cols[6]),
            peer["tx_bytes"].as_f64().unwrap_or(0.0),
            256.0
        ),
        "tx {line}"
    );
    let show = text(&ma.exec(&["wg", "show", "meshd0"]).stdout);
    assert!(
        show.contains("interface: meshd0") && show.contains("latest handshake"),
        "{show}"
    );

    let table = text(&meshd(&ma, &["peers"]).stdout);
    assert!(
        table.contains("NAME")
            && table
                .lines()
                .any(|l| l.starts_with('b') && l.contains(" up")),
        "{table}"
    );

    // whois: a peer's address, this node's own, and one nobody owns.
    let w = meshd(&ma, &["whois", &ob.to_string(), "--json"]);
    let w: serde_json::Value = serde_json::from_slice(&w.stdout).unwrap_or_default();
    assert_eq!(
        (w["node"].as_str(), w["public_key"].as_str()),
        (Some("b"), Some(b_key.as_str()))
    );
    let w = text(&meshd(&ma, &["whois", &oa.to_string()]).stdout);
    assert!(w.contains("is a (this node)"), "{w}");
    let none = meshd(&ma, &["whois", "10.100.0.99"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(
        text(&none.stderr).contains("10.100.0.99"),
        "{}",
        text(&none.stderr)
    );

    // Malformed requests: an error reply each, and the daemon keeps answering.
    let control = daemon_socket(ma.pid(), "/run/meshd/meshd0.sock");
    let lines = |n: usize| move |r: &[u8]| r.iter().filter(|c| **c == b'\n').count() >= n;
    let r = unix_request(
        &control,
        b"not json\n{\"cmd\":\"frob\"}\n\xff\xfe\n{\"cmd\":\"peers\"}\n",
        lines(4),
    )
    .expect("control request");
    let r = text(&r);
    let replies: Vec<&str> = r.lines().collect();
    assert_eq!(replies.len(), 4, "{r}");
    for bad in &replies[..3] {
        assert!(bad.starts_with("{\"ok\":false,\"error\":"), "{r}");
    }
    assert!(replies[3].starts_with("{\"ok\":true"), "{r}");
    let long = vec![b'x'; 10_000];
    let r = text(&unix_request(&control, &long, lines(1)).expect("control request"));
    assert!(r.contains("\"ok\":false"), "{r}");

    let uapi = daemon_socket(ma.pid(), "/run/wireguard/meshd0.sock");
    let ends = |r: &[u8]| r.ends_with(b"\n\n");
    let r = text(&unix_request(&uapi, b"hello=1\n\n", ends).expect("UAPI request"));
    assert_eq!(r, "errno=-22\n\n");
    let r = text(&unix_request(&uapi, b"set=1\nprivate_key=00\n\n", ends).expect("UAPI request"));
    assert_eq!(r, "errno=-1\n\n");
    let get = text(&unix_request(&uapi, b"get=1\n\n", ends).expect("UAPI request"));
    assert!(
        get.ends_with("errno=0\n\n") && get.contains("public_key="),
        "{get}"
    );

    for (req, status) in [
        (&b"BLAH\r\n\r\n"[..], "400"),
        (b"GET /nope HTTP/1.1\r\n\r\n", "404"),
        (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
    ] {
        let r = http_raw(a.ns.name(), metrics_at, req).expect("metrics request");
        assert!(
            r.starts_with(&format!("HTTP/1.1 {status}")),
            "{}: {r}",
            text(req)
        );
    }
    let big = vec![b'A'; 20_000];
    let r = http_raw(a.ns.name(), metrics_at, &big).expect("metrics request");
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    let metrics = scrape(a.ns.name(), metrics_at);

    // No endpoint ever shows the private key, in base64 or in hex.
    let private = std::fs::read_to_string(files.key_path("a")).unwrap_or_default();
    let private = private.trim();
    let private_hex = hex_of_base64(private);
    assert_eq!(private_hex.len(), 64);
    for (what, shown) in [
        ("metrics", &metrics),
        ("uapi get", &get),
        ("peers --json", &text(&out.stdout)),
        ("wg show dump", &dump),
    ] {
        assert!(
            !shown.contains(private) && !shown.contains(&private_hex),
            "{what} shows the private key"
        );
    }

    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
}
