//! Reload as a pure function: what differs between the running plan and a new one.
//!
//! Peers are told apart by their public key. A peer whose key and plan are both the same is
//! unchanged: it keeps its session. One whose key is the same but whose plan differs (its
//! AllowedIPs, endpoint, keepalive, name or address) is changed: it gets a new session. What
//! the running daemon cannot change in place (the device, the UDP port, the metrics
//! listener, this node's own address) refuses the reload instead.

use crate::plan::{NodePlan, PeerPlan};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};

/// A change that needs a restart; the reload is refused and nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} changed: that needs a restart of meshd (the running config is unchanged)")]
pub struct NeedsRestart(pub &'static str);

/// What a reload touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanDiff {
    /// Peers only in the new plan (their new names).
    pub added: Vec<String>,
    /// Peers only in the old plan (their old names).
    pub removed: Vec<String>,
    /// Peers in both whose plan differs (their new names).
    pub changed: Vec<String>,
    /// Peers in both with the same plan: they keep their sessions.
    pub unchanged: Vec<String>,
    /// Device routes (peers' `routes`) to add, and to delete.
    pub routes_added: Vec<IpNet>,
    pub routes_removed: Vec<IpNet>,
}

impl PlanDiff {
    /// Whether any peer or route differs (the firewall is compared on its own).
    pub fn touches_peers(&self) -> bool {
        !(self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.routes_added.is_empty()
            && self.routes_removed.is_empty())
    }
}

/// The difference from `old` (running) to `new`, or why `new` cannot be applied in place.
pub fn diff(old: &NodePlan, new: &NodePlan) -> Result<PlanDiff, NeedsRestart> {
    let (a, b) = (&old.interface, &new.interface);
    let fixed = [
        ("interface.name", a.name != b.name),
        ("interface.listen_port", a.listen_port != b.listen_port),
        ("interface.mtu", a.mtu != b.mtu),
        ("interface.metrics", a.metrics != b.metrics),
        ("interface.dns_refresh", a.dns_refresh != b.dns_refresh),
        ("interface.busy_poll", a.busy_poll != b.busy_poll),
        ("interface.quiet_cpu", a.quiet_cpu != b.quiet_cpu),
        ("this node's address", old.me.address != new.me.address),
        (
            "this node's public key",
            old.me.public_key != new.me.public_key,
        ),
    ];
    if let Some((what, _)) = fixed.into_iter().find(|(_, differs)| *differs) {
        return Err(NeedsRestart(what));
    }
    // By key: linear in the number of peers and routes, not quadratic.
    let (old_peers, new_peers) = (by_key(old), by_key(new));
    let mut d = PlanDiff::default();
    for p in &new.peers {
        match old_peers.get(&p.public_key.0) {
            None => d.added.push(p.name.clone()),
            Some(q) if *q == p => d.unchanged.push(p.name.clone()),
            Some(_) => d.changed.push(p.name.clone()),
        }
    }
    for p in &old.peers {
        if !new_peers.contains_key(&p.public_key.0) {
            d.removed.push(p.name.clone());
        }
    }
    let (before, after) = (old.extra_routes(), new.extra_routes());
    let (before_set, after_set): (HashSet<_>, HashSet<_>) =
        (before.iter().collect(), after.iter().collect());
    d.routes_added = after
        .iter()
        .filter(|r| !before_set.contains(r))
        .copied()
        .collect();
    d.routes_removed = before
        .iter()
        .filter(|r| !after_set.contains(r))
        .copied()
        .collect();
    Ok(d)
}

fn by_key(plan: &NodePlan) -> HashMap<[u8; 32], &PeerPlan> {
    plan.peers.iter().map(|p| (p.public_key.0, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Allow, Endpoint, Metrics, NodeConfig, Pos};
    use crate::key::PrivateKey;
    use crate::plan::{Direction, NodeRule};

    #[track_caller]
    fn net(s: &str) -> IpNet {
        s.parse().expect("a test network")
    }

    fn peer(name: &str, key: &PrivateKey, n: u8, routes: &[&str]) -> PeerPlan {
        let mut allowed_ips = vec![net(&format!("10.100.0.{n}/32"))];
        allowed_ips.extend(routes.iter().map(|r| net(r)));
        PeerPlan {
            name: name.into(),
            public_key: key.public_key(),
            address: format!("10.100.0.{n}").parse().unwrap(),
            allowed_ips,
            endpoint: Some(Endpoint::Addr(
                format!("192.0.2.{n}:51820").parse().unwrap(),
            )),
            keepalive: None,
        }
    }

    fn plan(me: &PrivateKey, peers: Vec<PeerPlan>) -> NodePlan {
        NodePlan {
            interface: Default::default(),
            admin: crate::config::AdminConfig::default(),
            me: NodeConfig {
                name: "me".into(),
                public_key: me.public_key(),
                address: net("10.100.0.1/24"),
                endpoint: None,
                routes: vec![],
                keepalive: None,
                open: vec![],
                pos: Pos::default(),
            },
            mesh_prefix: net("10.100.0.0/24"),
            rules: vec![NodeRule {
                direction: Direction::Outbound,
                peers: peers.iter().map(|p| p.name.clone()).collect(),
                allow: vec![Allow::Any],
            }],
            peers,
        }
    }

    #[test]
    fn sorts_peers_into_added_removed_changed_and_unchanged() {
        let keys: Vec<PrivateKey> = (0..5).map(|_| PrivateKey::generate()).collect();
        let old = plan(
            &keys[0],
            vec![
                peer("b", &keys[1], 2, &[]),
                peer("c", &keys[2], 3, &["192.168.3.0/24"]),
                peer("r", &keys[3], 4, &["192.168.4.0/24"]),
            ],
        );
        let mut c = peer("c", &keys[2], 3, &["192.168.30.0/24"]);
        c.keepalive = Some(25);
        let new = plan(
            &keys[0],
            vec![
                peer("b", &keys[1], 2, &[]),
                c,
                peer("n", &keys[4], 5, &["192.168.5.0/24"]),
            ],
        );
        let d = diff(&old, &new).unwrap();
        assert_eq!(d.unchanged, ["b"]);
        assert_eq!(d.changed, ["c"]);
        assert_eq!(d.added, ["n"]);
        assert_eq!(d.removed, ["r"]);
        assert_eq!(
            d.routes_added,
            [net("192.168.30.0/24"), net("192.168.5.0/24")]
        );
        assert_eq!(
            d.routes_removed,
            [net("192.168.3.0/24"), net("192.168.4.0/24")]
        );
        assert!(d.touches_peers());
    }

    #[test]
    fn a_rename_under_the_same_key_is_a_change_and_a_policy_change_alone_touches_no_peer() {
        let keys: Vec<PrivateKey> = (0..2).map(|_| PrivateKey::generate()).collect();
        let old = plan(&keys[0], vec![peer("b", &keys[1], 2, &[])]);
        let renamed = plan(&keys[0], vec![peer("bee", &keys[1], 2, &[])]);
        let d = diff(&old, &renamed).unwrap();
        assert_eq!(
            (d.changed.as_slice(), d.added.len()),
            (&["bee".to_string()][..], 0)
        );

        let mut ports = old.clone();
        ports.rules[0].allow = vec![];
        let d = diff(&old, &ports).unwrap();
        assert!(!d.touches_peers());
        assert_eq!(d.unchanged, ["b"]);
    }

    type Change = Box<dyn Fn(&mut NodePlan)>;

    #[test]
    fn what_the_running_daemon_cannot_change_refuses_the_reload() {
        let keys: Vec<PrivateKey> = (0..2).map(|_| PrivateKey::generate()).collect();
        let old = plan(&keys[0], vec![peer("b", &keys[1], 2, &[])]);
        let cases: Vec<(&str, Change)> = vec![
            (
                "interface.name",
                Box::new(|p| p.interface.name = "wg9".into()),
            ),
            (
                "interface.listen_port",
                Box::new(|p| p.interface.listen_port = 1),
            ),
            ("interface.mtu", Box::new(|p| p.interface.mtu = 1280)),
            (
                "interface.metrics",
                Box::new(|p| p.interface.metrics = Metrics::Off),
            ),
            (
                "interface.dns_refresh",
                Box::new(|p| p.interface.dns_refresh = 5),
            ),
            (
                "interface.busy_poll",
                Box::new(|p| p.interface.busy_poll = 0),
            ),
            (
                "interface.quiet_cpu",
                Box::new(|p| p.interface.quiet_cpu = crate::config::QuietCpu::Off),
            ),
            (
                "this node's address",
                Box::new(|p| p.me.address = net("10.100.0.9/24")),
            ),
        ];
        for (what, change) in cases {
            let mut new = old.clone();
            change(&mut new);
            assert_eq!(diff(&old, &new), Err(NeedsRestart(what)));
        }
    }
}
