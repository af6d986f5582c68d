//! The mesh policy seen from the receiving node: which sources may open what to it.
//!
//! Rules are enforced where they end (chain `mesh_in` of the receiving node), matched on the
//! sending peer's AllowedIPs, which WireGuard guarantees are genuine. Everything here is
//! normalised so that nft interval sets get no overlapping elements.

use ipnet::IpNet;
use meshd_core::config::{Allow, Protocol};
use meshd_core::plan::{Direction, NodePlan};
use std::collections::{BTreeMap, BTreeSet};

/// Port ranges per (source prefix, protocol), merged so that none overlap.
pub type PortTuples = BTreeMap<(IpNet, ProtocolKey), Vec<(u16, u16)>>;

/// `Protocol` with an order, for map keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolKey {
    Tcp,
    Udp,
}

impl ProtocolKey {
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKey::Tcp => "tcp",
            ProtocolKey::Udp => "udp",
        }
    }
}

impl From<Protocol> for ProtocolKey {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => ProtocolKey::Tcp,
            Protocol::Udp => ProtocolKey::Udp,
        }
    }
}

/// What may enter this node from the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshIn {
    /// Sources allowed everything.
    pub any: BTreeSet<IpNet>,
    /// Sources allowed ICMP (echo and the rest).
    pub icmp: BTreeSet<IpNet>,
    /// Sources allowed TCP/UDP ports.
    pub ports: PortTuples,
}

fn merge(ranges: &mut Vec<(u16, u16)>) {
    ranges.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for &(lo, hi) in ranges.iter() {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    *ranges = out;
}

impl MeshIn {
    /// The inbound policy of `plan`'s node.
    pub fn from_plan(plan: &NodePlan) -> Self {
        let mut m = MeshIn::default();
        for rule in plan
            .rules
            .iter()
            .filter(|r| r.direction == Direction::Inbound)
        {
            let sources = rule
                .peers
                .iter()
                .filter_map(|name| plan.peer(name))
                .flat_map(|p| p.allowed_ips.iter().copied());
            for src in sources {
                for allow in &rule.allow {
                    match allow {
                        Allow::Any => {
                            m.any.insert(src);
                        }
                        Allow::Icmp => {
                            m.icmp.insert(src);
                        }
                        Allow::Port(spec) => m
                            .ports
                            .entry((src, spec.protocol.into()))
                            .or_default()
                            .push((spec.low, spec.high)),
                    }
                }
            }
        }
        // What `any` allows needs no narrower entry.
        m.icmp.retain(|s| !m.any.contains(s));
        m.ports.retain(|(s, _), _| !m.any.contains(s));
        for ranges in m.ports.values_mut() {
            merge(ranges);
        }
        m
    }
}

/// Prefixes without overlaps (nft interval sets refuse overlapping elements).
pub fn disjoint(prefixes: &[IpNet]) -> Vec<IpNet> {
    IpNet::aggregate(&prefixes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshd_core::config;
    use meshd_core::plan::Identity;

    const KEYS: [&str; 4] = [
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
        "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=",
        "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=",
    ];

    fn plan(policy: &str, node: &str) -> NodePlan {
        let yaml = format!(
            "nodes:\n\
             - {{name: db, public_key: \"{}\", address: 10.100.0.2/24, routes: [192.168.50.0/24]}}\n\
             - {{name: app, public_key: \"{}\", address: 10.100.0.3/24}}\n\
             - {{name: app2, public_key: \"{}\", address: 10.100.0.4/24, routes: [192.168.60.0/24]}}\n\
             - {{name: bastion, public_key: \"{}\", address: 10.100.0.5/24}}\n\
             policy:\n{policy}",
            KEYS[0], KEYS[1], KEYS[2], KEYS[3]
        );
        let cfg = config::parse("t.yaml", &yaml).expect("the test mesh parses");
        NodePlan::new(&cfg, &Identity::Name(node.into())).expect("the node has a plan")
    }

    #[track_caller]
    fn net(s: &str) -> IpNet {
        s.parse().expect("a test network")
    }

    #[test]
    fn single_node_rule_allows_only_its_ports_at_the_receiver() {
        let p = plan("  - {from: app, to: db, allow: [tcp/3306]}\n", "db");
        let m = MeshIn::from_plan(&p);
        assert!(m.any.is_empty() && m.icmp.is_empty());
        let want: PortTuples =
            [((net("10.100.0.3/32"), ProtocolKey::Tcp), vec![(3306, 3306)])].into();
        assert_eq!(m.ports, want);
        // The sender gets nothing in: the rule ends at db.
        assert_eq!(
            MeshIn::from_plan(&plan("  - {from: app, to: db, allow: [tcp/3306]}\n", "app")),
            MeshIn::default()
        );
    }

    #[test]
    fn lists_star_ranges_icmp_and_any() {
        let policy = concat!(
            "  - {from: [app, app2], to: db, allow: [tcp/8000-8100, udp/53, icmp]}\n",
            "  - {from: bastion, to: \"*\", allow: [tcp/22]}\n",
            "  - {from: app, to: db, allow: [tcp/8050-8200, any]}\n",
        );
        let m = MeshIn::from_plan(&plan(policy, "db"));
        // app is allowed everything, so its narrower entries are gone.
        assert_eq!(m.any, [net("10.100.0.3/32")].into());
        assert_eq!(
            m.icmp,
            [net("10.100.0.4/32"), net("192.168.60.0/24")].into()
        );
        assert_eq!(
            m.ports.get(&(net("10.100.0.4/32"), ProtocolKey::Tcp)),
            Some(&vec![(8000, 8100)])
        );
        assert_eq!(
            m.ports.get(&(net("192.168.60.0/24"), ProtocolKey::Udp)),
            Some(&vec![(53, 53)])
        );
        assert_eq!(
            m.ports.get(&(net("10.100.0.5/32"), ProtocolKey::Tcp)),
            Some(&vec![(22, 22)])
        );
        assert!(m.ports.keys().all(|(s, _)| *s != net("10.100.0.3/32")));
    }

    #[test]
    fn overlapping_port_ranges_merge() {
        let policy = "  - {from: app, to: db, allow: [tcp/8000-8100, tcp/8050-8200, tcp/8201, tcp/22, tcp/22]}\n";
        let m = MeshIn::from_plan(&plan(policy, "db"));
        assert_eq!(
            m.ports.get(&(net("10.100.0.3/32"), ProtocolKey::Tcp)),
            Some(&vec![(22, 22), (8000, 8201)])
        );
    }

    #[test]
    fn ipv6_sources_and_disjoint_prefixes() {
        assert_eq!(
            disjoint(&[
                net("192.0.2.0/24"),
                net("192.0.2.10/32"),
                net("2001:db8::/64"),
                net("2001:db8::1/128")
            ]),
            vec![net("192.0.2.0/24"), net("2001:db8::/64")]
        );
    }
}
