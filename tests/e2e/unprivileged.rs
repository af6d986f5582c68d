//! meshd as `systemd/meshd.service` runs it: a dedicated user (not root) whose only
//! capability is CAP_NET_ADMIN, ambient and bounding, with `/run/meshd` and `/run/wireguard`
//! its own. It creates the device, routes a peer's subnet, installs and replaces its nft
//! table (through `ip` and `nft`, which inherit the ambient capability), and serves the
//! control socket to root.

use meshd_e2e::mesh::MeshdOpts;
use meshd_e2e::topo::{overlay_cidr, pair, two_node_mesh};
use meshd_e2e::{host_of, meshd_bin, require_root, Meshd};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// A uid no account on the machine has, as a `meshd` system user would be.
const UID: u32 = 64_123;
const CAP_NET_ADMIN: u64 = 1 << 12;

/// A `Cap...:` or `Uid:` line of /proc/PID/status.
fn status_field(pid: u32, field: &str) -> String {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn caps(pid: u32, field: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, field), 16).expect("a hex capability mask")
}

#[test]
fn runs_as_a_dedicated_user_with_only_cap_net_admin() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let mut mesh = two_node_mesh(&a, &b);
    mesh.nodes[1].routes = vec!["198.51.100.0/24".to_string()];
    let files = mesh.write();
    // The user must reach its key (as LoadCredential gives it) and the binary.
    let chmod = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    chmod(files.dir.path(), 0o755);
    std::os::unix::fs::chown(files.key_path("a"), Some(UID), Some(UID)).expect("chown a's key");
    let bin = files.dir.join("meshd");
    std::fs::copy(meshd_bin(), &bin).expect("copy meshd");
    chmod(&bin, 0o755);

    let opts = MeshdOpts {
        user: Some(UID),
        bin: Some(bin),
        ..MeshdOpts::default()
    };
    let ma = Meshd::start_with(&a.ns, &files, "a", opts);
    let mb = Meshd::start(&b.ns, &files, "b");

    let pid = ma.pid();
    let uids = status_field(pid, "Uid");
    assert!(
        uids.split_whitespace().all(|u| u == UID.to_string()),
        "meshd runs as uids {uids}, not {UID}"
    );
    for field in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(caps(pid, field), CAP_NET_ADMIN, "{field} of meshd");
    }

    // Device, route, firewall, tunnel.
    a.ns.assert_reaches(host_of(&overlay_cidr(2, false)));
    let routes = a.ns.ip(&["route", "show", "dev", &files.iface]);
    assert!(
        routes.contains("198.51.100.0/24"),
        "no route to b's subnet: {routes}"
    );
    assert!(a
        .ns
        .exec(&["nft", "list", "table", "inet", "meshd"])
        .status
        .success());

    // Root reads the user's control socket; the user replaces its own table on reload.
    let bin = meshd_bin();
    let bin = bin.to_string_lossy();
    let peers = ma.exec(&[&bin, "peers"]);
    assert!(
        peers.status.success(),
        "{}",
        String::from_utf8_lossy(&peers.stderr)
    );
    assert!(String::from_utf8_lossy(&peers.stdout).contains('b'));
    for rule in &mut mesh.rules {
        rule.allow = vec!["tcp/22".to_string(), "icmp".to_string()];
    }
    std::fs::write(&files.config, mesh.to_yaml()).expect("write the config");
    let reload = ma.exec(&[&bin, "reload"]);
    let said = String::from_utf8_lossy(&reload.stdout);
    assert!(
        reload.status.success() && said.contains("firewall=replaced"),
        "reload as the user: {said}{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    let table = a.ns.exec_ok(&["nft", "list", "table", "inet", "meshd"]);
    assert!(
        table.contains("dport 22"),
        "the new table is not in place:\n{table}"
    );
    a.ns.assert_reaches(host_of(&overlay_cidr(2, false)));
    std::thread::sleep(Duration::from_millis(200));

    for m in [ma, mb] {
        m.stop().assert_clean();
    }
}
