//! The draft the walk fills, each value with where it was written; and how it becomes the model.

use super::model::{
    AdminConfig, Allow, Endpoint, InterfaceConfig, MeshConfig, NodeConfig, PolicyRule, PortSpec,
    Pos, Selector,
};
use crate::key::PublicKey;
use ipnet::IpNet;

/// A value with the place it was written and its key path.
#[derive(Debug, Clone)]
pub(super) struct Located<T> {
    pub(super) value: T,
    pub(super) pos: Pos,
    pub(super) key: String,
}

#[derive(Debug)]
pub(super) struct NodeDraft {
    pub(super) pos: Pos,
    pub(super) name: Option<Located<String>>,
    /// The name as written when it is text but not a valid node name (already reported), so that
    /// a policy naming it is not reported a second time as naming an unknown node.
    pub(super) invalid_name: Option<String>,
    pub(super) public_key: Option<Located<PublicKey>>,
    pub(super) address: Option<Located<IpNet>>,
    pub(super) endpoint: Option<Endpoint>,
    pub(super) routes: Vec<Located<IpNet>>,
    pub(super) keepalive: Option<u16>,
    pub(super) open: Vec<PortSpec>,
}

#[derive(Debug)]
pub(super) enum SelectorDraft {
    All,
    Nodes(Vec<Located<String>>),
}

#[derive(Debug)]
pub(super) struct RuleDraft {
    pub(super) pos: Pos,
    pub(super) from: Option<SelectorDraft>,
    pub(super) to: Option<SelectorDraft>,
    pub(super) allow: Option<Vec<Allow>>,
}

#[derive(Debug)]
pub(super) struct Draft {
    pub(super) interface: InterfaceConfig,
    /// The MTU when it was written in the file (not defaulted).
    pub(super) mtu: Option<Located<u16>>,
    pub(super) admin: AdminConfig,
    pub(super) nodes: Vec<NodeDraft>,
    /// False when `nodes` is missing or not a list: node names cannot be checked then.
    pub(super) nodes_ok: bool,
    pub(super) policy: Vec<RuleDraft>,
}

/// Turns a draft without errors into the model. `None` if a required piece is missing, which
/// only happens when an error has been reported.
pub(super) fn build(draft: Draft) -> Option<MeshConfig> {
    let mut nodes = Vec::with_capacity(draft.nodes.len());
    for n in draft.nodes {
        nodes.push(NodeConfig {
            name: n.name?.value,
            public_key: n.public_key?.value,
            address: n.address?.value,
            endpoint: n.endpoint,
            routes: n.routes.into_iter().map(|r| r.value).collect(),
            keepalive: n.keepalive,
            open: n.open,
            pos: n.pos,
        });
    }
    let mut policy = Vec::with_capacity(draft.policy.len());
    for r in draft.policy {
        policy.push(PolicyRule {
            from: selector(r.from?),
            to: selector(r.to?),
            allow: r.allow?,
            pos: r.pos,
        });
    }
    Some(MeshConfig {
        interface: draft.interface,
        admin: draft.admin,
        nodes,
        policy,
    })
}

fn selector(s: SelectorDraft) -> Selector {
    match s {
        SelectorDraft::All => Selector::All,
        SelectorDraft::Nodes(names) => {
            Selector::Nodes(names.into_iter().map(|n| n.value).collect())
        }
    }
}
