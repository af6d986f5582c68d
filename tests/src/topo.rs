//! Ready-made underlays: two namespaces on a veth pair, or several on one switch.

use crate::netns::{host_of, veth, Netns, Switch};
use std::net::IpAddr;

/// The underlay address of host number `n` (1-based): `192.0.2.n/24` or `2001:db8:1::n/64`.
pub fn underlay_cidr(n: u8, v6: bool) -> String {
    if v6 {
        format!("2001:db8:1::{n:x}/64")
    } else {
        format!("192.0.2.{n}/24")
    }
}

/// The overlay address of node number `n` (1-based): `10.100.0.n/24` or `2001:db8:100::n/64`.
pub fn overlay_cidr(n: u8, v6: bool) -> String {
    if v6 {
        format!("2001:db8:100::{n:x}/64")
    } else {
        format!("10.100.0.{n}/24")
    }
}

/// `ip:port` as an endpoint string (`[v6]:port` for IPv6).
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// One host of an underlay: its namespace, its underlay device and address.
#[derive(Debug)]
pub struct Host {
    pub ns: Netns,
    pub dev: String,
    pub addr: IpAddr,
}

/// Two namespaces joined by a veth pair (`eth0` on both sides), host 1 and host 2 addressed.
pub fn pair(v6: bool) -> (Host, Host) {
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, "eth0", &b, "eth0");
    let (ca, cb) = (underlay_cidr(1, v6), underlay_cidr(2, v6));
    a.add_addr("eth0", &ca);
    b.add_addr("eth0", &cb);
    (
        Host {
            ns: a,
            dev: "eth0".into(),
            addr: host_of(&ca),
        },
        Host {
            ns: b,
            dev: "eth0".into(),
            addr: host_of(&cb),
        },
    )
}

/// The mesh most tests start from: nodes `a` and `b` on hosts `a` and `b` (overlay hosts 1
/// and 2, endpoints on udp/51820), allowed anything both ways.
pub fn two_node_mesh(a: &Host, b: &Host) -> crate::MeshSpec {
    let v6 = a.addr.is_ipv6();
    let mut mesh = crate::MeshSpec::new();
    mesh.node("a", &overlay_cidr(1, v6), Some(&endpoint(a.addr, 51820)));
    mesh.node("b", &overlay_cidr(2, v6), Some(&endpoint(b.addr, 51820)));
    mesh.rule_both("a", "b", &["any"]);
    mesh
}

/// `n` namespaces on one switch (`eth0` each), hosts 1..=n addressed.
pub fn switched(n: u8, v6: bool) -> (Switch, Vec<Host>) {
    let sw = Switch::new();
    let mut hosts = Vec::new();
    for i in 1..=n {
        let ns = Netns::new();
        sw.attach(&ns, "eth0");
        let c = underlay_cidr(i, v6);
        ns.add_addr("eth0", &c);
        hosts.push(Host {
            ns,
            dev: "eth0".into(),
            addr: host_of(&c),
        });
    }
    (sw, hosts)
}

impl Host {
    /// Moves the host to a new IPv4 underlay address while everything keeps running: enables
    /// `promote_secondaries` on its device, adds `new` (as a secondary of the same prefix), then
    /// deletes the primary `old`, so the prefix route survives and `new` becomes primary.
    pub fn change_ipv4_address(&mut self, new: &str, old: &str) {
        self.ns.sysctl(
            &format!("net.ipv4.conf.{}.promote_secondaries", self.dev),
            "1",
        );
        self.ns.add_addr(&self.dev, new);
        self.ns.del_addr(&self.dev, old);
        self.addr = host_of(new);
    }
}
