//! `mesh.yaml` from text to the typed model.
//!
//! The YAML tree (with positions) is walked by hand so that every problem is reported with the
//! line and column of the offending key or value and its key path (`nodes[1].address`), and so
//! that one bad value never hides the next one: the walk always goes on, collecting every error.
//! Each field is checked on its own here; the checks across fields and nodes (mesh prefix,
//! duplicates, overlapping routes, policy names) live in `validate.rs`.

use super::error::{child, esc, index, ConfigErrors, Errors};
use super::load::load;
use super::model::{
    AdminConfig, Allow, Endpoint, InterfaceConfig, MeshConfig, MetricsDetail, NodeConfig,
    PolicyRule, PortSpec, Pos, Selector, ADMIN_KEYS, DEFAULT_BUSY_POLL, DEFAULT_DNS_REFRESH,
    DEFAULT_LISTEN_PORT, DEFAULT_MTU, INTERFACE_KEYS, MAX_BUSY_POLL, MIN_MTU, NODE_KEYS, RULE_KEYS,
    TOP_KEYS,
};
use super::validate;
use super::values::{
    check_node_name, parse_allow, parse_endpoint, parse_interface_name, parse_metrics,
    parse_node_address, parse_open_port, parse_prefix, parse_quiet_cpu, parse_rate,
};
use super::yaml::{describe, drop_tree, is_null, kind, mapping_pos, node_pos, pos_of, Kind};
use crate::key::PublicKey;
use ipnet::IpNet;
use marked_yaml::types::{MarkedMappingNode, MarkedSequenceNode};
use marked_yaml::Node;

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

/// Parses and validates a whole `mesh.yaml`; see [`super::parse`].
pub(super) fn parse(file: &str, text: &str) -> Result<MeshConfig, ConfigErrors> {
    let mut errs = Errors::new(file);
    let root = match load(text) {
        Ok(root) => root,
        Err((pos, key, message)) => {
            errs.push(pos, key, message);
            return Err(errs.finish());
        }
    };
    let draft = walk(&root, &mut errs);
    drop_tree(root);
    validate::validate(&draft, &mut errs);
    if !errs.is_empty() {
        return Err(errs.finish());
    }
    match build(draft) {
        Some(config) => Ok(config),
        None => {
            // Every missing piece has already been reported, so this cannot happen; but never
            // hand out a half-built config.
            errs.push(
                Pos::default(),
                "",
                "the configuration is incomplete".to_string(),
            );
            Err(errs.finish())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parsed but not yet cross-checked config

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
fn build(draft: Draft) -> Option<MeshConfig> {
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

// ---------------------------------------------------------------------------------------------
// Mappings and fields

/// One value in a mapping, with its key path and where its key was written.
#[derive(Clone, Copy)]
struct Field<'a, 'p> {
    path: &'p str,
    key_pos: Pos,
    node: &'a Node,
}

impl Field<'_, '_> {
    /// Where an error about this value goes: the value itself, or its key when it has no value
    /// (an empty value's position is wherever the next token happens to be).
    fn pos(&self) -> Pos {
        if is_null(self.node) {
            self.key_pos
        } else {
            node_pos(self.node)
        }
    }
}

/// The known keys of one mapping, unknown keys already reported.
struct Fields<'a> {
    path: String,
    pos: Pos,
    items: Vec<(&'a str, Pos, &'a Node, String)>,
}

impl<'a> Fields<'a> {
    fn new(map: &'a MarkedMappingNode, path: &str, allowed: &[&str], errs: &mut Errors) -> Self {
        let mut items = Vec::new();
        for (k, v) in map.iter() {
            let key_pos = pos_of(k.span());
            if allowed.contains(&k.as_str()) {
                items.push((k.as_str(), key_pos, v, child(path, k.as_str())));
            } else {
                errs.push(
                    key_pos,
                    child(path, &esc(k.as_str())),
                    format!(
                        "unknown key `{}`; expected one of: {}",
                        esc(k.as_str()),
                        allowed.join(", ")
                    ),
                );
            }
        }
        Self {
            path: path.to_string(),
            pos: mapping_pos(map),
            items,
        }
    }

    /// The value of `name`, if the key is present (even with an empty value).
    fn get(&self, name: &str) -> Option<Field<'a, '_>> {
        self.items
            .iter()
            .find(|(k, ..)| *k == name)
            .map(|(_, key_pos, node, path)| Field {
                path: path.as_str(),
                key_pos: *key_pos,
                node,
            })
    }

    /// The value of an optional `name`: absent or empty (`key:`, `~`, `null`) means the default.
    fn optional(&self, name: &str) -> Option<Field<'a, '_>> {
        self.get(name).filter(|f| !is_null(f.node))
    }

    /// The value of a required `name`; reports it missing at the mapping's position.
    fn required(&self, name: &str, errs: &mut Errors) -> Option<Field<'a, '_>> {
        let f = self.get(name);
        if f.is_none() {
            errs.push(
                self.pos,
                child(&self.path, name),
                format!("missing required key `{name}`"),
            );
        }
        f
    }
}

fn type_error(f: Field<'_, '_>, expected: &str, errs: &mut Errors) {
    let message = if is_null(f.node) {
        format!("no value given; expected {expected}")
    } else {
        format!("expected {expected}, found {}", describe(f.node))
    };
    errs.push(f.pos(), f.path, message);
}

fn expect_map<'a>(f: Field<'a, '_>, errs: &mut Errors) -> Option<&'a MarkedMappingNode> {
    match f.node {
        Node::Mapping(m) => Some(m),
        _ => {
            type_error(f, "a mapping", errs);
            None
        }
    }
}

fn expect_seq<'a>(f: Field<'a, '_>, errs: &mut Errors) -> Option<&'a MarkedSequenceNode> {
    match f.node {
        Node::Sequence(s) => Some(s),
        Node::Scalar(s) if kind(s) != Kind::Null => {
            errs.push(
                f.pos(),
                f.path,
                format!(
                    "expected a list, found {}; write [{}]",
                    describe(f.node),
                    esc(s.as_str())
                ),
            );
            None
        }
        _ => {
            type_error(f, "a list", errs);
            None
        }
    }
}

/// A scalar as text: strings, and numbers written as words (a node may be named `1`), but not
/// booleans or empty values, which are almost always a mistake.
fn expect_text<'a>(f: Field<'a, '_>, expected: &str, errs: &mut Errors) -> Option<&'a str> {
    match f.node {
        Node::Scalar(s) => match kind(s) {
            Kind::Str | Kind::Int(_) | Kind::Float => Some(s.as_str()),
            Kind::Bool => {
                errs.push(
                    f.pos(),
                    f.path,
                    format!(
                        "expected {expected}, found the boolean `{}`; quote it if you mean the text",
                        esc(s.as_str())
                    ),
                );
                None
            }
            Kind::Null => {
                type_error(f, expected, errs);
                None
            }
        },
        _ => {
            type_error(f, expected, errs);
            None
        }
    }
}

/// An integer in `min..=max`, written as a YAML integer (not a string or a float).
fn expect_int(
    f: Field<'_, '_>,
    what: &str,
    min: i128,
    max: i128,
    errs: &mut Errors,
) -> Option<i128> {
    let Node::Scalar(s) = f.node else {
        type_error(f, "an integer", errs);
        return None;
    };
    match kind(s) {
        Kind::Int(Some(v)) if (min..=max).contains(&v) => Some(v),
        Kind::Int(_) => {
            errs.push(
                f.pos(),
                f.path,
                format!(
                    "{what} {} is out of range; it must be between {min} and {max}",
                    esc(s.as_str())
                ),
            );
            None
        }
        _ => {
            type_error(f, "an integer", errs);
            None
        }
    }
}

/// The elements of a list field, each with its key path (made as the walk reaches it).
fn elements<'a, 'p>(
    seq: &'a MarkedSequenceNode,
    path: &'p str,
) -> impl Iterator<Item = (String, &'a Node)> + 'p
where
    'a: 'p,
{
    seq.iter()
        .enumerate()
        .map(move |(i, n)| (index(path, i), n))
}

/// A list element as a field (an element's "key position" is its own position).
fn element<'a, 'p>(path: &'p str, node: &'a Node) -> Field<'a, 'p> {
    Field {
        path,
        key_pos: node_pos(node),
        node,
    }
}

// ---------------------------------------------------------------------------------------------
// The tree walk

fn walk(root: &Node, errs: &mut Errors) -> Draft {
    let mut draft = Draft {
        interface: InterfaceConfig::default(),
        mtu: None,
        admin: AdminConfig::default(),
        nodes: Vec::new(),
        nodes_ok: false,
        policy: Vec::new(),
    };
    let Node::Mapping(map) = root else {
        // The loader only hands out a mapping at the top level; be safe anyway.
        errs.push(
            pos_of(root.span()),
            "(top level)",
            format!(
                "the config must be a mapping with the keys {}",
                TOP_KEYS.join(", ")
            ),
        );
        return draft;
    };
    let top = Fields::new(map, "", TOP_KEYS, errs);
    if let Some(f) = top.optional("interface") {
        walk_interface(f, &mut draft, errs);
    }
    if let Some(f) = top.optional("admin") {
        walk_admin(f, &mut draft.admin, errs);
    }
    if let Some(f) = top.required("nodes", errs) {
        walk_nodes(f, &mut draft, errs);
    }
    if let Some(f) = top.optional("policy") {
        walk_policy(f, &mut draft.policy, errs);
    }
    draft
}

fn walk_interface(f: Field<'_, '_>, draft: &mut Draft, errs: &mut Errors) {
    let Some(map) = expect_map(f, errs) else {
        return;
    };
    let fields = Fields::new(map, f.path, INTERFACE_KEYS, errs);
    if let Some(f) = fields.optional("name") {
        if let Some(text) = expect_text(f, "a device name", errs) {
            match parse_interface_name(text) {
                Ok(name) => draft.interface.name = name,
                Err(message) => errs.push(f.pos(), f.path, message),
            }
        }
    }
    if let Some(f) = fields.optional("listen_port") {
        if let Some(port) = expect_int(f, "listen_port", 1, 65535, errs) {
            draft.interface.listen_port = u16::try_from(port).unwrap_or(DEFAULT_LISTEN_PORT);
        }
    }
    if let Some(f) = fields.optional("mtu") {
        if let Some(mtu) = expect_int(f, "mtu", i128::from(MIN_MTU), 65535, errs) {
            let mtu = u16::try_from(mtu).unwrap_or(DEFAULT_MTU);
            draft.interface.mtu = mtu;
            draft.mtu = Some(Located {
                value: mtu,
                pos: f.pos(),
                key: f.path.to_string(),
            });
        }
    }
    if let Some(f) = fields.optional("dns_refresh") {
        if let Some(secs) = expect_int(f, "dns_refresh", 1, 86_400, errs) {
            draft.interface.dns_refresh = u32::try_from(secs).unwrap_or(DEFAULT_DNS_REFRESH);
        }
    }
    if let Some(f) = fields.optional("busy_poll") {
        if let Some(us) = expect_int(f, "busy_poll", 0, i128::from(MAX_BUSY_POLL), errs) {
            draft.interface.busy_poll = u32::try_from(us).unwrap_or(DEFAULT_BUSY_POLL);
        }
    }
    if let Some(f) = fields.optional("quiet_cpu") {
        if let Some(text) = expect_text(f, "a CPU number, `auto` or `off`", errs) {
            match parse_quiet_cpu(text) {
                Ok(cpu) => draft.interface.quiet_cpu = cpu,
                Err(message) => errs.push(f.pos(), f.path, message),
            }
        }
    }
    if let Some(f) = fields.optional("metrics_detail") {
        if let Some(text) = expect_text(f, "`node` or `peer`", errs) {
            match text {
                "node" => draft.interface.metrics_detail = MetricsDetail::Node,
                "peer" => draft.interface.metrics_detail = MetricsDetail::Peer,
                _ => errs.push(
                    f.pos(),
                    f.path,
                    format!("metrics_detail {text:?} is not `node` or `peer`"),
                ),
            }
        }
    }
    if let Some(f) = fields.optional("metrics") {
        if let Some(text) = expect_text(f, "an address like 127.0.0.1:9586, or `off`", errs) {
            match parse_metrics(text) {
                Ok(m) => draft.interface.metrics = m,
                Err(message) => errs.push(f.pos(), f.path, message),
            }
        }
    }
}

fn walk_admin(f: Field<'_, '_>, admin: &mut AdminConfig, errs: &mut Errors) {
    let Some(map) = expect_map(f, errs) else {
        return;
    };
    let fields = Fields::new(map, f.path, ADMIN_KEYS, errs);
    if let Some(f) = fields.optional("ssh_from") {
        if let Some(seq) = expect_seq(f, errs) {
            for (path, node) in elements(seq, f.path) {
                let e = element(&path, node);
                if let Some(text) = expect_text(e, "an IP prefix like 192.0.2.10/32", errs) {
                    match parse_prefix(text) {
                        Ok(net) => admin.ssh_from.push(net),
                        Err(message) => errs.push(e.pos(), e.path, message),
                    }
                }
            }
        }
    }
    if let Some(f) = fields.optional("icmp_rate") {
        if let Some(text) = expect_text(f, "a rate like 5/second", errs) {
            match parse_rate(text) {
                Ok(rate) => admin.icmp_rate = rate,
                Err(message) => errs.push(f.pos(), f.path, message),
            }
        }
    }
}

fn walk_nodes(f: Field<'_, '_>, draft: &mut Draft, errs: &mut Errors) {
    let seq = match f.node {
        Node::Sequence(seq) => seq,
        _ if is_null(f.node) => {
            errs.push(
                f.pos(),
                f.path,
                "no nodes given; the mesh needs at least one node".to_string(),
            );
            return;
        }
        _ => {
            type_error(f, "a list of nodes", errs);
            return;
        }
    };
    draft.nodes_ok = true;
    if seq.is_empty() {
        errs.push(
            f.pos(),
            f.path,
            "the list of nodes is empty; the mesh needs at least one node".to_string(),
        );
        return;
    }
    for (path, node) in elements(seq, f.path) {
        let e = element(&path, node);
        let Some(map) = expect_map(e, errs) else {
            continue;
        };
        draft.nodes.push(walk_node(map, &path, errs));
    }
}

fn walk_node(map: &MarkedMappingNode, path: &str, errs: &mut Errors) -> NodeDraft {
    let fields = Fields::new(map, path, NODE_KEYS, errs);
    let mut node = NodeDraft {
        pos: fields.pos,
        name: None,
        invalid_name: None,
        public_key: None,
        address: None,
        endpoint: None,
        routes: Vec::new(),
        keepalive: None,
        open: Vec::new(),
    };
    if let Some(f) = fields.required("name", errs) {
        if let Some(text) = expect_text(f, "a node name", errs) {
            match check_node_name(text) {
                Ok(()) => {
                    node.name = Some(Located {
                        value: text.to_string(),
                        pos: f.pos(),
                        key: f.path.to_string(),
                    })
                }
                Err(message) => {
                    node.invalid_name = Some(text.to_string());
                    errs.push(f.pos(), f.path, message);
                }
            }
        }
    }
    if let Some(f) = fields.required("public_key", errs) {
        if let Some(text) = expect_text(f, "a base64 public key (from `wg pubkey`)", errs) {
            match PublicKey::from_base64(text) {
                Ok(key) => {
                    node.public_key = Some(Located {
                        value: key,
                        pos: f.pos(),
                        key: f.path.to_string(),
                    })
                }
                // The text is not echoed: a key pasted in the wrong place may be a private one.
                Err(e) => errs.push(
                    f.pos(),
                    f.path,
                    format!("public_key is not a WireGuard public key: {e}"),
                ),
            }
        }
    }
    if let Some(f) = fields.required("address", errs) {
        if let Some(text) = expect_text(f, "an overlay address like 10.100.0.2/24", errs) {
            match parse_node_address(text) {
                Ok(net) => {
                    node.address = Some(Located {
                        value: net,
                        pos: f.pos(),
                        key: f.path.to_string(),
                    })
                }
                Err(message) => errs.push(f.pos(), f.path, message),
            }
        }
    }
    if let Some(f) = fields.optional("endpoint") {
        if let Some(text) = expect_text(f, "an endpoint like 192.0.2.2:51820", errs) {
            match parse_endpoint(text) {
                Ok(ep) => node.endpoint = Some(ep),
                Err(message) => errs.push(f.pos(), f.path, message),
            }
        }
    }
    if let Some(f) = fields.optional("routes") {
        if let Some(seq) = expect_seq(f, errs) {
            for (path, n) in elements(seq, f.path) {
                let e = element(&path, n);
                if let Some(text) = expect_text(e, "an IP prefix like 192.168.50.0/24", errs) {
                    match parse_prefix(text) {
                        Ok(net) => node.routes.push(Located {
                            value: net,
                            pos: e.pos(),
                            key: path.clone(),
                        }),
                        Err(message) => errs.push(e.pos(), e.path, message),
                    }
                }
            }
        }
    }
    if let Some(f) = fields.optional("keepalive") {
        if let Some(secs) = expect_int(f, "keepalive", 0, 65535, errs) {
            node.keepalive = u16::try_from(secs).ok().filter(|s| *s != 0);
        }
    }
    if let Some(f) = fields.optional("open") {
        if let Some(seq) = expect_seq(f, errs) {
            for (path, n) in elements(seq, f.path) {
                let e = element(&path, n);
                if let Some(text) = expect_text(e, "a port like tcp/443", errs) {
                    match parse_open_port(text) {
                        Ok(spec) => node.open.push(spec),
                        Err(message) => errs.push(e.pos(), e.path, message),
                    }
                }
            }
        }
    }
    node
}

fn walk_policy(f: Field<'_, '_>, policy: &mut Vec<RuleDraft>, errs: &mut Errors) {
    let Some(seq) = expect_seq(f, errs) else {
        return;
    };
    for (path, node) in elements(seq, f.path) {
        let e = element(&path, node);
        let Some(map) = expect_map(e, errs) else {
            continue;
        };
        let fields = Fields::new(map, &path, RULE_KEYS, errs);
        let mut rule = RuleDraft {
            pos: fields.pos,
            from: None,
            to: None,
            allow: None,
        };
        if let Some(f) = fields.required("from", errs) {
            rule.from = walk_selector(f, errs);
        }
        if let Some(f) = fields.required("to", errs) {
            rule.to = walk_selector(f, errs);
        }
        if let Some(f) = fields.required("allow", errs) {
            rule.allow = walk_allow(f, errs);
        }
        policy.push(rule);
    }
}

const SELECTOR_EXPECTED: &str = "a node name, a list of node names, or \"*\"";

fn walk_selector(f: Field<'_, '_>, errs: &mut Errors) -> Option<SelectorDraft> {
    match f.node {
        Node::Sequence(seq) => {
            if seq.is_empty() {
                errs.push(
                    f.pos(),
                    f.path,
                    "the list of nodes is empty; name at least one node, or write \"*\" for all"
                        .to_string(),
                );
                return None;
            }
            let mut names = Vec::new();
            let mut ok = true;
            for (path, n) in elements(seq, f.path) {
                let e = element(&path, n);
                match expect_text(e, "a node name", errs) {
                    Some("*") => {
                        ok = false;
                        errs.push(
                            e.pos(),
                            e.path,
                            "\"*\" stands for all nodes and cannot be part of a list; write it alone"
                                .to_string(),
                        );
                    }
                    Some(name) => names.push(Located {
                        value: name.to_string(),
                        pos: e.pos(),
                        key: path.clone(),
                    }),
                    None => ok = false,
                }
            }
            ok.then_some(SelectorDraft::Nodes(names))
        }
        _ => match expect_text(f, SELECTOR_EXPECTED, errs)? {
            "*" => Some(SelectorDraft::All),
            name => Some(SelectorDraft::Nodes(vec![Located {
                value: name.to_string(),
                pos: f.pos(),
                key: f.path.to_string(),
            }])),
        },
    }
}

fn walk_allow(f: Field<'_, '_>, errs: &mut Errors) -> Option<Vec<Allow>> {
    let expected = "a list like [tcp/443, udp/53, icmp]";
    match f.node {
        Node::Sequence(seq) => {
            if seq.is_empty() {
                errs.push(
                    f.pos(),
                    f.path,
                    "allow is empty; list what the rule lets through, e.g. [tcp/443, icmp], or write `any`"
                        .to_string(),
                );
                return None;
            }
            let mut out = Vec::new();
            let mut ok = true;
            for (path, n) in elements(seq, f.path) {
                let e = element(&path, n);
                let parsed = expect_text(e, "tcp/PORT, udp/PORT, icmp or any", errs)
                    .map(|text| parse_allow(text).map_err(|m| errs.push(e.pos(), e.path, m)));
                match parsed {
                    Some(Ok(a)) => out.push(a),
                    _ => ok = false,
                }
            }
            ok.then_some(out)
        }
        Node::Mapping(_) => {
            type_error(f, expected, errs);
            None
        }
        Node::Scalar(_) => {
            let text = expect_text(f, expected, errs)?;
            match parse_allow(text) {
                Ok(a) => Some(vec![a]),
                Err(message) => {
                    errs.push(f.pos(), f.path, message);
                    None
                }
            }
        }
    }
}
