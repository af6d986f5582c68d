//! Logs as an operator reads them: one line per event, nothing at all in steady state, no
//! secret; under systemd (`JOURNAL_STREAM` set) no timestamp and a `<N>` syslog priority
//! prefix on every line, which journald turns into the entry's priority.

use meshd_e2e::cpu::own_cpus;
use meshd_e2e::mesh::MeshdOpts;
use meshd_e2e::setup::meshd_bin;
use meshd_e2e::text::hex_of_base64;
use meshd_e2e::topo::{overlay_cidr, pair, two_node_mesh};
use meshd_e2e::{host_of, require_root, Meshd};
use std::time::Duration;

#[test]
fn one_line_per_event_silent_when_steady_journal_priorities_and_no_secret() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let mesh = two_node_mesh(&a, &b);
    let files = mesh.write();
    let opts = MeshdOpts {
        journal: true,
        log_level: "info".into(),
        ..MeshdOpts::default()
    };
    let mut ma = Meshd::start_with(&a.ns, &files, "a", opts);
    // b inherited a JOURNAL_STREAM that is not its stderr (a shell under a terminal that
    // systemd started, say): it must log as on a terminal, timestamps and levels.
    let inherited = MeshdOpts {
        env: vec![("JOURNAL_STREAM".into(), "8:4242".into())],
        ..MeshdOpts::default()
    };
    let mb = Meshd::start_with(&b.ns, &files, "b", inherited);
    a.ns.assert_reaches(host_of(&overlay_cidr(2, false)));
    ma.wait_for_log("peer up", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));

    // Steady state: pings flowing, the firewall guard checking every 2 s, timers every
    // 100 ms. Nothing to say.
    let before = ma.log();
    assert!(a.ns.ping(host_of(&overlay_cidr(2, false)), 30));
    std::thread::sleep(Duration::from_secs(3));
    let steady = ma.log();
    let new = steady.strip_prefix(before.as_str()).unwrap_or(&steady);
    assert!(new.is_empty(), "meshd logged in steady state:\n{new}");

    // One reload that changes nothing, one refused: a line each.
    let bin = meshd_bin();
    let bin = bin.to_string_lossy();
    assert!(ma.exec(&[&bin, "reload"]).status.success());
    let good = std::fs::read_to_string(&files.config).expect("read the config");
    std::fs::write(&files.config, "nodes: [").expect("write the config");
    assert!(!ma.exec(&[&bin, "reload"]).status.success());
    std::fs::write(&files.config, good).expect("write the config");

    let stopped = ma.stop();
    stopped.assert_clean();
    let b_log = mb.stop();
    b_log.assert_clean();
    assert!(
        b_log
            .stopped
            .log
            .lines()
            .all(|l| !l.starts_with('<') && l.contains(" INFO ")),
        "b took an inherited JOURNAL_STREAM for the journal:\n{}",
        b_log.stopped.log
    );
    let log = stopped.stopped.log;
    let lines: Vec<&str> = log.lines().collect();
    let several_cpus = usize::from(own_cpus().contains([',', '-']));
    let expect = [
        ("<6>firewall applied table=inet meshd", 1),
        ("<6>offloads ", 1),
        ("<6>ready node=a ", 1),
        // Only where there is a CPU to choose (`placement.rs`).
        ("<6>data thread placement: ", several_cpus),
        ("<6>peer up peer=b ", 1),
        ("<6>reloaded added=- removed=- changed=- unchanged=1 ", 1),
        ("<3>reload refused, running config unchanged: ", 1),
        ("<6>stopped ", 1),
    ];
    for (start, n) in expect {
        let found = lines.iter().filter(|l| l.starts_with(start)).count();
        assert_eq!(found, n, "lines starting {start:?} in:\n{log}");
    }
    let expected: usize = expect.iter().map(|(_, n)| n).sum();
    assert_eq!(lines.len(), expected, "unexpected lines in:\n{log}");
    // The broken file's errors are on the refusal's own line (no multi-line entries).
    assert!(lines
        .iter()
        .any(|l| l.starts_with("<3>") && l.contains("mesh.yaml")));

    let private = std::fs::read_to_string(files.key_path("a")).unwrap_or_default();
    let private = private.trim();
    let hex = hex_of_base64(private);
    assert_eq!(hex.len(), 64);
    assert!(
        !log.contains(private) && !log.contains(&hex),
        "the log carries the private key"
    );
}
