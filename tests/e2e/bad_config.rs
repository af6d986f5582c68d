//! A bad config or a bad key file: `meshd run` exits 1, says what is wrong on stderr (with
//! the file and line for config errors), never prints the private key, and changes nothing: no
//! TUN device, no `inet meshd` table in its namespace.

use meshd_e2e::command::output_with_timeout;
use meshd_e2e::mesh::{line_of, meshd_command, write_file_mode};
use meshd_e2e::{require_root, Key, MeshFiles, MeshSpec, Netns};
use std::path::Path;
use std::time::Duration;

/// A valid three-node mesh: alpha–bravo and bravo–charlie.
fn base() -> MeshSpec {
    let mut m = MeshSpec::new();
    m.node("alpha", "10.100.0.1/24", Some("192.0.2.1:51820"));
    m.node("bravo", "10.100.0.2/24", Some("192.0.2.2:51820"));
    m.node("charlie", "10.100.0.3/24", Some("192.0.2.3:51820"));
    m.rule_both("alpha", "bravo", &["any"]);
    m.rule("charlie", "bravo", &["tcp/22", "icmp"]);
    m
}

/// What stderr must contain: each inner slice is a set of alternatives, one of which must occur.
type Expect<'a> = &'a [&'a [&'a str]];

/// Whether `text` has `FILE:LINE:` (or just `FILE:<digits>:` when `line` is None).
fn has_position(text: &str, file: &str, line: Option<usize>) -> bool {
    text.match_indices(&format!("{file}:")).any(|(i, m)| {
        let rest = &text[i + m.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        !digits.is_empty()
            && rest[digits.len()..].starts_with(':')
            && line.is_none_or(|l| digits == l.to_string())
    })
}

/// Runs `meshd run` in a fresh namespace and checks everything a refused start must satisfy.
fn assert_refused(
    mesh: &MeshSpec,
    files: &MeshFiles,
    key_path: &Path,
    position: Option<Option<usize>>,
    expect: Expect<'_>,
) {
    let ns = Netns::new();
    let config = files.config.to_string_lossy().into_owned();
    let key = key_path.to_string_lossy().into_owned();
    let mut cmd = meshd_command(
        &ns,
        &["run", "--config", &config, "--private-key", &key],
        true,
    );
    cmd.env("MESHD_LOG", "info");
    let out = output_with_timeout(&mut cmd, files.dir.path(), Duration::from_secs(15));
    let report = format!(
        "config:\n{}\nkey file: {key}\nstatus: {:?}\nstderr:\n{}\nstdout:\n{}",
        files.yaml, out.status, out.stderr, out.stdout
    );
    let Some(status) = out.status else {
        panic!("meshd run did not exit within 15 s (it started?)\n{report}");
    };
    assert_eq!(status.code(), Some(1), "exit code\n{report}");
    assert!(!out.stderr.trim().is_empty(), "nothing on stderr\n{report}");
    if let Some(line) = position {
        assert!(
            has_position(&out.stderr, &config, line),
            "stderr lacks `{config}:{}:`\n{report}",
            line.map_or("LINE".to_string(), |l| l.to_string())
        );
    }
    for alternatives in expect {
        assert!(
            alternatives.iter().any(|a| out.stderr.contains(a)),
            "stderr contains none of {alternatives:?}\n{report}"
        );
    }
    for n in &mesh.nodes {
        assert!(
            !out.stderr.contains(&n.key.private) && !out.stdout.contains(&n.key.private),
            "a private key was printed\n{report}"
        );
    }
    assert!(
        !ns.link_exists(&files.iface),
        "`ip link show {}` succeeds: a device was created\n{report}",
        files.iface
    );
    assert!(
        ns.tun_devices().is_empty(),
        "TUN devices were created: {:?}\n{report}",
        ns.tun_devices()
    );
    assert!(
        !ns.exec(&["nft", "list", "table", "inet", "meshd"])
            .status
            .success(),
        "a firewall table was installed\n{report}"
    );
}

/// A broken variant of the base config: `edit` turns the valid YAML into the broken one.
fn broken(mesh: &MeshSpec, edit: impl FnOnce(&str) -> String) -> MeshFiles {
    let yaml = edit(&mesh.to_yaml());
    assert_ne!(yaml, mesh.to_yaml(), "the edit changed nothing");
    mesh.write_yaml(&yaml)
}

#[test]
fn yaml_syntax_error() {
    if !require_root() {
        return;
    }
    let m = base();
    let f = broken(&m, |y| y.replacen("  mtu: 1420", "  mtu: [1420", 1));
    assert_refused(&m, &f, f.key_path("alpha"), Some(None), &[]);
}

#[test]
fn unknown_key() {
    if !require_root() {
        return;
    }
    let m = base();
    let f = broken(&m, |y| {
        y.replacen("  mtu: 1420\n", "  mtu: 1420\n  bogus_key: 1\n", 1)
    });
    let line = f.line_of("bogus_key");
    assert_refused(
        &m,
        &f,
        f.key_path("alpha"),
        Some(Some(line)),
        &[&["bogus_key"]],
    );
}

#[test]
fn address_outside_mesh_prefix() {
    if !require_root() {
        return;
    }
    let m = base();
    let f = broken(&m, |y| {
        y.replacen("address: 10.100.0.3/24", "address: 10.200.0.3/24", 1)
    });
    let line = f.line_of("10.200.0.3/24");
    assert_refused(
        &m,
        &f,
        f.key_path("alpha"),
        Some(Some(line)),
        &[&["nodes[2].address", "10.200.0.3"]],
    );
}

#[test]
fn policy_names_unknown_node() {
    if !require_root() {
        return;
    }
    let mut m = base();
    m.rule("alpha", "ghost", &["any"]);
    let f = m.write();
    let line = line_of(&f.yaml, "to: ghost");
    assert_refused(
        &m,
        &f,
        f.key_path("alpha"),
        Some(Some(line)),
        &[&["ghost", "policy[3].to"]],
    );
}

#[test]
fn port_out_of_range() {
    if !require_root() {
        return;
    }
    let mut m = base();
    m.rule("alpha", "bravo", &["tcp/70000"]);
    let f = m.write();
    let line = line_of(&f.yaml, "tcp/70000");
    assert_refused(
        &m,
        &f,
        f.key_path("alpha"),
        Some(Some(line)),
        &[&["70000", "policy[3].allow"]],
    );
}

#[test]
fn key_file_readable_by_others() {
    if !require_root() {
        return;
    }
    let m = base();
    let f = m.write();
    let key = f.key_path("alpha");
    m.key("alpha").write_private(key, 0o644);
    assert_refused(&m, &f, key, None, &[&["chmod 600"]]);
}

#[test]
fn key_matching_no_node() {
    if !require_root() {
        return;
    }
    let m = base();
    let f = m.write();
    let stranger = Key::generate();
    let path = f.dir.join("stranger.key");
    stranger.write_private(&path, 0o600);
    assert_refused(
        &m,
        &f,
        &path,
        None,
        &[&[
            stranger.public.as_str(),
            "no node",
            "matches no",
            "not match",
            "any node",
            "none of the nodes",
        ]],
    );
    assert!(!stranger.private.is_empty());
}

#[test]
fn missing_key_file() {
    if !require_root() {
        return;
    }
    let m = base();
    let f = m.write();
    let path = f.dir.join("missing.key");
    assert_refused(&m, &f, &path, None, &[&[path.to_string_lossy().as_ref()]]);
}

#[test]
fn a_valid_config_does_start() {
    // The control for all of the above: the same setup with a good config and key runs.
    if !require_root() {
        return;
    }
    let m = base();
    let f = m.write();
    let (a, _b) = meshd_e2e::topo::pair(false);
    let node = meshd_e2e::Meshd::start(&a.ns, &f, "alpha");
    assert!(a.ns.link_exists(&f.iface));
    node.stop().assert_clean();
    // And write_file_mode really sets what it is told (the 0644 case depends on it).
    let p = f.dir.join("mode-check");
    write_file_mode(&p, "x", 0o644);
    let mode = std::fs::metadata(&p).map(|md| {
        use std::os::unix::fs::PermissionsExt;
        md.permissions().mode() & 0o777
    });
    assert_eq!(mode.ok(), Some(0o644));
}
