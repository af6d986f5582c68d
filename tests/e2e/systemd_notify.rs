//! systemd's readiness protocol against a `NOTIFY_SOCKET` the test listens on: `READY=1` only
//! once the node's nft table and TUN device exist, `WATCHDOG=1` at half of `WATCHDOG_USEC`,
//! `RELOADING=1` then `READY=1` around a reload (refused or not), `STOPPING=1` on SIGTERM.

use meshd_e2e::mesh::MeshdOpts;
use meshd_e2e::topo::{pair, two_node_mesh};
use meshd_e2e::{require_root, Meshd};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn next(sock: &UnixDatagram, within: Duration) -> Option<String> {
    sock.set_read_timeout(Some(within)).ok()?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ready_only_when_firewall_and_device_are_up_then_watchdog_then_stopping() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let mesh = two_node_mesh(&a, &b);
    let files = mesh.write();
    let path = files.dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind notify.sock");

    let mut opts = MeshdOpts::default();
    opts.env
        .push(("NOTIFY_SOCKET".into(), path.to_string_lossy().into_owned()));
    // 400 ms: pings expected every 200 ms.
    opts.env.push(("WATCHDOG_USEC".into(), "400000".into()));
    let ma = Meshd::spawn(&a.ns, &files, "a", &opts);

    let ready = next(&sock, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no notification within 20 s; log:\n{}", ma.log()));
    // Checked the moment READY=1 arrives: both must already be there.
    let table =
        a.ns.exec(&["nft", "list", "table", "inet", "meshd"])
            .status
            .success();
    let device = a.ns.link_exists(&files.iface);
    assert!(
        ready.starts_with("READY=1"),
        "first notification: {ready:?}"
    );
    assert!(table, "READY=1 before table inet meshd existed");
    assert!(device, "READY=1 before {} existed", files.iface);

    let t0 = Instant::now();
    let mut at = Vec::new();
    while t0.elapsed() < Duration::from_millis(2000) {
        match next(&sock, Duration::from_millis(500)) {
            Some(m) if m == "WATCHDOG=1" => at.push(t0.elapsed()),
            Some(other) => panic!("unexpected notification {other:?}"),
            None => break,
        }
    }
    let mut gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps.get(gaps.len() / 2).copied();
    eprintln!("{} watchdog pings in 2 s, median gap {median:?}", at.len());
    assert!(
        at.len() >= 5
            && median.is_some_and(|m| {
                m >= Duration::from_millis(150) && m <= Duration::from_millis(260)
            }),
        "WATCHDOG=1 at {at:?}: expected one every 200 ms (half of WATCHDOG_USEC=400000)"
    );

    // SIGHUP, as `systemctl reload` sends it: once with the same config, once with a broken
    // one. Both times RELOADING=1 (with the monotonic time systemd wants), then READY=1.
    let original = std::fs::read_to_string(&files.config).expect("read the config");
    let mut ma = ma;
    for (config, outcome) in [
        (original.clone(), "reloaded "),
        (format!("{original}\nnot: [valid"), "reload refused"),
    ] {
        std::fs::write(&files.config, &config).expect("write the config");
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &ma.pid().to_string()])
            .status();
        assert!(hup.is_ok_and(|s| s.success()));
        let mut seen = Vec::new();
        while let Some(m) = next(&sock, Duration::from_secs(10)) {
            if m != "WATCHDOG=1" {
                seen.push(m);
            }
            if seen.len() == 2 {
                break;
            }
        }
        assert!(
            seen.len() == 2
                && seen[0].starts_with("RELOADING=1\nMONOTONIC_USEC=")
                && seen[0]["RELOADING=1\nMONOTONIC_USEC=".len()..]
                    .parse::<u64>()
                    .is_ok()
                && seen[1].starts_with("READY=1"),
            "after SIGHUP: {seen:?}"
        );
        ma.wait_for_log(outcome, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(a.ns.link_exists(&files.iface), "the device went away");

    let stopped = ma.stop();
    assert!(stopped.stopped.status.success(), "{}", stopped.stopped.log);
    let mut saw_stopping = false;
    while let Some(m) = next(&sock, Duration::from_millis(500)) {
        if m == "STOPPING=1" {
            saw_stopping = true;
        }
    }
    assert!(saw_stopping, "no STOPPING=1 after SIGTERM");
}
