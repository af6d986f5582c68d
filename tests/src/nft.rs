//! Packet counters with nftables, inside a test namespace only (table `inet mdtcount`).
//!
//! The chains hook at priority -300 (before conntrack and before meshd's own `inet meshd` filter
//! chains), so they see every packet that leaves or arrives, including those meshd's firewall
//! drops afterwards.

use crate::command::run_ok_stdin;
use crate::netns::Netns;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Which way a counter looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Packets this namespace sends to the address (hook output).
    To,
    /// Packets arriving from the address (hooks prerouting and input: both are counted, so a
    /// packet that is delivered locally counts twice; only zero / non-zero matters).
    From,
}

/// A named counter matching one address in one direction (and, optionally, more).
#[derive(Debug, Clone)]
pub struct CounterSpec {
    pub name: String,
    pub dir: Dir,
    pub addr: IpAddr,
    /// More nft match expressions, e.g. `udp dport 51820`; empty for none.
    pub matching: String,
}

impl CounterSpec {
    pub fn new(name: &str, dir: Dir, addr: IpAddr) -> CounterSpec {
        CounterSpec {
            name: name.to_string(),
            dir,
            addr,
            matching: String::new(),
        }
    }

    /// Counts only the packets that also match `expr` (nft syntax).
    pub fn matching(mut self, expr: &str) -> CounterSpec {
        self.matching = expr.to_string();
        self
    }

    /// Counts only WireGuard handshake initiations (message type 1) to or from `addr`.
    pub fn handshake_initiations(name: &str, dir: Dir, addr: IpAddr) -> CounterSpec {
        // The message type is the first byte after the 8-byte UDP header.
        Self::new(name, dir, addr).matching("meta l4proto udp @th,64,8 1")
    }
}

pub const TABLE: &str = "mdtcount";

/// Installs (replaces) table `inet mdtcount` in `ns` with the given counters.
pub fn install_counters(ns: &Netns, counters: &[CounterSpec]) {
    let mut s = String::new();
    let _ = writeln!(s, "table inet {TABLE} {{}}");
    let _ = writeln!(s, "delete table inet {TABLE}");
    let _ = writeln!(s, "table inet {TABLE} {{");
    for c in counters {
        let _ = writeln!(s, "  counter {} {{}}", c.name);
    }
    let rules = |dir: Dir| {
        let mut r = String::new();
        for c in counters.iter().filter(|c| c.dir == dir) {
            let fam = if c.addr.is_ipv4() { "ip" } else { "ip6" };
            let field = if dir == Dir::To { "daddr" } else { "saddr" };
            let _ = writeln!(
                r,
                "    {fam} {field} {} {} counter name \"{}\"",
                c.addr, c.matching, c.name
            );
        }
        r
    };
    let _ = writeln!(
        s,
        "  chain out {{\n    type filter hook output priority -300; policy accept;\n{}  }}",
        rules(Dir::To)
    );
    for (chain, hook) in [("pre", "prerouting"), ("inp", "input")] {
        let _ = writeln!(
            s,
            "  chain {chain} {{\n    type filter hook {hook} priority -300; policy accept;\n{}  }}",
            rules(Dir::From)
        );
    }
    let _ = writeln!(s, "}}");
    run_ok_stdin(ns.cmd("nft").args(["-f", "-"]), &s);
}

/// Packets counted so far by counter `name`.
pub fn read_counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.exec_ok(&["nft", "list", "counter", "inet", TABLE, name]);
    parse_packets(&out).unwrap_or_else(|| panic!("no `packets N` in:\n{out}"))
}

fn parse_packets(out: &str) -> Option<u64> {
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words.next().and_then(|n| n.parse().ok());
        }
    }
    None
}

/// Packets counted by the rules of meshd's own table (`inet meshd`) in `chain` whose comment
/// is `comment` (summed: the IPv4 and IPv6 twins share a comment).
pub fn meshd_rule_packets(ns: &Netns, chain: &str, comment: &str) -> u64 {
    let out = ns.exec_ok(&["nft", "list", "chain", "inet", "meshd", chain]);
    let tag = format!("comment \"{comment}\"");
    out.lines()
        .filter(|l| l.contains(&tag))
        .map(|l| parse_packets(l).unwrap_or_else(|| panic!("no counter in rule: {l}")))
        .sum()
}

/// Removes the table (also happens when the namespace goes).
pub fn remove_counters(ns: &Netns) {
    let _ = ns.exec(&["nft", "delete", "table", "inet", TABLE]);
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_counter_listing() {
        let out = "table inet mdtcount {\n\tcounter to_c {\n\t\tpackets 12 bytes 3400\n\t}\n}\n";
        assert_eq!(super::parse_packets(out), Some(12));
        assert_eq!(super::parse_packets("nothing"), None);
    }
}
