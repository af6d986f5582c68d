//! The walk over the YAML tree of `mesh.yaml`, key by key, into a [`Draft`].
//!
//! - Every problem is reported with the line and column of the key or value at fault and its key
//!   path (`nodes[1].address`), and one bad value never hides the next: the walk always goes on.
//! - Each field is checked on its own here; the checks across fields and nodes are in
//!   `validate.rs`.

use super::draft::{Draft, Located, NodeDraft, RuleDraft, SelectorDraft};
use super::error::Errors;
use super::fields::{
    element, elements, expect_int, expect_map, expect_seq, expect_text, type_error, Field, Fields,
};
use super::model::{
    AdminConfig, Allow, InterfaceConfig, MetricsDetail, ADMIN_KEYS, DEFAULT_BUSY_POLL,
    DEFAULT_DNS_REFRESH, DEFAULT_LISTEN_PORT, DEFAULT_MTU, INTERFACE_KEYS, MAX_BUSY_POLL, MIN_MTU,
    NODE_KEYS, RULE_KEYS, TOP_KEYS,
};
use super::values::{
    check_node_name, parse_allow, parse_endpoint, parse_interface_name, parse_metrics,
    parse_node_address, parse_open_port, parse_prefix, parse_quiet_cpu, parse_rate,
};
use super::yaml::{is_null, pos_of};
use crate::key::PublicKey;
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::Node;

pub(super) fn walk(root: &Node, errs: &mut Errors) -> Draft {
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
