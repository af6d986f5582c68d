//! AllowedIPs as a path-compressed binary prefix trie: longest-prefix match for IPv4 and
//! IPv6.
//!
//! Each family's nodes lie in one vector and refer to each other by index, and a node stands
//! only where a prefix is stored or two branch apart: a lookup visits a handful of nodes
//! (two in a small mesh, not one per bit of the prefix) packed into a few cache lines. That
//! matters more than the instructions do: the first packet after a pause finds the caches
//! cold, and each node a lookup reaches through a pointer is one more miss
//! (docs/performance.md). Lookups never allocate. The trie is built once per plan and read-only
//! afterwards, so the data path can share it without locks.

use ipnet::IpNet;
use std::net::IpAddr;

/// No child (index 0 is the root, never anyone's child).
const NONE: usize = 0;

#[derive(Debug, Clone)]
struct Node<T> {
    /// The node's prefix, left-aligned (an IPv4 address in the top 32 bits), host bits zero.
    key: u128,
    len: u8,
    value: Option<T>,
    /// The nodes below, by the bit after this node's prefix.
    children: [usize; 2],
}

impl<T> Node<T> {
    fn new(key: u128, len: u8, value: Option<T>) -> Self {
        Self {
            key: key & mask(len),
            len,
            value,
            children: [NONE; 2],
        }
    }

    /// Whether `word` lies in this node's prefix.
    fn contains(&self, word: u128) -> bool {
        (word ^ self.key) & mask(self.len) == 0
    }
}

/// One family's trie: `nodes[0]` is the root, the zero-length prefix.
#[derive(Debug, Clone)]
struct Family<T> {
    nodes: Vec<Node<T>>,
}

impl<T> Default for Family<T> {
    fn default() -> Self {
        Self {
            nodes: vec![Node::new(0, 0, None)],
        }
    }
}

impl<T> Family<T> {
    fn push(&mut self, node: Node<T>) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Stores `value` at the prefix `key`/`len` (bits past `len` are ignored: every
    /// comparison below stops at `len`, and `Node::new` clears them); returns the value it
    /// replaces.
    fn insert(&mut self, key: u128, len: u8, value: T) -> Option<T> {
        let mut at = 0usize;
        loop {
            // Here the node's prefix contains the new one.
            let here = &self.nodes[at];
            if here.len == len {
                return self.nodes[at].value.replace(value);
            }
            let bit = bit_at(key, here.len);
            let next = here.children[bit];
            if next == NONE {
                let leaf = self.push(Node::new(key, len, Some(value)));
                self.nodes[at].children[bit] = leaf;
                return None;
            }
            let child = &self.nodes[next];
            let common = common_len(key, child.key).min(len).min(child.len);
            if common == child.len {
                at = next;
                continue;
            }
            // The new prefix and the child's part ways (or the new one contains the child's):
            // a node at their common prefix takes the child's place, with both below it.
            let child_bit = bit_at(child.key, common);
            let fork = if common == len {
                self.push(Node::new(key, len, Some(value)))
            } else {
                let fork = self.push(Node::new(key, common, None));
                let leaf = self.push(Node::new(key, len, Some(value)));
                self.nodes[fork].children[1 - child_bit] = leaf;
                fork
            };
            self.nodes[fork].children[child_bit] = next;
            self.nodes[at].children[bit] = fork;
            return None;
        }
    }

    /// The value of the longest stored prefix that contains `word` (`width` bits wide).
    fn lookup(&self, word: u128, width: u8) -> Option<&T> {
        let mut node = &self.nodes[0];
        let mut best = node.value.as_ref();
        while node.len < width {
            let next = node.children[bit_at(word, node.len)];
            if next == NONE {
                break;
            }
            node = &self.nodes[next];
            if !node.contains(word) {
                break;
            }
            if node.value.is_some() {
                best = node.value.as_ref();
            }
        }
        best
    }
}

/// A map from IP prefixes to values with longest-prefix-match lookup.
#[derive(Debug, Clone)]
pub struct PrefixTrie<T> {
    v4: Family<T>,
    v6: Family<T>,
    len: usize,
}

impl<T> Default for PrefixTrie<T> {
    fn default() -> Self {
        Self {
            v4: Family::default(),
            v6: Family::default(),
            len: 0,
        }
    }
}

fn bits(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => ((u32::from(a) as u128) << 96, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// The `i`th bit from the top (`i` < 128).
fn bit_at(word: u128, i: u8) -> usize {
    ((word >> (127 - i)) & 1) as usize
}

/// The top `len` bits set.
fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        l => u128::MAX << (128 - u32::from(l.min(128))),
    }
}

/// How many top bits `a` and `b` share.
fn common_len(a: u128, b: u128) -> u8 {
    (a ^ b).leading_zeros() as u8
}

impl<T> PrefixTrie<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of prefixes stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts `prefix` (host bits ignored), replacing and returning any previous value.
    pub fn insert(&mut self, prefix: IpNet, value: T) -> Option<T> {
        let (word, _) = bits(prefix.network());
        let family = match prefix {
            IpNet::V4(_) => &mut self.v4,
            IpNet::V6(_) => &mut self.v6,
        };
        let old = family.insert(word, prefix.prefix_len(), value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value of the longest stored prefix that contains `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<&T> {
        let (word, width) = bits(addr);
        match addr {
            IpAddr::V4(_) => self.v4.lookup(word, width),
            IpAddr::V6(_) => self.v6.lookup(word, width),
        }
    }

    /// Nodes in the trie, both families, roots included (for the tests).
    #[cfg(test)]
    fn nodes(&self) -> usize {
        self.v4.nodes.len() + self.v6.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn net(s: &str) -> IpNet {
        s.parse().expect("a test network")
    }
    #[track_caller]
    fn ip(s: &str) -> IpAddr {
        s.parse().expect("a test address")
    }

    #[test]
    fn ipv4_longest_prefix_wins() {
        let mut t = PrefixTrie::new();
        t.insert(net("10.100.0.0/16"), "mesh");
        t.insert(net("10.100.0.2/32"), "db1");
        t.insert(net("192.168.50.0/24"), "db1-lan");
        t.insert(net("192.168.50.128/25"), "db1-half");
        assert_eq!(t.lookup(ip("10.100.0.2")), Some(&"db1"));
        assert_eq!(t.lookup(ip("10.100.0.3")), Some(&"mesh"));
        assert_eq!(t.lookup(ip("10.101.0.3")), None);
        assert_eq!(t.lookup(ip("192.168.50.1")), Some(&"db1-lan"));
        assert_eq!(t.lookup(ip("192.168.50.200")), Some(&"db1-half"));
        assert_eq!(t.lookup(ip("192.168.51.1")), None);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn ipv6_longest_prefix_wins_and_families_are_separate() {
        let mut t = PrefixTrie::new();
        t.insert(net("2001:db8:100::/64"), 1);
        t.insert(net("2001:db8:100::2/128"), 2);
        t.insert(net("0.0.0.0/0"), 4);
        assert_eq!(t.lookup(ip("2001:db8:100::2")), Some(&2));
        assert_eq!(t.lookup(ip("2001:db8:100::3")), Some(&1));
        assert_eq!(t.lookup(ip("2001:db8:101::3")), None);
        // An IPv4 default route does not capture IPv6 addresses, nor the reverse.
        assert_eq!(t.lookup(ip("8.8.8.8")), Some(&4));
        assert_eq!(t.lookup(ip("::ffff:8.8.8.8")), None);
    }

    #[test]
    fn default_route_and_host_bits() {
        let mut t = PrefixTrie::new();
        assert_eq!(t.lookup(ip("1.2.3.4")), None);
        // Host bits in the prefix are ignored: 10.0.0.77/8 is 10.0.0.0/8.
        t.insert(net("10.0.0.77/8"), "ten");
        assert_eq!(t.lookup(ip("10.255.1.1")), Some(&"ten"));
        assert_eq!(t.insert(net("10.0.0.0/8"), "TEN"), Some("ten"));
        assert_eq!(t.len(), 1);
        // Host bits given to a family's insert directly are ignored too, at a fork and a leaf.
        let (word, _) = bits(ip("10.1.2.3"));
        assert_eq!(t.v4.insert(word, 16, "ten-one"), None);
        assert_eq!(t.v4.insert(word | 0xff << 96, 24, "ten-one-two"), None);
        assert_eq!(t.lookup(ip("10.1.200.1")), Some(&"ten-one"));
        assert_eq!(t.lookup(ip("10.1.2.200")), Some(&"ten-one-two"));
        assert_eq!(t.lookup(ip("10.2.0.1")), Some(&"TEN"));
        t.insert(net("::/0"), "v6");
        assert_eq!(t.lookup(ip("fe80::1")), Some(&"v6"));
    }

    /// Deterministic pseudo-random numbers.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// The brute-force longest match the trie must agree with.
    fn longest_match(list: &[(IpNet, usize)], a: IpAddr) -> Option<&usize> {
        list.iter()
            .filter(|(p, _)| p.contains(&a))
            .max_by_key(|(p, _)| p.prefix_len())
            .map(|(_, v)| v)
    }

    #[test]
    fn a_node_only_where_a_prefix_is_or_two_part_ways() {
        let mut t = PrefixTrie::new();
        // The two roots.
        assert_eq!(t.nodes(), 2);
        t.insert(net("10.100.0.2/32"), 2);
        assert_eq!(t.nodes(), 3, "a lone /32 is one node, not 32");
        // Parting at bit 30: a fork and a leaf.
        t.insert(net("10.100.0.1/32"), 1);
        assert_eq!(t.nodes(), 5);
        // A prefix containing both, below the fork's: one node above the fork.
        t.insert(net("10.100.0.0/24"), 0);
        assert_eq!(t.nodes(), 6);
        // At the fork itself: the fork takes the value.
        t.insert(net("10.100.0.0/30"), 30);
        assert_eq!(t.nodes(), 6);
        assert_eq!(t.lookup(ip("10.100.0.1")), Some(&1));
        assert_eq!(t.lookup(ip("10.100.0.2")), Some(&2));
        assert_eq!(t.lookup(ip("10.100.0.3")), Some(&30));
        assert_eq!(t.lookup(ip("10.100.0.4")), Some(&0));
        assert_eq!(t.lookup(ip("10.100.1.4")), None);
        // A prefix inside a leaf's skipped bits that does not contain the address: no match.
        let mut t = PrefixTrie::new();
        t.insert(net("10.1.0.0/16"), 1);
        assert_eq!(t.lookup(ip("10.2.0.1")), None);
        assert_eq!(t.lookup(ip("11.1.0.1")), None);
        assert_eq!(t.lookup(ip("10.1.255.255")), Some(&1));
        // Host routes of a thousand peers: fewer than two nodes each.
        let mut t = PrefixTrie::new();
        for i in 0..1000u32 {
            let a = std::net::Ipv4Addr::from(0x0a64_0000 + i * 7);
            t.insert(IpNet::V4(ipnet::Ipv4Net::new(a, 32).unwrap_or_default()), i);
        }
        assert_eq!(t.len(), 1000);
        assert!(t.nodes() < 2 * 1000 + 2, "{} nodes", t.nodes());
    }

    #[test]
    fn ipv6_and_any_insertion_order_match_a_linear_scan() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        // Few distinct top bits, so that prefixes nest and part ways at every depth.
        let base = 0x2001_0db8_u128 << 96;
        let mut addr = || {
            base | (u128::from(next()) << 32 | u128::from(next() as u32)) & ((1 << 70) - 1) << 20
        };
        let mut t = PrefixTrie::new();
        let mut list: Vec<(IpNet, usize)> = Vec::new();
        for i in 0..400 {
            let len = [0, 1, 32, 48, 64, 64, 100, 127, 128][i % 9] as u8;
            let p = IpNet::V6(
                ipnet::Ipv6Net::new(addr().into(), len)
                    .map(|n| n.trunc())
                    .unwrap_or_default(),
            );
            let replaced = list
                .iter()
                .position(|(q, _)| *q == p)
                .map(|k| list.remove(k).1);
            list.push((p, i));
            assert_eq!(t.insert(p, i), replaced, "{p}");
        }
        assert_eq!(t.len(), list.len());
        for k in 0..6000 {
            // Half the addresses inside stored prefixes, half anywhere near them.
            let a: std::net::Ipv6Addr = match list[k / 2 % list.len()].0 {
                IpNet::V6(p) if k % 2 == 0 => {
                    (u128::from(p.network()) | addr() & !mask(p.prefix_len())).into()
                }
                _ => addr().into(),
            };
            let a = IpAddr::V6(a);
            assert_eq!(t.lookup(a), longest_match(&list, a), "{a}");
        }
    }

    #[test]
    fn matches_a_linear_scan_on_many_prefixes() {
        // Deterministic pseudo-random prefixes, checked against a brute-force longest match.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut t = PrefixTrie::new();
        let mut list: Vec<(IpNet, usize)> = Vec::new();
        for i in 0..500 {
            let addr = std::net::Ipv4Addr::from((next() as u32) & 0x0fff_ffff | 0x0a00_0000);
            let len = (next() % 25 + 8) as u8;
            let p = IpNet::V4(
                ipnet::Ipv4Net::new(addr, len)
                    .map(|n| n.trunc())
                    .unwrap_or_default(),
            );
            list.retain(|(q, _)| *q != p);
            list.push((p, i));
            t.insert(p, i);
        }
        for _ in 0..5000 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(
                (next() as u32) & 0x0fff_ffff | 0x0a00_0000,
            ));
            assert_eq!(t.lookup(a), longest_match(&list, a), "{a}");
        }
    }
}
