//! The table `inet meshd` as a pure function of a node's plan.
//!
//! The result is one nft transaction: add the table (a no-op if it exists), delete it, then
//! create it whole. nft applies a JSON batch atomically, so the host is never without the
//! table and never sees half of it; no other table is touched and nothing is flushed.
//! Per-peer matches live in sets, so the rule count does not grow with the mesh.

use crate::policy::{disjoint, MeshIn, ProtocolKey};
use ipnet::IpNet;
use meshd_core::config::{Protocol, RateUnit};
use meshd_core::plan::NodePlan;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, Range, CT,
};
use nftables::schema::{
    Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue,
    Table,
};
use nftables::stmt::{Counter, JumpTarget, Limit, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

/// Multicast listener discovery (RFC 4890 §4.4.1): link-local only.
const ICMPV6_MLD: [&str; 4] = [
    "mld-listener-query",
    "mld-listener-report",
    "mld-listener-done",
    "mld2-listener-report",
];

/// Base chain priorities (nft's `filter` and `raw`): the raw chains run before conntrack.
const PRIO_FILTER: i32 = 0;
const PRIO_RAW: i32 = -300;

/// The one table meshd owns.
pub const TABLE: &str = "meshd";
const FAMILY: NfFamily = NfFamily::INet;

/// ICMP destination-unreachable code "fragmentation needed" (RFC 1191).
const ICMP_FRAG_NEEDED: u32 = 4;

/// ICMPv6 messages IPv6 cannot work without (RFC 4890): neighbour discovery, path MTU, errors.
const ICMPV6_NEEDED: [&str; 8] = [
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
];

fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}

fn field(protocol: &str, name: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Owned(protocol.into()),
            field: Cow::Owned(name.into()),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn ct_state() -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed("state"),
        family: None,
        dir: None,
    }))
}

fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    let op = if matches!(right, Expression::Named(NamedExpression::Set(_))) {
        Operator::IN
    } else {
        Operator::EQ
    };
    Statement::Match(Match { left, right, op })
}

fn set_ref(name: &str) -> Expression<'static> {
    s(format!("@{name}"))
}

fn anon_set(items: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(
        items
            .into_iter()
            .map(nftables::expr::SetItem::Element)
            .collect(),
    ))
}

fn ports(low: u16, high: u16) -> Expression<'static> {
    if low == high {
        Expression::Number(low.into())
    } else {
        Expression::Range(Box::new(Range {
            range: [
                Expression::Number(low.into()),
                Expression::Number(high.into()),
            ],
        }))
    }
}

fn prefix(net: IpNet) -> Expression<'static> {
    if net.prefix_len() == net.max_prefix_len() {
        s(net.addr().to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(s(net.network().to_string())),
            len: net.prefix_len().into(),
        }))
    }
}

fn concat(items: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(items))
}

fn accept() -> Statement<'static> {
    Statement::Accept(None)
}

fn counter() -> Statement<'static> {
    Statement::Counter(Counter::Anonymous(None))
}

/// A protocol and the port ranges a source is allowed with it.
type PortsKey<'a> = (ProtocolKey, &'a [(u16, u16)]);

/// Which address family a set or match is for.
#[derive(Clone, Copy)]
enum Fam {
    V4,
    V6,
}

impl Fam {
    const BOTH: [Fam; 2] = [Fam::V4, Fam::V6];
    fn proto(self) -> &'static str {
        match self {
            Fam::V4 => "ip",
            Fam::V6 => "ip6",
        }
    }
    fn addr_type(self) -> SetType {
        match self {
            Fam::V4 => SetType::Ipv4Addr,
            Fam::V6 => SetType::Ipv6Addr,
        }
    }
    fn suffix(self) -> &'static str {
        match self {
            Fam::V4 => "v4",
            Fam::V6 => "v6",
        }
    }
    fn has(self, net: &IpNet) -> bool {
        matches!(
            (self, net),
            (Fam::V4, IpNet::V4(_)) | (Fam::V6, IpNet::V6(_))
        )
    }
    fn icmp(self) -> &'static str {
        match self {
            Fam::V4 => "icmp",
            Fam::V6 => "ipv6-icmp",
        }
    }
}

struct Builder {
    objects: Vec<NfObject<'static>>,
    iface: String,
}

impl Builder {
    fn add(&mut self, object: NfListObject<'static>) {
        self.objects.push(NfObject::CmdObject(NfCmd::Add(object)));
    }

    fn set(
        &mut self,
        name: String,
        set_type: SetTypeValue<'static>,
        elems: Vec<Expression<'static>>,
    ) {
        self.add(NfListObject::Set(Box::new(Set {
            family: FAMILY,
            table: Cow::Borrowed(TABLE),
            name: Cow::Owned(name),
            set_type,
            flags: Some(HashSet::from([SetFlag::Interval])),
            elem: (!elems.is_empty()).then(|| Cow::Owned(elems)),
            ..Set::default()
        })));
    }

    /// An address set, one per family: `NAME_v4`, `NAME_v6`.
    fn addr_sets(&mut self, name: &str, nets: &[IpNet]) {
        for fam in Fam::BOTH {
            let of_fam: Vec<IpNet> = nets.iter().filter(|n| fam.has(n)).copied().collect();
            let elems = disjoint(&of_fam).into_iter().map(prefix).collect();
            self.set(
                format!("{name}_{}", fam.suffix()),
                SetTypeValue::Single(fam.addr_type()),
                elems,
            );
        }
    }

    /// A chain; a base chain (with a hook) at the filter priority.
    fn chain(&mut self, name: &str, hook: Option<(NfHook, NfChainPolicy)>) {
        self.hooked_chain(name, hook.map(|(h, p)| (h, p, PRIO_FILTER)));
    }

    fn hooked_chain(&mut self, name: &str, hook: Option<(NfHook, NfChainPolicy, i32)>) {
        self.add(NfListObject::Chain(Chain {
            family: FAMILY,
            table: Cow::Borrowed(TABLE),
            name: Cow::Owned(name.into()),
            _type: hook.map(|_| NfChainType::Filter),
            hook: hook.map(|(h, _, _)| h),
            prio: hook.map(|(_, _, prio)| prio),
            policy: hook.map(|(_, p, _)| p),
            ..Chain::default()
        }));
    }

    fn rule(&mut self, chain: &str, expr: Vec<Statement<'static>>, comment: Option<&str>) {
        self.add(NfListObject::Rule(Rule {
            family: FAMILY,
            table: Cow::Borrowed(TABLE),
            chain: Cow::Owned(chain.into()),
            expr: Cow::Owned(expr),
            comment: comment.map(|c| Cow::Owned(c.into())),
            ..Rule::default()
        }));
    }

    fn conntrack(&mut self, chain: &str) {
        self.rule(
            chain,
            vec![
                matches(ct_state(), anon_set(vec![s("established"), s("related")])),
                accept(),
            ],
            None,
        );
        self.rule(
            chain,
            vec![matches(ct_state(), s("invalid")), Statement::Drop(None)],
            None,
        );
    }

    fn on_mesh_iface(&self) -> Statement<'static> {
        matches(meta(MetaKey::Iifname), s(self.iface.clone()))
    }

    fn off_mesh_iface(&self) -> Statement<'static> {
        Statement::Match(Match {
            left: meta(MetaKey::Iifname),
            right: s(self.iface.clone()),
            op: Operator::NEQ,
        })
    }

    /// Drops, and counts, packets from a source this host routes into the tunnel (the mesh
    /// network, a peer's routes) that did not come through it: only WireGuard vouches for
    /// those addresses. The routing table decides (a reverse-path check), so a more specific
    /// route elsewhere (a LAN, a VPC inside the mesh prefix) keeps its traffic.
    fn not_from_underlay(&mut self, chain: &str) {
        let fib = Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Oifname,
            flags: HashSet::from([FibFlag::Saddr]),
        }));
        let rule = vec![
            self.off_mesh_iface(),
            matches(fib, s(self.iface.clone())),
            counter(),
            Statement::Drop(None),
        ];
        self.rule(chain, rule, Some("mesh source off the tunnel"));
    }
}

fn rate_unit(unit: RateUnit) -> &'static str {
    match unit {
        RateUnit::Second => "second",
        RateUnit::Minute => "minute",
        RateUnit::Hour => "hour",
    }
}

fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: FAMILY,
        name: Cow::Borrowed(TABLE),
        ..Table::default()
    })
}

/// The transaction that replaces table `inet meshd` with this node's table.
pub fn ruleset(plan: &NodePlan) -> Nftables<'static> {
    let mut b = Builder {
        objects: Vec::new(),
        iface: plan.interface.name.clone(),
    };
    // Replace atomically: create (no-op if present), delete, create whole.
    b.add(table());
    b.objects.push(NfObject::CmdObject(NfCmd::Delete(table())));
    b.add(table());

    let mesh = MeshIn::from_plan(plan);
    b.addr_sets("ssh_from", &plan.admin.ssh_from);
    b.addr_sets("mesh_any", &mesh.any.iter().copied().collect::<Vec<_>>());
    b.addr_sets("mesh_icmp", &mesh.icmp.iter().copied().collect::<Vec<_>>());
    b.addr_sets("routes", &plan.me.routes);
    for fam in Fam::BOTH {
        // Sources allowed the very same ports share elements: their prefixes, aggregated
        // (a full mesh's thousands of peers become a few prefixes per port).
        let mut by_ports: BTreeMap<PortsKey, Vec<IpNet>> = BTreeMap::new();
        for ((src, proto), ranges) in mesh.ports.iter().filter(|((src, _), _)| fam.has(src)) {
            by_ports.entry((*proto, ranges)).or_default().push(*src);
        }
        let elems = by_ports
            .into_iter()
            .flat_map(|((proto, ranges), sources)| {
                disjoint(&sources).into_iter().flat_map(move |src| {
                    ranges.iter().map(move |&(lo, hi)| {
                        concat(vec![prefix(src), s(proto.name()), ports(lo, hi)])
                    })
                })
            })
            .collect();
        b.set(
            format!("mesh_ports_{}", fam.suffix()),
            SetTypeValue::Concatenated(Cow::Owned(vec![
                fam.addr_type(),
                SetType::InetProto,
                SetType::InetService,
            ])),
            elems,
        );
    }

    b.chain("input", Some((NfHook::Input, NfChainPolicy::Drop)));
    b.chain("mesh_in", None);
    b.chain("echo_in", None);
    b.chain("forward", Some((NfHook::Forward, NfChainPolicy::Drop)));
    b.chain("output", Some((NfHook::Output, NfChainPolicy::Accept)));
    b.hooked_chain(
        "notrack_in",
        Some((NfHook::Prerouting, NfChainPolicy::Accept, PRIO_RAW)),
    );
    b.hooked_chain(
        "notrack_out",
        Some((NfHook::Output, NfChainPolicy::Accept, PRIO_RAW)),
    );

    // The WireGuard port's datagrams skip conntrack, both ways: `input` accepts them on the
    // port alone, WireGuard authenticates each one, and a conntrack lookup per datagram is
    // time on every packet's path (docs/performance.md). Not those from the tunnel: one
    // forwarded toward a peer's routes stays tracked, or its replies would not match. (A
    // route lookup to tell local from forwarded would cost what conntrack does.)
    let port = || Expression::Number(plan.interface.listen_port.into());
    b.rule(
        "notrack_in",
        vec![
            b.off_mesh_iface(),
            matches(field("udp", "dport"), port()),
            Statement::Notrack,
        ],
        Some("wireguard"),
    );
    b.rule(
        "notrack_out",
        vec![matches(field("udp", "sport"), port()), Statement::Notrack],
        Some("wireguard"),
    );

    // input: the host's own firewall.
    b.rule(
        "input",
        vec![matches(meta(MetaKey::Iifname), s("lo")), accept()],
        None,
    );
    // The WireGuard port, before everything else a datagram from the underlay meets: every
    // datagram on it is WireGuard's to authenticate (a forged one is a counted drop in meshd,
    // whatever its source), and the rules below would cost a route lookup per datagram (the
    // reverse-path check) on every packet's way through the tunnel (docs/performance.md).
    b.rule(
        "input",
        vec![
            b.off_mesh_iface(),
            matches(field("udp", "dport"), port()),
            accept(),
        ],
        Some("wireguard"),
    );
    // Mesh traffic is judged by the mesh policy alone, never by the public rules below.
    let jump = Statement::Jump(JumpTarget {
        target: Cow::Borrowed("mesh_in"),
    });
    b.rule("input", vec![b.on_mesh_iface(), jump.clone()], None);
    b.not_from_underlay("input");
    // Echo requests before conntrack: after its first reply a ping is an "established" flow,
    // and the rate limit would no longer see it. IPv4 and IPv6 share one limit.
    let echo_in = Statement::Jump(JumpTarget {
        target: Cow::Borrowed("echo_in"),
    });
    for proto in ["icmp", "icmpv6"] {
        b.rule(
            "input",
            vec![
                matches(field(proto, "type"), s("echo-request")),
                echo_in.clone(),
            ],
            None,
        );
    }
    let rate = plan.admin.icmp_rate;
    b.rule(
        "echo_in",
        vec![
            Statement::Limit(Limit {
                rate: rate.count,
                rate_unit: None,
                per: Some(Cow::Borrowed(rate_unit(rate.per))),
                // At most one period's worth at once, never nft's default of 5.
                burst: Some(rate.count),
                burst_unit: None,
                inv: None,
            }),
            accept(),
        ],
        Some("admin.icmp_rate"),
    );
    b.rule(
        "echo_in",
        vec![counter(), Statement::Drop(None)],
        Some("over admin.icmp_rate"),
    );
    // Path MTU errors before conntrack: one about a WireGuard datagram (untracked) is
    // "invalid" to conntrack, and the path MTU of the underlay must still be learnt.
    b.rule(
        "input",
        vec![
            matches(field("icmp", "type"), s("destination-unreachable")),
            matches(field("icmp", "code"), Expression::Number(ICMP_FRAG_NEEDED)),
            accept(),
        ],
        Some("path mtu"),
    );
    b.rule(
        "input",
        vec![
            matches(field("icmpv6", "type"), s("packet-too-big")),
            accept(),
        ],
        Some("path mtu"),
    );
    b.conntrack("input");
    for fam in Fam::BOTH {
        b.rule(
            "input",
            vec![
                matches(field("tcp", "dport"), Expression::Number(22)),
                matches(
                    field(fam.proto(), "saddr"),
                    set_ref(&format!("ssh_from_{}", fam.suffix())),
                ),
                accept(),
            ],
            Some("ssh from admin.ssh_from"),
        );
    }
    for spec in &plan.me.open {
        let proto = match spec.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        b.rule(
            "input",
            vec![
                matches(field(proto, "dport"), ports(spec.low, spec.high)),
                accept(),
            ],
            Some("open"),
        );
    }
    b.rule(
        "input",
        vec![
            matches(
                field("icmpv6", "type"),
                anon_set(ICMPV6_NEEDED.iter().map(|t| s(*t)).collect()),
            ),
            accept(),
        ],
        Some("icmpv6 that IPv6 needs"),
    );
    b.rule(
        "input",
        vec![
            matches(
                field("ip6", "saddr"),
                Expression::Named(NamedExpression::Prefix(Prefix {
                    addr: Box::new(s("fe80::")),
                    len: 10,
                })),
            ),
            matches(
                field("icmpv6", "type"),
                anon_set(ICMPV6_MLD.iter().map(|t| s(*t)).collect()),
            ),
            accept(),
        ],
        Some("link-local multicast listener discovery"),
    );
    b.rule("input", vec![counter()], Some("dropped by policy"));

    // mesh_in: replies to what this node opened, then one accept per kind of allowance,
    // matched on the sender's AllowedIPs.
    b.conntrack("mesh_in");
    for fam in Fam::BOTH {
        let saddr = || field(fam.proto(), "saddr");
        let sfx = fam.suffix();
        b.rule(
            "mesh_in",
            vec![
                matches(saddr(), set_ref(&format!("mesh_any_{sfx}"))),
                accept(),
            ],
            None,
        );
        b.rule(
            "mesh_in",
            vec![
                matches(meta(MetaKey::L4proto), s(fam.icmp())),
                matches(saddr(), set_ref(&format!("mesh_icmp_{sfx}"))),
                accept(),
            ],
            None,
        );
        b.rule(
            "mesh_in",
            vec![
                matches(
                    concat(vec![saddr(), meta(MetaKey::L4proto), field("th", "dport")]),
                    set_ref(&format!("mesh_ports_{sfx}")),
                ),
                accept(),
            ],
            None,
        );
    }
    b.rule(
        "mesh_in",
        vec![counter(), Statement::Drop(None)],
        Some("not allowed by policy"),
    );

    // forward: only what the policy lets through from the mesh toward this node's routes.
    // (One way: hosts on those routes reach the mesh only as replies.)
    b.not_from_underlay("forward");
    b.conntrack("forward");
    for fam in Fam::BOTH {
        b.rule(
            "forward",
            vec![
                b.on_mesh_iface(),
                matches(
                    field(fam.proto(), "daddr"),
                    set_ref(&format!("routes_{}", fam.suffix())),
                ),
                jump.clone(),
            ],
            None,
        );
    }
    b.rule("forward", vec![counter()], Some("dropped by policy"));

    Nftables {
        objects: Cow::Owned(b.objects),
    }
}

/// The transaction as the JSON `nft -j -f -` takes.
pub fn to_json(ruleset: &Nftables<'_>) -> String {
    let mut v = serde_json::to_value(ruleset).unwrap_or_default();
    notrack_as_object(&mut v);
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The nftables crate (0.6) writes the `notrack` statement as the bare string "notrack",
/// which nft refuses (every statement of a rule is an object); nft's own form is
/// `{"notrack": null}`. Only the statements of added rules are touched.
fn notrack_as_object(v: &mut serde_json::Value) {
    use serde_json::Value;
    let Some(objects) = v.get_mut("nftables").and_then(Value::as_array_mut) else {
        return;
    };
    let rules = objects
        .iter_mut()
        .filter_map(|o| o.pointer_mut("/add/rule/expr"))
        .filter_map(Value::as_array_mut);
    for stmt in rules.flatten() {
        if stmt.as_str() == Some("notrack") {
            *stmt = serde_json::json!({ "notrack": null });
        }
    }
}
