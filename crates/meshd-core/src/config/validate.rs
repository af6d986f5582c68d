//! The checks across fields and nodes, on the draft once every field has been parsed on its own.
//!
//! - The mesh prefix, duplicate names, keys and addresses, overlapping routes, the MTU that IPv6
//!   needs, and the node names a policy refers to.
//! - A value that failed to parse is skipped (it has been reported already), so that one mistake
//!   does not cause a cascade of errors.

use super::draft::{Draft, Located, SelectorDraft};
use super::error::{esc, q, Errors};
use super::model::MIN_MTU_IPV6;
use crate::key::PublicKey;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// Runs every cross-check on `draft`, adding what is wrong to `errs`.
pub(super) fn validate(draft: &Draft, errs: &mut Errors) {
    let mesh = mesh_prefix(draft);
    if let Some(mesh) = &mesh {
        check_addresses(draft, mesh, errs);
    }
    check_duplicates(draft, errs);
    check_routes(draft, mesh.as_ref(), errs);
    check_mtu(draft, errs);
    check_policy_names(draft, errs);
}

/// `nodes[0].address, line 12`: where a value was set, for messages about another one.
fn at<T>(l: &Located<T>) -> String {
    format!("{}, line {}", l.key, l.pos.line)
}

/// The mesh network: the network of the first node's address.
struct Mesh<'a> {
    prefix: IpNet,
    set_by: &'a Located<IpNet>,
}

impl Mesh<'_> {
    fn describe(&self) -> String {
        format!(
            "the mesh prefix {} (set by {})",
            self.prefix,
            at(self.set_by)
        )
    }
}

fn mesh_prefix(draft: &Draft) -> Option<Mesh<'_>> {
    draft
        .nodes
        .iter()
        .find_map(|n| n.address.as_ref())
        .map(|a| Mesh {
            prefix: a.value.trunc(),
            set_by: a,
        })
}

/// Every address inside the mesh prefix, with its prefix length.
fn check_addresses(draft: &Draft, mesh: &Mesh<'_>, errs: &mut Errors) {
    for address in draft.nodes.iter().filter_map(|n| n.address.as_ref()) {
        let net = address.value;
        if !mesh.prefix.contains(&net.addr()) {
            errs.push(
                address.pos,
                address.key.clone(),
                format!("{} is outside {}", q(&net.to_string()), mesh.describe()),
            );
        } else if net.prefix_len() != mesh.prefix.prefix_len() {
            errs.push(
                address.pos,
                address.key.clone(),
                format!(
                    "{} has prefix length /{} but {} is a /{}; write {}/{}",
                    q(&net.to_string()),
                    net.prefix_len(),
                    mesh.describe(),
                    mesh.prefix.prefix_len(),
                    net.addr(),
                    mesh.prefix.prefix_len()
                ),
            );
        }
    }
}

/// Names, public keys and addresses are unique; the second occurrence is the error.
fn check_duplicates(draft: &Draft, errs: &mut Errors) {
    let mut names: HashMap<&str, &Located<String>> = HashMap::new();
    let mut keys: HashMap<PublicKey, (&Located<PublicKey>, Option<&str>)> = HashMap::new();
    let mut addresses: HashMap<IpAddr, &Located<IpNet>> = HashMap::new();
    for node in &draft.nodes {
        if let Some(name) = &node.name {
            match names.get(name.value.as_str()) {
                Some(first) => errs.push(
                    name.pos,
                    name.key.clone(),
                    format!(
                        "node name {} is already used by {}; node names must be unique",
                        q(&name.value),
                        at(first)
                    ),
                ),
                None => {
                    names.insert(name.value.as_str(), name);
                }
            }
        }
        if let Some(key) = &node.public_key {
            match keys.get(&key.value) {
                Some((first, first_name)) => {
                    let whose = first_name
                        .map(|n| format!(", node `{n}`"))
                        .unwrap_or_default();
                    errs.push(
                        key.pos,
                        key.key.clone(),
                        format!(
                            "this public key is already used by {}{whose}; every node needs its own key pair",
                            at(first)
                        ),
                    );
                }
                None => {
                    let name = node.name.as_ref().map(|n| n.value.as_str());
                    keys.insert(key.value, (key, name));
                }
            }
        }
        if let Some(address) = &node.address {
            match addresses.get(&address.value.addr()) {
                Some(first) => errs.push(
                    address.pos,
                    address.key.clone(),
                    format!(
                        "address {} is already used by {}; every node needs its own address",
                        q(&address.value.to_string()),
                        at(first)
                    ),
                ),
                None => {
                    addresses.insert(address.value.addr(), address);
                }
            }
        }
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// Sorts prefixes so that each comes after every prefix containing it: by family, network
/// address, then prefix length.
fn sort_key(net: &IpNet) -> (u8, u128, u8) {
    match net {
        IpNet::V4(n) => (4, u128::from(u32::from(n.network())), n.prefix_len()),
        IpNet::V6(n) => (6, u128::from(n.network()), n.prefix_len()),
    }
}

/// For each prefix, the first one before it in `nets` that overlaps it (contains it, or lies
/// inside it), in O(n log n).
///
/// - Prefixes either nest or are disjoint. In sorted order, the prefixes containing a prefix are
///   the stack of open ones when it is reached, and the prefixes inside it follow it until it is
///   popped.
/// - Each stack entry carries the first position (in `nets`) among it and the prefixes that
///   contain it, and the first among the prefixes inside it seen so far.
pub(super) fn first_earlier_overlap(nets: &[IpNet]) -> Vec<Option<usize>> {
    struct Open {
        at: usize,
        first_outer: usize,
        first_inner: usize,
    }
    let mut order: Vec<usize> = (0..nets.len()).collect();
    order.sort_by_key(|&i| (nets.get(i).map(sort_key), i));
    let mut first = vec![usize::MAX; nets.len()];
    let mut stack: Vec<Open> = Vec::new();
    let close = |stack: &mut Vec<Open>, first: &mut Vec<usize>| {
        if let Some(done) = stack.pop() {
            if let Some(f) = first.get_mut(done.at) {
                *f = (*f).min(done.first_inner);
            }
            if let Some(parent) = stack.last_mut() {
                parent.first_inner = parent.first_inner.min(done.first_inner).min(done.at);
            }
        }
    };
    for &i in &order {
        let Some(net) = nets.get(i) else { continue };
        while stack
            .last()
            .is_some_and(|top| nets.get(top.at).is_some_and(|outer| !outer.contains(net)))
        {
            close(&mut stack, &mut first);
        }
        let first_outer = stack.last().map_or(usize::MAX, |top| top.first_outer);
        if let Some(f) = first.get_mut(i) {
            *f = first_outer;
        }
        stack.push(Open {
            at: i,
            first_outer: first_outer.min(i),
            first_inner: usize::MAX,
        });
    }
    while !stack.is_empty() {
        close(&mut stack, &mut first);
    }
    first
        .into_iter()
        .enumerate()
        .map(|(j, f)| (f < j).then_some(f))
        .collect()
}

/// Routes overlap neither the mesh prefix nor each other (within a node or across nodes), so
/// that every destination has exactly one peer.
fn check_routes(draft: &Draft, mesh: Option<&Mesh<'_>>, errs: &mut Errors) {
    let routes: Vec<&Located<IpNet>> = draft.nodes.iter().flat_map(|n| &n.routes).collect();
    let nets: Vec<IpNet> = routes.iter().map(|r| r.value).collect();
    let earlier = first_earlier_overlap(&nets);
    for (route, earlier) in routes.iter().zip(earlier) {
        if let Some(mesh) = mesh {
            if overlaps(&route.value, &mesh.prefix) {
                errs.push(
                    route.pos,
                    route.key.clone(),
                    format!(
                        "route {} overlaps {}; the mesh addresses are routed to the nodes already",
                        q(&route.value.to_string()),
                        mesh.describe()
                    ),
                );
                continue;
            }
        }
        if let Some(other) = earlier.and_then(|i| routes.get(i)) {
            let message = if other.value == route.value {
                format!(
                    "route {} is already given by {}; a subnet can be routed to one node only",
                    q(&route.value.to_string()),
                    at(other)
                )
            } else {
                format!(
                    "route {} overlaps {} ({}); routes must not overlap",
                    q(&route.value.to_string()),
                    other.value,
                    at(other)
                )
            };
            errs.push(route.pos, route.key.clone(), message);
        }
    }
}

/// IPv6 needs an MTU of at least 1280 when it travels through the mesh.
fn check_mtu(draft: &Draft, errs: &mut Errors) {
    let Some(mtu) = &draft.mtu else {
        return;
    };
    if mtu.value >= MIN_MTU_IPV6 {
        return;
    }
    let ipv6 = draft.nodes.iter().find_map(|n| {
        n.address
            .iter()
            .chain(&n.routes)
            .find(|a| matches!(a.value, IpNet::V6(_)))
    });
    if let Some(v6) = ipv6 {
        errs.push(
            mtu.pos,
            mtu.key.clone(),
            format!(
                "mtu {} is too small for IPv6 ({} is {}); IPv6 needs an MTU of at least {MIN_MTU_IPV6}",
                mtu.value,
                at(v6),
                v6.value
            ),
        );
    }
}

/// Every name in a policy rule is a node of the mesh.
fn check_policy_names(draft: &Draft, errs: &mut Errors) {
    if !draft.nodes_ok {
        // `nodes` itself is missing or broken: every name would look unknown.
        return;
    }
    let known: HashSet<&str> = draft
        .nodes
        .iter()
        .filter_map(|n| n.name.as_ref().map(|l| l.value.as_str()))
        .collect();
    // Names written but invalid have been reported at the node; do not report them again.
    // Their lowercase forms too: `name: DB1` is reported with "write db1", so a policy that
    // already says `db1` is not wrong.
    let invalid: HashSet<String> = draft
        .nodes
        .iter()
        .filter_map(|n| n.invalid_name.as_deref())
        .flat_map(|n| [n.to_string(), n.to_ascii_lowercase()])
        .collect();
    let hint = {
        let mut names: Vec<&str> = draft
            .nodes
            .iter()
            .filter_map(|n| n.name.as_ref().map(|l| l.value.as_str()))
            .collect();
        names.dedup();
        if names.is_empty() || names.len() > 8 {
            String::new()
        } else {
            format!("; the nodes are: {}", names.join(", "))
        }
    };
    for rule in &draft.policy {
        for selector in [&rule.from, &rule.to].into_iter().flatten() {
            let SelectorDraft::Nodes(names) = selector else {
                continue;
            };
            for name in names {
                let n = name.value.as_str();
                if !known.contains(n) && !invalid.contains(n) {
                    errs.push(
                        name.pos,
                        name.key.clone(),
                        format!("policy names unknown node `{}`{hint}", esc(n)),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{first_earlier_overlap, overlaps};
    use ipnet::{IpNet, Ipv4Net, Ipv6Net};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The definition: the first earlier prefix that overlaps, by comparing every pair.
    fn pairwise(nets: &[IpNet]) -> Vec<Option<usize>> {
        (0..nets.len())
            .map(|j| (0..j).find(|&i| overlaps(&nets[i], &nets[j])))
            .collect()
    }

    /// Prefixes drawn from a small space so that many nest, repeat or collide.
    fn random_prefixes(seed: u64, n: usize) -> Vec<IpNet> {
        let mut x = seed | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .filter_map(|_| {
                let r = next();
                let len = (r % 9) as u8 + 20;
                if r & (1 << 40) == 0 {
                    let addr = Ipv4Addr::from(0x0a00_0000 | ((r >> 8) as u32 & 0x0000_ff00));
                    Ipv4Net::new(addr, len).ok().map(|n| IpNet::V4(n.trunc()))
                } else {
                    let addr = Ipv6Addr::new(0x2001, 0xdb8, 0, (r >> 16) as u16 & 0xff, 0, 0, 0, 0);
                    Ipv6Net::new(addr, len + 36)
                        .ok()
                        .map(|n| IpNet::V6(n.trunc()))
                }
            })
            .collect()
    }

    #[test]
    fn the_sorted_sweep_finds_what_comparing_every_pair_finds() {
        for seed in 1..200u64 {
            let nets = random_prefixes(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 60);
            assert_eq!(
                first_earlier_overlap(&nets),
                pairwise(&nets),
                "seed {seed}: {nets:?}"
            );
        }
    }

    #[test]
    fn nesting_duplicates_and_families() {
        let nets: Vec<IpNet> = [
            "10.0.0.0/24",
            "10.0.0.0/16",
            "2001:db8::/32",
            "10.0.1.0/24",
            "10.0.0.0/24",
            "10.0.0.128/25",
            "192.0.2.0/24",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        assert_eq!(
            first_earlier_overlap(&nets),
            [None, Some(0), None, Some(1), Some(0), Some(0), None]
        );
        assert!(first_earlier_overlap(&[]).is_empty());
    }
}
