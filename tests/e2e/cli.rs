//! The CLI contract around the daemon: `genkey`/`pubkey` agree with `wg`, `check` prints this
//! node's peers (and only them), reports every config error as `FILE:LINE:COL: key: message`,
//! and exits 2 on a usage error.

use meshd_e2e::command::{output, run_ok, run_ok_stdin};
use meshd_e2e::mesh::line_of;
use meshd_e2e::setup::meshd_bin;
use meshd_e2e::{require_root, MeshSpec};
use std::process::Command;

fn meshd(args: &[&str]) -> std::process::Output {
    output(Command::new(meshd_bin()).args(args))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mesh() -> MeshSpec {
    let mut m = MeshSpec::new();
    m.node("alpha", "10.100.0.1/24", Some("192.0.2.1:51820"));
    m.node("bravo", "10.100.0.2/24", Some("192.0.2.2:51820"));
    m.node("charlie", "10.100.0.3/24", Some("192.0.2.3:51820"));
    m.rule_both("alpha", "bravo", &["any"]);
    m.rule("charlie", "bravo", &["tcp/22", "icmp"]);
    m
}

#[test]
fn genkey_and_pubkey_match_wg() {
    if !require_root() {
        return;
    }
    let private = run_ok(Command::new(meshd_bin()).arg("genkey"))
        .trim()
        .to_string();
    assert_eq!(private.len(), 44, "not a base64 key: {private:?}");
    let ours = run_ok_stdin(
        Command::new(meshd_bin()).arg("pubkey"),
        &format!("{private}\n"),
    );
    let wgs = run_ok_stdin(Command::new("wg").arg("pubkey"), &format!("{private}\n"));
    assert_eq!(ours.trim(), wgs.trim());
    // And the other way: a key from `wg genkey`.
    let k = meshd_e2e::Key::generate();
    let ours = run_ok_stdin(
        Command::new(meshd_bin()).arg("pubkey"),
        &format!("{}\n", k.private),
    );
    assert_eq!(ours.trim(), k.public);
}

#[test]
fn check_prints_this_nodes_peers_only() {
    if !require_root() {
        return;
    }
    let m = mesh();
    let f = m.write();
    let config = f.config.to_string_lossy().into_owned();
    let key = f.key_path("alpha").to_string_lossy().into_owned();
    for args in [
        vec!["check", "--config", &config, "--private-key", &key],
        vec!["check", "--config", &config, "--node", "alpha"],
    ] {
        let out = meshd(&args);
        let (so, se) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}\nstdout:\n{so}\nstderr:\n{se}"
        );
        assert!(so.contains("alpha"), "{args:?}: this node not named:\n{so}");
        assert!(so.contains("bravo"), "{args:?}: peer bravo missing:\n{so}");
        assert!(
            !so.contains("charlie"),
            "{args:?}: charlie shares no rule with alpha but is listed:\n{so}"
        );
        assert!(!so.contains(&m.key("alpha").private) && !se.contains(&m.key("alpha").private));
    }
    // bravo peers with both.
    let key_b = f.key_path("bravo").to_string_lossy().into_owned();
    let out = meshd(&["check", "--config", &config, "--private-key", &key_b]);
    let so = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{so}{}", text(&out.stderr));
    assert!(so.contains("alpha") && so.contains("charlie"), "{so}");
}

#[test]
fn check_reports_every_error_with_its_position() {
    if !require_root() {
        return;
    }
    let mut m = mesh();
    m.rule("alpha", "bravo", &["tcp/70000"]);
    let yaml = m
        .to_yaml()
        .replacen("  mtu: 1420\n", "  mtu: 1420\n  bogus_key: 1\n", 1);
    let f = m.write_yaml(&yaml);
    let config = f.config.to_string_lossy().into_owned();
    let out = meshd(&["check", "--config", &config, "--node", "alpha"]);
    let se = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{se}");
    // FILE:LINE:COL: key.path: message, one per line.
    let errors: Vec<(usize, &str)> = se
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&format!("{config}:"))?;
            let mut parts = rest.splitn(3, ':');
            let line: usize = parts.next()?.parse().ok()?;
            let _col: usize = parts.next()?.parse().ok()?;
            let tail = parts.next()?.strip_prefix(' ')?;
            let (key, msg) = tail.split_once(": ")?;
            (!key.is_empty() && !msg.is_empty()).then_some((line, key))
        })
        .collect();
    let (l_bogus, l_port) = (line_of(&yaml, "bogus_key"), line_of(&yaml, "tcp/70000"));
    assert!(
        errors
            .iter()
            .any(|(l, k)| *l == l_bogus && k.contains("bogus_key")),
        "no `{config}:{l_bogus}:COL: ...bogus_key: ...` line in:\n{se}"
    );
    assert!(
        errors
            .iter()
            .any(|(l, k)| *l == l_port && k.starts_with("policy[3].allow")),
        "no `{config}:{l_port}:COL: policy[3].allow...: ...` line in:\n{se}"
    );
}

#[test]
fn usage_error_exits_2() {
    if !require_root() {
        return;
    }
    let out = meshd(&["check", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
