//! Endpoints given as DNS names: resolved in the background, and a name that never resolves
//! holds up no other peer nor a clean stop. Names come from the namespace's own hosts file
//! (`ip netns exec` bind-mounts /etc/netns/NAME/hosts over /etc/hosts), so no DNS server and
//! no outside network are involved.

use meshd_e2e::topo::{endpoint, overlay_cidr, pair};
use meshd_e2e::{host_of, require_root, MeshSpec, Meshd, Netns};
use std::path::PathBuf;
use std::time::Duration;

const PORT: u16 = 51820;

/// /etc/netns/NAME/hosts for one namespace, removed on drop.
struct HostsFile(PathBuf);

impl HostsFile {
    /// Rewrites the file in place (same inode: `ip netns exec` bind-mounted it).
    fn set(&self, content: &str) {
        if let Err(e) = std::fs::write(self.0.join("hosts"), content) {
            panic!("cannot write {}/hosts: {e}", self.0.display());
        }
    }

    fn new(ns: &Netns, content: &str) -> HostsFile {
        let dir = PathBuf::from("/etc/netns").join(ns.name());
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        if let Err(e) = std::fs::write(dir.join("hosts"), content) {
            panic!("cannot write {}/hosts: {e}", dir.display());
        }
        HostsFile(dir)
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn dns_name_endpoint_resolves_and_an_unresolvable_one_blocks_nothing() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let _hosts = HostsFile::new(
        &a.ns,
        &format!("127.0.0.1 localhost\n{} b.mesh.test\n", b.addr),
    );
    let mut mesh = MeshSpec::new();
    // Only a knows where b is, and only by name: a must resolve it to initiate.
    mesh.node("a", &overlay_cidr(1, false), Some(&endpoint(a.addr, PORT)));
    mesh.node(
        "b",
        &overlay_cidr(2, false),
        Some(&format!("b.mesh.test:{PORT}")),
    )
    .keepalive = Some(25);
    mesh.node(
        "c",
        &overlay_cidr(3, false),
        Some(&format!("c.nowhere.invalid:{PORT}")),
    );
    mesh.rule_both("a", "b", &["any"]);
    mesh.rule_both("a", "c", &["any"]);
    let files = mesh.write();

    // a greets b, a peer with keepalive, once the name resolves (b, which has no keepalive
    // to a, greets nobody).
    let mb = Meshd::start(&b.ns, &files, "b");
    let mut ma = Meshd::start(&a.ns, &files, "a");
    ma.wait_for_log("peer up peer=b role=initiator", Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("a did not greet b at its resolved address: {e}"));
    a.ns.assert_reaches(host_of(&overlay_cidr(2, false)));
    b.ns.assert_reaches(host_of(&overlay_cidr(1, false)));

    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
    assert!(
        sa.log_contains(&format!(
            "resolved endpoint peer=b b.mesh.test={}:{PORT}",
            b.addr
        )),
        "a did not log resolving b"
    );
    assert!(
        sa.log_contains("cannot resolve endpoint c.nowhere.invalid of peer c"),
        "a did not log the name that does not resolve"
    );
}

/// A name that points nowhere useful, then (in the hosts file) at the peer: with
/// `interface.dns_refresh: 2`, meshd looks it up again while the peer has no handshake, and
/// the tunnel follows the new address within seconds.
#[test]
fn the_tunnel_follows_a_name_that_changes_address() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    let nowhere = "127.0.0.1 localhost\n192.0.2.99 b.mesh.test\n";
    let hosts = HostsFile::new(&a.ns, nowhere);
    let mut mesh = MeshSpec::new();
    mesh.dns_refresh = Some(2);
    // a is "behind NAT" (no endpoint): only a can start, and only by b's name.
    mesh.node("a", &overlay_cidr(1, false), None);
    mesh.node(
        "b",
        &overlay_cidr(2, false),
        Some(&format!("b.mesh.test:{PORT}")),
    );
    mesh.rule_both("a", "b", &["any"]);
    let files = mesh.write();
    let mut ma = Meshd::start(&a.ns, &files, "a");
    let mb = Meshd::start(&b.ns, &files, "b");
    if let Err(e) = ma.wait_for_log("b.mesh.test=192.0.2.99", Duration::from_secs(5)) {
        panic!("{e}");
    }
    let ob = host_of(&overlay_cidr(2, false));
    assert!(
        !a.ns.ping(ob, 1),
        "b answered while its name pointed nowhere"
    );

    hosts.set(&format!("127.0.0.1 localhost\n{} b.mesh.test\n", b.addr));
    let moved = format!("resolved endpoint peer=b b.mesh.test={}:{PORT}", b.addr);
    if let Err(e) = ma.wait_for_log(&moved, Duration::from_secs(8)) {
        panic!("the new address was not picked up within 8 s (dns_refresh 2 s): {e}");
    }
    a.ns.assert_reaches(ob);

    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
}
