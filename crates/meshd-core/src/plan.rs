//! The per-node plan: what one node of the mesh must configure, derived from the shared config.
//!
//! Peering follows policy: a node peers only with the nodes that share at least one policy rule
//! with it, in either direction. Everything the daemon sets up comes from this plan.

use crate::config::{
    AdminConfig, Allow, Endpoint, InterfaceConfig, MeshConfig, NodeConfig, Selector,
};
use crate::key::PublicKey;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// How the running node is identified in the shared config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// By its public key (derived from `--private-key`), optionally asserting the name.
    Key {
        public_key: PublicKey,
        name: Option<String>,
    },
    /// By name only (`meshd check --node`), when no key is at hand.
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("no node in the config has the public key {0} of this private key; add this node to `nodes` or use the right key")]
    UnknownKey(PublicKey),
    #[error("no node named `{0}` in the config")]
    UnknownName(String),
    #[error("--node {asserted} does not match the private key, which belongs to node `{actual}`")]
    NameMismatch { asserted: String, actual: String },
}

/// A peer of this node.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerPlan {
    pub name: String,
    pub public_key: PublicKey,
    /// The peer's overlay address.
    pub address: IpAddr,
    /// Its address as a host prefix, then its routes.
    pub allowed_ips: Vec<IpNet>,
    pub endpoint: Option<Endpoint>,
    pub keepalive: Option<u16>,
}

/// Which way a policy rule points, seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Peers may open connections to this node.
    Inbound,
    /// This node may open connections to the peers.
    Outbound,
}

/// A policy rule as it concerns this node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRule {
    pub direction: Direction,
    /// The peer names on the other end (never this node).
    pub peers: Vec<String>,
    pub allow: Vec<Allow>,
}

/// Everything one node must do.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    pub interface: InterfaceConfig,
    pub admin: AdminConfig,
    pub me: NodeConfig,
    /// The mesh network, e.g. 10.100.0.0/24: routed into the device by its address.
    pub mesh_prefix: IpNet,
    /// Sorted by name.
    pub peers: Vec<PeerPlan>,
    pub rules: Vec<NodeRule>,
}

fn host_prefix(addr: IpAddr) -> IpNet {
    IpNet::from(addr)
}

/// The places in `config.nodes` of the nodes `selector` names, in file order, each once; names
/// not in the config are skipped (validation has reported them).
fn selected(config: &MeshConfig, index: &HashMap<&str, usize>, selector: &Selector) -> Vec<usize> {
    match selector {
        Selector::All => (0..config.nodes.len()).collect(),
        Selector::Nodes(names) => {
            let mut found: Vec<usize> = names
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect();
            found.sort_unstable();
            found.dedup();
            found
        }
    }
}

impl NodePlan {
    /// The plan for the node `who` in `config`.
    pub fn new(config: &MeshConfig, who: &Identity) -> Result<Self, PlanError> {
        let me = match who {
            Identity::Key { public_key, name } => {
                let me = config
                    .nodes
                    .iter()
                    .find(|n| n.public_key == *public_key)
                    .ok_or(PlanError::UnknownKey(*public_key))?;
                if let Some(asserted) = name.as_ref().filter(|n| **n != me.name) {
                    return Err(PlanError::NameMismatch {
                        asserted: asserted.clone(),
                        actual: me.name.clone(),
                    });
                }
                me
            }
            Identity::Name(name) => config
                .node(name)
                .ok_or_else(|| PlanError::UnknownName(name.clone()))?,
        };

        // Each node's place in the file, to find a rule's nodes without a scan per name.
        let index: HashMap<&str, usize> = config
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let mut rules = Vec::new();
        let mut is_peer = vec![false; config.nodes.len()];
        for rule in &config.policy {
            for (direction, here, there) in [
                (Direction::Outbound, &rule.from, &rule.to),
                (Direction::Inbound, &rule.to, &rule.from),
            ] {
                if !here.matches(&me.name) {
                    continue;
                }
                let peers: Vec<usize> = selected(config, &index, there)
                    .into_iter()
                    .filter(|&i| config.nodes.get(i).is_some_and(|n| n.name != me.name))
                    .collect();
                if peers.is_empty() {
                    continue;
                }
                for &i in &peers {
                    if let Some(flag) = is_peer.get_mut(i) {
                        *flag = true;
                    }
                }
                rules.push(NodeRule {
                    direction,
                    peers: peers
                        .iter()
                        .filter_map(|&i| config.nodes.get(i))
                        .map(|n| n.name.clone())
                        .collect(),
                    allow: rule.allow.clone(),
                });
            }
        }

        let mut peers: Vec<PeerPlan> = config
            .nodes
            .iter()
            .zip(&is_peer)
            .filter(|(_, peer)| **peer)
            .map(|(n, _)| PeerPlan {
                name: n.name.clone(),
                public_key: n.public_key,
                address: n.address.addr(),
                allowed_ips: std::iter::once(host_prefix(n.address.addr()))
                    .chain(n.routes.iter().copied())
                    .collect(),
                endpoint: n.endpoint.clone(),
                keepalive: n.keepalive,
            })
            .collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name));

        Ok(Self {
            interface: config.interface.clone(),
            admin: config.admin.clone(),
            me: me.clone(),
            mesh_prefix: me.address.trunc(),
            peers,
            rules,
        })
    }

    /// Prefixes the device must route besides the mesh prefix: every peer's `routes`.
    pub fn extra_routes(&self) -> Vec<IpNet> {
        self.peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().skip(1).copied())
            .collect()
    }

    /// The peer named `name` (a binary search: `peers` is sorted by name).
    pub fn peer(&self, name: &str) -> Option<&PeerPlan> {
        self.peers
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.peers.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PolicyRule, Pos};

    fn node(name: &str, n: u8, routes: &[&str]) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            public_key: PublicKey([n; 32]),
            address: format!("10.100.0.{n}/24").parse().unwrap(),
            endpoint: None,
            routes: routes.iter().filter_map(|r| r.parse().ok()).collect(),
            keepalive: None,
            open: vec![],
            pos: Pos::default(),
        }
    }

    fn names(list: &[&str]) -> Selector {
        Selector::Nodes(list.iter().map(|s| s.to_string()).collect())
    }

    fn mesh(policy: Vec<(Selector, Selector)>) -> MeshConfig {
        MeshConfig {
            interface: InterfaceConfig::default(),
            admin: AdminConfig::default(),
            nodes: vec![
                node("db1", 2, &["192.168.50.0/24"]),
                node("app1", 3, &[]),
                node("app2", 4, &[]),
                node("bastion", 5, &[]),
            ],
            policy: policy
                .into_iter()
                .map(|(from, to)| PolicyRule {
                    from,
                    to,
                    allow: vec![Allow::Any],
                    pos: Pos::default(),
                })
                .collect(),
        }
    }

    fn peers_of(cfg: &MeshConfig, name: &str) -> Vec<String> {
        NodePlan::new(cfg, &Identity::Name(name.into()))
            .map(|p| p.peers.into_iter().map(|p| p.name).collect())
            .unwrap_or_default()
    }

    #[test]
    fn peering_follows_policy_in_both_directions() {
        let cfg = mesh(vec![(names(&["app1", "app2"]), names(&["db1"]))]);
        assert_eq!(peers_of(&cfg, "db1"), ["app1", "app2"]);
        assert_eq!(peers_of(&cfg, "app1"), ["db1"]);
        // app1 and app2 share no rule with each other, nor does bastion with anyone.
        assert!(peers_of(&cfg, "bastion").is_empty());
    }

    #[test]
    fn star_reaches_everyone_but_self() {
        let cfg = mesh(vec![(names(&["bastion"]), Selector::All)]);
        assert_eq!(peers_of(&cfg, "bastion"), ["app1", "app2", "db1"]);
        assert_eq!(peers_of(&cfg, "app2"), ["bastion"]);
        let all = mesh(vec![(Selector::All, Selector::All)]);
        assert_eq!(peers_of(&all, "db1"), ["app1", "app2", "bastion"]);
    }

    #[test]
    fn allowed_ips_are_host_address_plus_routes() {
        let cfg = mesh(vec![(names(&["app1"]), names(&["db1"]))]);
        let plan = NodePlan::new(&cfg, &Identity::Name("app1".into()));
        let plan = plan.expect("app1 has a plan");
        let db1 = plan
            .peer("db1")
            .map(|p| p.allowed_ips.clone())
            .unwrap_or_default();
        let want: Vec<IpNet> = ["10.100.0.2/32", "192.168.50.0/24"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        assert_eq!(db1, want);
        assert_eq!(plan.extra_routes(), want[1..]);
        assert_eq!(plan.mesh_prefix.to_string(), "10.100.0.0/24");
        assert_eq!(plan.rules.len(), 1);
        assert_eq!(plan.rules[0].direction, Direction::Outbound);
    }

    #[test]
    fn finds_itself_by_key_and_checks_the_asserted_name() {
        let cfg = mesh(vec![]);
        let by_key = NodePlan::new(
            &cfg,
            &Identity::Key {
                public_key: PublicKey([3; 32]),
                name: None,
            },
        );
        assert_eq!(by_key.map(|p| p.me.name), Ok("app1".to_string()));
        let unknown = NodePlan::new(
            &cfg,
            &Identity::Key {
                public_key: PublicKey([9; 32]),
                name: None,
            },
        );
        assert_eq!(
            unknown.map(|p| p.me.name),
            Err(PlanError::UnknownKey(PublicKey([9; 32])))
        );
        let wrong = NodePlan::new(
            &cfg,
            &Identity::Key {
                public_key: PublicKey([3; 32]),
                name: Some("db1".into()),
            },
        );
        assert!(matches!(wrong, Err(PlanError::NameMismatch { .. })));
    }

    #[test]
    fn a_list_selector_gives_its_nodes_once_in_file_order() {
        // Repeated and unknown names (the latter reported by validation) change nothing.
        let cfg = mesh(vec![(
            names(&["bastion", "app2", "nobody", "db1", "app2"]),
            names(&["app1"]),
        )]);
        let plan = NodePlan::new(&cfg, &Identity::Name("app1".into()));
        let plan = plan.expect("app1 has a plan");
        assert_eq!(plan.rules.len(), 1);
        assert_eq!(plan.rules[0].direction, Direction::Inbound);
        assert_eq!(plan.rules[0].peers, ["db1", "app2", "bastion"]);
        assert_eq!(peers_of(&cfg, "app1"), ["app2", "bastion", "db1"]);
    }
}
