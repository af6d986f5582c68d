//! AllowedIPs as a binary prefix trie: longest-prefix match for IPv4 and IPv6.
//!
//! Lookups walk at most 32 (IPv4) or 128 (IPv6) nodes and never allocate. The trie is built once
//! per plan and read-only afterwards, so the data path can share it without locks.

use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone)]
struct TrieNode<T> {
    children: [Option<Box<TrieNode<T>>>; 2],
    value: Option<T>,
}

impl<T> Default for TrieNode<T> {
    fn default() -> Self {
        Self {
            children: [None, None],
            value: None,
        }
    }
}

/// A map from IP prefixes to values with longest-prefix-match lookup.
#[derive(Debug, Clone)]
pub struct PrefixTrie<T> {
    v4: TrieNode<T>,
    v6: TrieNode<T>,
    len: usize,
}

impl<T> Default for PrefixTrie<T> {
    fn default() -> Self {
        Self {
            v4: TrieNode::default(),
            v6: TrieNode::default(),
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

fn bit_at(word: u128, i: u8) -> usize {
    ((word >> (127 - i)) & 1) as usize
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
        let mut node = match prefix {
            IpNet::V4(_) => &mut self.v4,
            IpNet::V6(_) => &mut self.v6,
        };
        for i in 0..prefix.prefix_len() {
            node = node.children[bit_at(word, i)].get_or_insert_with(Box::default);
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value of the longest stored prefix that contains `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<&T> {
        let (word, width) = bits(addr);
        let mut node = match addr {
            IpAddr::V4(_) => &self.v4,
            IpAddr::V6(_) => &self.v6,
        };
        let mut best = node.value.as_ref();
        for i in 0..width {
            match &node.children[bit_at(word, i)] {
                Some(child) => {
                    node = child;
                    if node.value.is_some() {
                        best = node.value.as_ref();
                    }
                }
                None => break,
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
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
        t.insert(net("::/0"), "v6");
        assert_eq!(t.lookup(ip("fe80::1")), Some(&"v6"));
    }

    #[test]
    fn matches_a_linear_scan_on_many_prefixes() {
        // Deterministic pseudo-random prefixes, checked against a brute-force longest match.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
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
            let want = list
                .iter()
                .filter(|(p, _)| p.contains(&a))
                .max_by_key(|(p, _)| p.prefix_len())
                .map(|(_, v)| v);
            assert_eq!(t.lookup(a), want, "{a}");
        }
    }
}
