//! Reload without disruption. Five hosts on one switch; the mesh starts as a, b, p, r
//! (a–b any, a→p tcp/7001, a–r any). Mid-way through a TCP stream from a to b, every running
//! node reloads (a by SIGHUP, b and p through the control socket) to a mesh of a, b, p, n
//! (a→p now tcp/7002, r gone, n added). The stream survives intact, the a–b pair does no
//! new handshake, n is reachable, r is not, p's ports follow. Before that, a broken config
//! and a change that needs a restart are refused and change nothing.

use meshd_e2e::nft::{install_counters, read_counter, CounterSpec, Dir};
use meshd_e2e::probe::{tcp_connect, tcp_connect_patiently, Listener};
use meshd_e2e::scrape::{sample, scrape};
use meshd_e2e::topo::{endpoint, overlay_cidr, switched};
use meshd_e2e::transfer::{spawn_in_netns, TcpTransfer, TransferOpts, UdpCollector};
use meshd_e2e::{host_of, meshd_bin, require_root, MeshSpec, Meshd};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const PORT: u16 = 51820;
const METRICS: &str = "127.0.0.1:9586";
const DATAGRAMS: u32 = 500;

/// One sample of the metrics of the node in `ns` (0 when absent).
fn metric(ns: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = scrape(ns, METRICS.parse().unwrap());
    sample(&text, name, labels).unwrap_or(0.0)
}

/// Handshakes the node in `ns` completed with `peer`, either role.
fn handshakes(ns: &str, peer: &str) -> f64 {
    ["initiator", "responder"]
        .iter()
        .map(|role| {
            metric(
                ns,
                "meshd_handshakes_total",
                &[("peer", peer), ("role", role)],
            )
        })
        .sum()
}

/// (reloads applied, reloads refused, whether the latest was applied) from the metrics.
fn reloads(ns: &str) -> (f64, f64, f64) {
    let total = "meshd_config_reloads_total";
    (
        metric(ns, total, &[("result", "ok")]),
        metric(ns, total, &[("result", "refused")]),
        metric(ns, "meshd_config_last_reload_successful", &[]),
    )
}

/// `meshd reload` in the node's namespaces: (success, stdout + stderr).
fn reload(m: &Meshd) -> (bool, String) {
    let bin = meshd_bin();
    let out = m.exec(&[&bin.to_string_lossy(), "reload"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn sighup(m: &Meshd) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &m.pid().to_string()])
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "kill -HUP {}", m.pid());
}

/// Connects within 10 s (a first handshake may hold up the first SYNs).
fn opens(ns: &str, addr: IpAddr, port: u16) -> bool {
    let to = SocketAddr::new(addr, port);
    tcp_connect_patiently(ns, to, Duration::from_secs(2), Duration::from_secs(10)).is_connected()
}

fn connects(ns: &str, addr: IpAddr, port: u16) -> bool {
    tcp_connect(ns, SocketAddr::new(addr, port), Duration::from_secs(2)).is_connected()
}

#[test]
fn reload_adds_removes_and_changes_nodes_while_a_stream_runs() {
    if !require_root() {
        return;
    }
    let (_sw, hosts) = switched(5, false);
    let names = ["a", "b", "p", "r", "n"];
    let overlay: Vec<IpAddr> = (1..=5).map(|i| host_of(&overlay_cidr(i, false))).collect();
    let (oa, ob, op, or, on) = (overlay[0], overlay[1], overlay[2], overlay[3], overlay[4]);

    let mut all = MeshSpec::new();
    all.metrics = METRICS.to_string();
    // Handshakes are counted per peer below.
    all.metrics_detail = Some("peer".into());
    for (i, name) in names.iter().enumerate() {
        let n = u8::try_from(i + 1).unwrap_or(1);
        all.node(
            name,
            &overlay_cidr(n, false),
            Some(&endpoint(hosts[i].addr, PORT)),
        );
    }
    let mut before = all.clone();
    before.nodes.retain(|n| n.name != "n");
    before.rule_both("a", "b", &["any"]);
    before.rule("a", "p", &["tcp/7001"]);
    before.rule_both("a", "r", &["any"]);
    let mut after = all.clone();
    after.nodes.retain(|n| n.name != "r");
    after.rule_both("a", "b", &["any"]);
    after.rule("a", "p", &["tcp/7002"]);
    after.rule_both("a", "n", &["any"]);
    // Every node reads files.config; n, which exists only after, runs from its own copy.
    let files = before.write();
    let files_after = after.write();

    let (ha, hb, hp, hr, hn) = (&hosts[0], &hosts[1], &hosts[2], &hosts[3], &hosts[4]);
    // Handshake initiations between a and b on the underlay, seen from a: the proof that the
    // pair kept its session (meshd's own counters would restart with a replaced peer).
    install_counters(
        &ha.ns,
        &[
            CounterSpec::handshake_initiations("init_to_b", Dir::To, hb.addr),
            CounterSpec::handshake_initiations("init_from_b", Dir::From, hb.addr),
        ],
    );
    let initiations = || read_counter(&ha.ns, "init_to_b") + read_counter(&ha.ns, "init_from_b");
    let mut ma = Meshd::start(&ha.ns, &files, "a");
    let mb = Meshd::start(&hb.ns, &files, "b");
    let mp = Meshd::start(&hp.ns, &files, "p");
    let _mr = Meshd::start(&hr.ns, &files, "r");
    let _p7001 = Listener::must(hp.ns.name(), SocketAddr::new(op, 7001));
    let _p7002 = Listener::must(hp.ns.name(), SocketAddr::new(op, 7002));
    ha.ns.assert_reaches(ob);
    ha.ns.assert_reaches(or);
    assert!(opens(ha.ns.name(), op, 7001), "p:7001 closed");
    assert!(
        !connects(ha.ns.name(), op, 7002),
        "p:7002 open before the reload"
    );

    // A refused reload changes nothing: a broken file, then a change that needs a restart.
    let good = std::fs::read_to_string(&files.config).expect("read the config");
    let table = |ns: &meshd_e2e::Netns| {
        ns.exec_ok(&["nft", "list", "table", "inet", "meshd"])
            .lines()
            .filter(|l| !l.contains("counter packets"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let table_before = table(&ha.ns);
    for (broken, why) in [
        (format!("{good}\n  - oops: [\n"), "invalid"),
        (
            good.replace("listen_port: 51820", "listen_port: 51999"),
            "needs a restart",
        ),
    ] {
        std::fs::write(&files.config, broken).expect("write the config");
        let (ok, text) = reload(&mb);
        assert!(!ok && text.contains(why), "b accepted a bad reload: {text}");
        sighup(&ma);
        ma.wait_for_log("reload refused", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        table(&ha.ns),
        table_before,
        "a refused reload changed a's firewall"
    );
    ha.ns.assert_reaches(or);
    assert!(connects(ha.ns.name(), op, 7001));
    assert!(
        ma.log().matches("reload refused").count() == 2 && reloads(ha.ns.name()) == (0.0, 2.0, 0.0),
        "{}",
        ma.log()
    );

    // The stream a → b, paced to run through the reload.
    let mut opts = TransferOpts::bytes(24 << 20);
    opts.pace = Some(4 << 20);
    let stream = TcpTransfer::start(hb.ns.name(), ha.ns.name(), SocketAddr::new(ob, 5001), opts)
        .expect("start the transfer");
    assert!(
        stream.wait_received(4 << 20, Duration::from_secs(20)),
        "the stream did not start"
    );
    let hs_a = handshakes(ha.ns.name(), "b");
    let hs_b = handshakes(hb.ns.name(), "a");
    let initiated = initiations();
    assert!(hs_a >= 1.0 && hs_b >= 1.0 && initiated >= 1);

    let mn = Meshd::start(&hn.ns, &files_after, "n");
    // Numbered datagrams a → b every 2 ms across the reloads: UDP has no retransmission, so
    // every one must arrive.
    let collector = UdpCollector::start(hb.ns.name(), SocketAddr::new(ob, 5555))
        .expect("start the UDP collector");
    let ticker = spawn_in_netns(ha.ns.name(), move || {
        let sock = std::net::UdpSocket::bind(SocketAddr::new(oa, 0)).map_err(|e| e.to_string())?;
        for i in 0..DATAGRAMS {
            sock.send_to(format!("seq {i}").as_bytes(), SocketAddr::new(ob, 5555))
                .map_err(|e| format!("datagram {i}: {e}"))?;
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&files.config, &files_after.yaml).expect("write the config");
    sighup(&ma);
    for m in [&mb, &mp] {
        let started = std::time::Instant::now();
        let (ok, text) = reload(m);
        assert!(ok, "{} refused the reload: {text}", m.node);
        eprintln!(
            "`meshd reload` on {} took {:?}: {}",
            m.node,
            started.elapsed(),
            text.trim()
        );
    }
    match ticker.join() {
        Ok(Ok(())) => {}
        other => panic!("datagram sender: {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(300));
    let got: std::collections::BTreeSet<Vec<u8>> =
        collector.stop().into_iter().map(|d| d.data).collect();
    let lost: Vec<u32> = (0..DATAGRAMS)
        .filter(|i| !got.contains(format!("seq {i}").as_bytes()))
        .collect();
    assert!(
        lost.is_empty(),
        "datagrams lost across the reload: {lost:?}"
    );
    ma.wait_for_log(
        "reloaded added=n removed=r changed=- unchanged=2",
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mid = stream.received();
    assert!(
        mid < 24 << 20,
        "the stream ended before the reload; pace it slower"
    );

    // The new shape: n reachable both ways, r in neither, p's ports moved.
    ha.ns.assert_reaches(on);
    hn.ns.assert_reaches(oa);
    assert!(!ha.ns.ping(or, 2), "a still reaches r after r was removed");
    assert!(!hr.ns.ping(oa, 2), "r still reaches a after r was removed");
    assert!(opens(ha.ns.name(), op, 7002), "p:7002 closed");
    assert!(
        !connects(ha.ns.name(), op, 7001),
        "p:7001 still open after the reload"
    );

    let report = stream
        .wait(Duration::from_secs(60))
        .expect("transfer across the reloads");
    assert!(
        report.is_intact(24 << 20),
        "the stream did not survive the reload"
    );
    eprintln!(
        "a-b handshake initiations {initiated} -> {}; stream at {mid} bytes when reloaded",
        initiations()
    );
    assert_eq!(initiations(), initiated, "a and b did a new handshake");
    assert_eq!(reloads(ha.ns.name()), (1.0, 2.0, 1.0), "a's reload metrics");
    assert_eq!(
        handshakes(ha.ns.name(), "b"),
        hs_a,
        "a and b did a new handshake"
    );
    assert_eq!(
        handshakes(hb.ns.name(), "a"),
        hs_b,
        "b and a did a new handshake"
    );
    for m in [ma, mb, mp, mn] {
        let stopped = m.stop();
        stopped.assert_clean();
    }
}
