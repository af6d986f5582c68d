//! Tests of `mesh.yaml` parsing and validation, from the text to the model or every error.
//!
//! - An error table's row is one case: a text put into the table's template, and every error it
//!   gives, rendered in full (`file:line:column: key: message`) and in file order.
//! - Also: the models valid files give, the limits, and garbage that must give errors, never a
//!   panic.

use super::values::{parse_allow, parse_endpoint, parse_port_spec, parse_prefix};
use super::{
    parse, AdminConfig, Allow, Endpoint, InterfaceConfig, MeshConfig, Metrics, MetricsDetail,
    NodeConfig, PolicyRule, PortSpec, Pos, Protocol, QuietCpu, Rate, RateUnit, Selector,
    MAX_CONFIG_BYTES, MAX_ENTRIES, MAX_ERRORS, MAX_MAPPINGS, MAX_YAML_VALUES,
};
use crate::key::PublicKey;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ipnet::IpNet;
use std::net::SocketAddr;

// ---------------------------------------------------------------------------------------------
// Helpers

/// A valid public key made of 32 copies of `n` (any 32 bytes are a valid public key).
fn key(n: u8) -> String {
    STANDARD.encode([n; 32])
}

fn pk(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

/// The text with `@K1`..`@K9` replaced by valid keys.
fn yaml(text: &str) -> String {
    let mut out = text.to_string();
    for n in 1..=9u8 {
        out = out.replace(&format!("@K{n}"), &key(n));
    }
    out
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn sock(s: &str) -> SocketAddr {
    s.parse().expect("test socket address")
}

fn ok(text: &str) -> MeshConfig {
    parse("mesh.yaml", &yaml(text)).expect("a valid config")
}

/// The errors of `text` (keys put in), each rendered as `file:line:column: key: message`.
fn errors_of(text: &str) -> Vec<String> {
    match parse("mesh.yaml", &yaml(text)) {
        Ok(c) => vec![format!("(no error: a config of {} nodes)", c.nodes.len())],
        Err(e) => {
            let more = (e.1 > 0).then(|| format!("(and {} more)", e.1));
            e.0.iter().map(ToString::to_string).chain(more).collect()
        }
    }
}

/// Error cases: a text for the table's template, and every error it gives, in file order.
type Cases = [(&'static str, &'static [&'static str])];

/// Checks every case of a table, `template` putting a row's text in place; reports every case that
/// fails, by its text.
#[track_caller]
fn check_cases(template: impl Fn(&str) -> String, cases: &Cases) {
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let got = errors_of(&template(text));
            (got != *want).then(|| format!("case {text:?}:\n  want {want:#?}\n  got  {got:#?}"))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

/// The errors of one whole file.
#[track_caller]
fn check_errors(text: &'static str, want: &'static [&'static str]) {
    check_cases(str::to_string, &[(text, want)]);
}

/// Two valid nodes; the tests add to or change it. Lines:
/// 1 nodes: / 2 - name: db1 / 3 public_key / 4 address / 5 - name: app1 / 6 public_key / 7 address
const TWO: &str = "\
nodes:
  - name: db1
    public_key: @K1
    address: 10.100.0.2/24
  - name: app1
    public_key: @K2
    address: 10.100.0.3/24
";

/// [`TWO`] and more from line 8.
fn two_with(extra: &str) -> String {
    format!("{TWO}{extra}")
}

/// [`TWO`] with a line of `interface` on line 9.
fn interface_with(line: &str) -> String {
    two_with(&format!("interface:\n  {line}\n"))
}

/// [`TWO`] with a line of `admin` on line 9.
fn admin_with(line: &str) -> String {
    two_with(&format!("admin:\n  {line}\n"))
}

/// [`TWO`] with app1's address (line 7) replaced.
fn app1_address(address: &str) -> String {
    TWO.replace("10.100.0.3/24", address)
}

/// One valid node with a field more on line 5.
fn node_with(field: &str) -> String {
    format!("nodes:\n  - name: db1\n    public_key: @K1\n    address: 10.100.0.2/24\n    {field}\n")
}

/// One node with this name (line 2).
fn node_named(name: &str) -> String {
    format!("nodes:\n  - name: {name}\n    public_key: @K1\n    address: 10.0.0.1/24\n")
}

/// One node with this public key (line 3).
fn node_keyed(public_key: &str) -> String {
    format!("nodes:\n  - name: a\n    public_key: {public_key}\n    address: 10.0.0.1/24\n")
}

/// One node with this address (line 4).
fn node_addressed(address: &str) -> String {
    format!("nodes:\n  - name: a\n    public_key: @K1\n    address: {address}\n")
}

// ---------------------------------------------------------------------------------------------
// Valid configs

const FULL_EXAMPLE: &str = "\
interface:
  name: meshd0             # TUN device name, at most 15 bytes
  listen_port: 51820       # UDP port of the WireGuard endpoint
  mtu: 1420                # MTU of the TUN device
  metrics: 127.0.0.1:9586  # Prometheus endpoint; the word `off` disables it
admin:                     # the host's own firewall (public side), same on every node
  ssh_from: [192.0.2.10/32, 192.0.2.11/32]   # who may reach tcp/22 from outside the mesh
  icmp_rate: 1/second      # echo-request rate limit
nodes:
  - name: db1
    public_key: \"@K1\"
    address: 10.100.0.2/24 # overlay address; the prefix is the mesh network
    endpoint: 192.0.2.2:51820   # optional (a node behind NAT has none); a DNS name is allowed and re-resolved
    routes: [192.168.50.0/24]   # optional: subnets this node routes for (more AllowedIPs)
    keepalive: 25          # optional: persistent keepalive, seconds
    open: [tcp/443]        # optional: public ports of this node's host firewall
  - name: app1
    public_key: \"@K2\"
    address: 10.100.0.3/24
    endpoint: 192.0.2.3:51820
policy:                    # who may open connections to whom inside the mesh; all else is dropped
  - from: app1             # a node name, a list of names, or \"*\"
    to: db1                # likewise
    allow: [tcp/3306, icmp]   # tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp, any
";

const fn tcp(low: u16, high: u16) -> PortSpec {
    PortSpec {
        protocol: Protocol::Tcp,
        low,
        high,
    }
}

const fn udp(low: u16, high: u16) -> PortSpec {
    PortSpec {
        protocol: Protocol::Udp,
        low,
        high,
    }
}

#[test]
fn a_full_example_parses_to_the_expected_model() {
    let expected = MeshConfig {
        interface: InterfaceConfig {
            name: "meshd0".into(),
            listen_port: 51820,
            mtu: 1420,
            metrics: Metrics::Listen(sock("127.0.0.1:9586")),
            dns_refresh: 30,
            busy_poll: 100,
            quiet_cpu: QuietCpu::Auto,
            metrics_detail: MetricsDetail::Node,
        },
        admin: AdminConfig {
            ssh_from: vec![net("192.0.2.10/32"), net("192.0.2.11/32")],
            icmp_rate: Rate {
                count: 1,
                per: RateUnit::Second,
            },
        },
        nodes: vec![
            NodeConfig {
                name: "db1".into(),
                public_key: pk(1),
                address: net("10.100.0.2/24"),
                endpoint: Some(Endpoint::Addr(sock("192.0.2.2:51820"))),
                routes: vec![net("192.168.50.0/24")],
                keepalive: Some(25),
                open: vec![tcp(443, 443)],
                pos: Pos {
                    line: 10,
                    column: 5,
                },
            },
            NodeConfig {
                name: "app1".into(),
                public_key: pk(2),
                address: net("10.100.0.3/24"),
                endpoint: Some(Endpoint::Addr(sock("192.0.2.3:51820"))),
                routes: vec![],
                keepalive: None,
                open: vec![],
                pos: Pos {
                    line: 17,
                    column: 5,
                },
            },
        ],
        policy: vec![PolicyRule {
            from: Selector::Nodes(vec!["app1".into()]),
            to: Selector::Nodes(vec!["db1".into()]),
            allow: vec![Allow::Port(tcp(3306, 3306)), Allow::Icmp],
            pos: Pos {
                line: 22,
                column: 5,
            },
        }],
    };
    assert_eq!(ok(FULL_EXAMPLE), expected);
}

#[test]
fn example_file_in_the_repository_is_valid() {
    let text = include_str!("../../../../config/mesh.example.yaml");
    let config = parse("mesh.example.yaml", text).expect("config/mesh.example.yaml is valid");
    let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["db1", "app1", "bastion"]);
    let bastion = config.node("bastion").map(|n| n.endpoint.clone());
    let host = Endpoint::Host {
        host: "bastion.example.net".into(),
        port: 51820,
    };
    assert_eq!(bastion, Some(Some(host)));
    assert_eq!(config.node("app1").map(|n| n.keepalive), Some(Some(25)));
    assert_eq!(config.policy.len(), 3);
    let last = config.policy.last().map(|r| r.allow.clone());
    assert_eq!(last, Some(vec![Allow::Port(udp(514, 514))]));
    assert!(config.warnings().is_empty());
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let c = ok("nodes:\n  - name: solo\n    public_key: @K1\n    address: 10.0.0.1/24\n");
    let interface = InterfaceConfig {
        name: "meshd0".into(),
        listen_port: 51820,
        mtu: 1420,
        metrics: Metrics::Listen(sock("127.0.0.1:9586")),
        dns_refresh: 30,
        busy_poll: 100,
        quiet_cpu: QuietCpu::Auto,
        metrics_detail: MetricsDetail::Node,
    };
    assert_eq!(c.interface, interface);
    assert_eq!(c.admin.ssh_from, vec![]);
    assert_eq!(
        c.admin.icmp_rate,
        Rate {
            count: 5,
            per: RateUnit::Second
        }
    );
    assert!(c.policy.is_empty());
    let node = &c.nodes[0];
    assert_eq!(node.endpoint, None);
    assert_eq!(node.keepalive, None);
    assert!(node.routes.is_empty() && node.open.is_empty());
    assert_eq!(node.pos, Pos { line: 2, column: 5 });
}

/// Valid texts, and how each one's model differs from another.
type Edits = [(&'static str, fn(&mut MeshConfig))];

/// Valid additions to [`TWO`], and how the model differs from [`TWO`]'s: the whole model is
/// compared, so every value not named keeps its default.
#[rustfmt::skip]
const TWO_WITH_VALUES: &Edits = &[
    // Empty optional sections mean defaults.
    ("interface:\nadmin: ~\npolicy:\n", |_| {}),
    ("interface: {}\nadmin: {}\npolicy: []\n", |_| {}),
    ("interface:\n  listen_port: 0xCAFE\n  metrics: off\n", |c| { c.interface.listen_port = 0xCAFE; c.interface.metrics = Metrics::Off }),
    ("interface:\n  name: wg_mesh.0-a\n", |c| c.interface.name = "wg_mesh.0-a".into()),
    ("interface:\n  busy_poll: 0\n", |c| c.interface.busy_poll = 0),
    ("interface:\n  busy_poll: 1000\n", |c| c.interface.busy_poll = 1000),
    ("interface:\n  metrics_detail: node\n", |c| c.interface.metrics_detail = MetricsDetail::Node),
    ("interface:\n  metrics_detail: peer\n", |c| c.interface.metrics_detail = MetricsDetail::Peer),
    ("interface:\n  quiet_cpu: auto\n", |c| c.interface.quiet_cpu = QuietCpu::Auto),
    ("interface:\n  quiet_cpu: off\n", |c| c.interface.quiet_cpu = QuietCpu::Off),
    ("interface:\n  quiet_cpu: 0\n", |c| c.interface.quiet_cpu = QuietCpu::Cpu(0)),
    ("interface:\n  quiet_cpu: 1023\n", |c| c.interface.quiet_cpu = QuietCpu::Cpu(1023)),
    ("interface:\n  dns_refresh: 120\n", |c| c.interface.dns_refresh = 120),
    ("interface:\n  metrics: 0.0.0.0:9100\n", |c| c.interface.metrics = Metrics::Listen(sock("0.0.0.0:9100"))),
    // An IPv4 mesh takes an MTU below what IPv6 needs.
    ("interface:\n  mtu: 576\n", |c| c.interface.mtu = 576),
    // Bare addresses in `ssh_from` are host prefixes.
    ("admin:\n  ssh_from: [192.0.2.10, 2001:db8::10, 198.51.100.0/24]\n  icmp_rate: 10/minute\n", |c| {
        c.admin.ssh_from = vec![net("192.0.2.10/32"), net("2001:db8::10/128"), net("198.51.100.0/24")];
        c.admin.icmp_rate = Rate { count: 10, per: RateUnit::Minute };
    }),
    ("admin:\n  icmp_rate: 100/hour\n", |c| c.admin.icmp_rate = Rate { count: 100, per: RateUnit::Hour }),
];

#[test]
fn valid_additions_give_the_model_with_their_values() {
    let base = ok(TWO);
    // Absent, `metrics_detail` is `node` and `quiet_cpu` is `auto`.
    assert_eq!(base.interface.metrics_detail, MetricsDetail::Node);
    assert_eq!(base.interface.quiet_cpu, QuietCpu::Auto);
    for (extra, edit) in TWO_WITH_VALUES {
        let mut want = base.clone();
        edit(&mut want);
        assert_eq!(ok(&two_with(extra)), want, "case {extra:?}");
    }
}

#[test]
fn keepalive_zero_means_none() {
    let c = ok("nodes:\n  - {name: a, public_key: @K1, address: 10.0.0.1/24, keepalive: 0}\n");
    assert_eq!(c.nodes[0].keepalive, None);
    let c = ok("nodes:\n  - {name: a, public_key: @K1, address: 10.0.0.1/24, keepalive: 65535}\n");
    assert_eq!(c.nodes[0].keepalive, Some(65535));
}

#[test]
fn ipv6_mesh_with_all_endpoint_forms() {
    let c = ok("\
interface:
  mtu: 1280
  metrics: '[::1]:9586'
nodes:
  - name: a
    public_key: @K1
    address: fd00:100::1/64
    endpoint: '[2001:db8::1]:51820'
    routes: [fd00:200::/48, 2001:db8:5::7]
  - name: b
    public_key: @K2
    address: fd00:100::2/64
    endpoint: peer-b.example.com:4500
  - name: c
    public_key: @K3
    address: fd00:100::3/64
    endpoint: 198.51.100.7:51820
");
    assert_eq!(c.interface.metrics, Metrics::Listen(sock("[::1]:9586")));
    let a = Endpoint::Addr(sock("[2001:db8::1]:51820"));
    assert_eq!(c.nodes[0].endpoint, Some(a));
    assert_eq!(
        c.nodes[0].routes,
        vec![net("fd00:200::/48"), net("2001:db8:5::7/128")]
    );
    let b = Endpoint::Host {
        host: "peer-b.example.com".into(),
        port: 4500,
    };
    assert_eq!(c.nodes[1].endpoint, Some(b));
    let c2 = Endpoint::Addr(sock("198.51.100.7:51820"));
    assert_eq!(c.nodes[2].endpoint, Some(c2));
}

#[test]
fn policy_selectors_and_allow_forms() {
    let c = ok(&two_with(
        "\
policy:
  - from: '*'
    to: [db1, app1]
    allow: any
  - from: [app1]
    to: db1
    allow: [tcp/8000-8100, udp/53, icmp, any]
",
    ));
    assert_eq!(c.policy[0].from, Selector::All);
    assert_eq!(
        c.policy[0].to,
        Selector::Nodes(vec!["db1".into(), "app1".into()])
    );
    assert_eq!(c.policy[0].allow, vec![Allow::Any]);
    assert_eq!(c.policy[0].pos, Pos { line: 9, column: 5 });
    let allow = [
        Allow::Port(tcp(8000, 8100)),
        Allow::Port(udp(53, 53)),
        Allow::Icmp,
        Allow::Any,
    ];
    assert_eq!(c.policy[1].allow, allow);
}

#[test]
fn open_ports_parse() {
    let c = ok("nodes:\n  - {name: a, public_key: @K1, address: 10.0.0.1/24, open: [tcp/443, udp/1000-2000]}\n");
    assert_eq!(c.nodes[0].open, vec![tcp(443, 443), udp(1000, 2000)]);
}

#[test]
fn numeric_node_names_are_names() {
    let c = ok("nodes:\n  - {name: 1, public_key: @K1, address: 10.0.0.1/24}\npolicy:\n  - {from: 1, to: '*', allow: icmp}\n");
    assert_eq!(c.nodes[0].name, "1");
    assert_eq!(c.policy[0].from, Selector::Nodes(vec!["1".into()]));
}

#[test]
fn slash_31_and_32_meshes_may_use_every_address() {
    let c = ok("nodes:\n  - {name: a, public_key: @K1, address: 10.0.0.0/31}\n  - {name: b, public_key: @K2, address: 10.0.0.1/31}\n");
    assert_eq!(c.nodes.len(), 2);
}

#[test]
fn a_node_name_of_63_characters_is_valid() {
    let c = ok(&node_named(&"a".repeat(63)));
    assert_eq!(c.nodes[0].name.len(), 63);
}

#[test]
fn a_bare_route_is_a_host_prefix() {
    let c = ok(&node_with("routes: [172.16.0.9]"));
    assert_eq!(c.nodes[0].routes, vec![net("172.16.0.9/32")]);
}

#[test]
fn routes_of_other_families_do_not_overlap() {
    let c = ok(&node_with("routes: [192.168.0.0/16, '2001:db8::/32']"));
    assert_eq!(c.nodes[0].routes.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Errors, by where the text goes

/// Whole files: YAML-level errors, the top level, and rules across nodes.
#[rustfmt::skip]
const FILES: &Cases = &[
    ("nodes:\n  - name: a\n   bad: [\n", &["mesh.yaml:3:7: (yaml): YAML syntax error: while parsing a block collection, did not find expected '-' indicator"]),
    ("nodes: [\n", &["mesh.yaml:2:1: (yaml): YAML syntax error: while parsing a node, did not find expected node content"]),
    ("nodes:\n  - name: db1\n    name: db2\n    public_key: @K1\n    address: 10.0.0.1/24\n", &["mesh.yaml:3:5: nodes[0].name: duplicate key `name`; it is already set at line 2, column 5"]),
    ("interface: {}\nnodes: []\ninterface: {}\n", &["mesh.yaml:3:1: interface: duplicate key `interface`; it is already set at line 1, column 1"]),
    ("x: &a 1\nnodes: *a\n", &["mesh.yaml:1:7: (yaml): YAML anchors and aliases (&name, *name) are not supported; write the value out"]),
    ("nodes: !!str x\n", &["mesh.yaml:1:14: (yaml): YAML tags (!tag, !!str) are not supported; quote the value instead"]),
    ("- name: db1\n- name: app1\n", &["mesh.yaml:1:1: (top level): the config must be a mapping with the keys interface, admin, nodes, policy"]),
    ("just words\n", &["mesh.yaml:1:1: (top level): the config must be a mapping with the keys interface, admin, nodes, policy"]),
    ("---\n", &["mesh.yaml:2:1: (top level): the config must be a mapping with the keys interface, admin, nodes, policy"]),
    ("", &["mesh.yaml:1:1: nodes: missing required key `nodes`"]),
    ("# only a comment\n\n", &["mesh.yaml:3:1: nodes: missing required key `nodes`"]),
    ("nodes: []\n", &["mesh.yaml:1:8: nodes: the list of nodes is empty; the mesh needs at least one node"]),
    ("nodes:\n", &["mesh.yaml:1:1: nodes: no nodes given; the mesh needs at least one node"]),
    ("nodes:\n  db1: {}\n", &["mesh.yaml:2:3: nodes: expected a list of nodes, found a mapping"]),
    ("nodes: db1\n", &["mesh.yaml:1:8: nodes: expected a list of nodes, found the string \"db1\""]),
    ("nodes: 5\npolicy:\n  - {from: a, to: b, allow: icmp}\n", &["mesh.yaml:1:8: nodes: expected a list of nodes, found the integer `5`"]),
    ("nodes:\n  - db1\n  - [a]\n", &[
        "mesh.yaml:2:5: nodes[0]: expected a mapping, found the string \"db1\"",
        "mesh.yaml:3:5: nodes[1]: expected a mapping, found a list",
    ]),
    ("nodes:\n  - endpoint: 192.0.2.1:51820\n", &[
        "mesh.yaml:2:5: nodes[0].name: missing required key `name`",
        "mesh.yaml:2:5: nodes[0].public_key: missing required key `public_key`",
        "mesh.yaml:2:5: nodes[0].address: missing required key `address`",
    ]),
    ("nodes:\n  - name:\n    public_key: @K1\n    address: 10.0.0.1/24\n", &["mesh.yaml:2:5: nodes[0].name: no value given; expected a node name"]),
    ("nodes:\n  - {name: a, public_key: @K1, address: 10.0.0.1/24, open: tcp/22}\n", &["mesh.yaml:2:101: nodes[0].open: expected a list, found the string \"tcp/22\"; write [tcp/22]"]),
    ("interface:\n  mtu: 1279\nnodes:\n  - {name: a, public_key: @K1, address: 'fd00::1/64'}\n", &["mesh.yaml:2:8: interface.mtu: mtu 1279 is too small for IPv6 (nodes[0].address, line 4 is fd00::1/64); IPv6 needs an MTU of at least 1280"]),
    // An IPv6 route needs it just as much.
    ("nodes:\n  - name: db1\n    public_key: @K1\n    address: 10.100.0.2/24\n  - name: app1\n    public_key: @K2\n    address: 10.100.0.3/24\n    routes: ['2001:db8::/64']\ninterface:\n  mtu: 1200\n", &["mesh.yaml:10:8: interface.mtu: mtu 1200 is too small for IPv6 (nodes[1].routes[0], line 8 is 2001:db8::/64); IPv6 needs an MTU of at least 1280"]),
    // The mesh prefix comes from the first valid address.
    ("nodes:\n  - name: db1\n    public_key: @K1\n    address: nonsense\n  - name: app1\n    public_key: @K2\n    address: 10.100.0.3/24\n  - {name: c, public_key: @K3, address: 10.9.0.1/24}\n", &[
        "mesh.yaml:4:14: nodes[0].address: \"nonsense\" is not an IP prefix like 192.168.50.0/24 or 2001:db8::/64",
        "mesh.yaml:8:82: nodes[2].address: \"10.9.0.1/24\" is outside the mesh prefix 10.100.0.0/24 (set by nodes[1].address, line 7)",
    ]),
    // The same address written two ways.
    ("nodes:\n  - {name: a, public_key: @K1, address: 'fd00::0001/64'}\n  - {name: b, public_key: @K2, address: 'fd00:0::1/64'}\n", &["mesh.yaml:3:82: nodes[1].address: address \"fd00::1/64\" is already used by nodes[0].address, line 2; every node needs its own address"]),
    // An invalid node name is reported once: not again where a policy names it.
    ("nodes:\n  - name: db1\n    public_key: @K1\n    address: 10.100.0.2/24\n  - name: App1\n    public_key: @K2\n    address: 10.100.0.3/24\npolicy:\n  - {from: App1, to: db1, allow: icmp}\n  - {from: app1, to: db1, allow: icmp}\n", &["mesh.yaml:5:11: nodes[1].name: node name \"App1\" contains 'A'; use only lowercase letters, digits, `-` and `_` (write \"app1\")"]),
];

#[test]
fn errors_in_whole_files() {
    check_cases(str::to_string, FILES);
}

/// Sections added to [`TWO`] from line 8.
#[rustfmt::skip]
const SECTIONS: &Cases = &[
    ("interface: meshd0\nadmin: [1]\npolicy: {from: a}\n", &[
        "mesh.yaml:8:12: interface: expected a mapping, found the string \"meshd0\"",
        "mesh.yaml:9:8: admin: expected a mapping, found a list",
        "mesh.yaml:10:9: policy: expected a list, found a mapping",
    ]),
    ("policy:\n  - from: db1\n", &[
        "mesh.yaml:9:5: policy[0].to: missing required key `to`",
        "mesh.yaml:9:5: policy[0].allow: missing required key `allow`",
    ]),
    ("policy:\n  - app1 -> db1\n", &["mesh.yaml:9:5: policy[0]: expected a mapping, found the string \"app1 -> db1\""]),
    ("policy:\n  - from: web1\n    to: [db1, db2, app1]\n    allow: icmp\n", &[
        "mesh.yaml:9:11: policy[0].from: policy names unknown node `web1`; the nodes are: db1, app1",
        "mesh.yaml:10:15: policy[0].to[1]: policy names unknown node `db2`; the nodes are: db1, app1",
    ]),
    ("policy:\n  - from: [db1, '*']\n    to: []\n    allow: []\n", &[
        "mesh.yaml:9:17: policy[0].from[1]: \"*\" stands for all nodes and cannot be part of a list; write it alone",
        "mesh.yaml:10:9: policy[0].to: the list of nodes is empty; name at least one node, or write \"*\" for all",
        "mesh.yaml:11:12: policy[0].allow: allow is empty; list what the rule lets through, e.g. [tcp/443, icmp], or write `any`",
    ]),
    ("policy:\n  - from: {db1: x}\n    to: ~\n    allow: {tcp: 22}\n", &[
        "mesh.yaml:9:11: policy[0].from: expected a node name, a list of node names, or \"*\", found a mapping",
        "mesh.yaml:10:5: policy[0].to: no value given; expected a node name, a list of node names, or \"*\"",
        "mesh.yaml:11:12: policy[0].allow: expected a list like [tcp/443, udp/53, icmp], found a mapping",
    ]),
];

#[test]
fn errors_in_sections() {
    check_cases(two_with, SECTIONS);
}

/// One line of `interface`, on line 9.
#[rustfmt::skip]
const INTERFACE: &Cases = &[
    ("name: meshd-0123456789", &["mesh.yaml:9:9: interface.name: interface name \"meshd-0123456789\" is 16 bytes long; Linux allows at most 15"]),
    ("name: mesh/0", &["mesh.yaml:9:9: interface.name: interface name \"mesh/0\" contains '/'; use only letters, digits, `_`, `.` and `-`"]),
    ("name: ''", &["mesh.yaml:9:9: interface.name: the interface name is empty; write e.g. meshd0"]),
    ("name: '..'", &["mesh.yaml:9:9: interface.name: \"..\" is not a valid interface name"]),
    ("listen_port: 0", &["mesh.yaml:9:16: interface.listen_port: listen_port 0 is out of range; it must be between 1 and 65535"]),
    ("listen_port: 70000", &["mesh.yaml:9:16: interface.listen_port: listen_port 70000 is out of range; it must be between 1 and 65535"]),
    ("listen_port: -1", &["mesh.yaml:9:16: interface.listen_port: listen_port -1 is out of range; it must be between 1 and 65535"]),
    ("listen_port: 123456789012345678901234567890123456789012345678901234567890", &["mesh.yaml:9:16: interface.listen_port: listen_port 123456789012345678901234567890123456789012345678901234567890 is out of range; it must be between 1 and 65535"]),
    ("listen_port: '51820'", &["mesh.yaml:9:16: interface.listen_port: expected an integer, found the string \"51820\""]),
    ("listen_port: 518.20", &["mesh.yaml:9:16: interface.listen_port: expected an integer, found the number `518.20`"]),
    ("listen_port: 1e3", &["mesh.yaml:9:16: interface.listen_port: expected an integer, found the number `1e3`"]),
    ("listen_port: port", &["mesh.yaml:9:16: interface.listen_port: expected an integer, found the string \"port\""]),
    ("listen_port: [1]", &["mesh.yaml:9:16: interface.listen_port: expected an integer, found a list"]),
    ("listen_port: yes", &["mesh.yaml:9:16: interface.listen_port: expected an integer, found the string \"yes\""]),
    ("listen_port: true", &["mesh.yaml:9:16: interface.listen_port: expected an integer, found the boolean `true`"]),
    ("mtu: 575", &["mesh.yaml:9:8: interface.mtu: mtu 575 is out of range; it must be between 576 and 65535"]),
    ("mtu: 65536", &["mesh.yaml:9:8: interface.mtu: mtu 65536 is out of range; it must be between 576 and 65535"]),
    ("metrics: localhost:9586", &["mesh.yaml:9:12: interface.metrics: metrics \"localhost:9586\" is not an IP address and port (like 127.0.0.1:9586 or [::1]:9586) nor `off`"]),
    ("metrics: 127.0.0.1:0", &["mesh.yaml:9:12: interface.metrics: metrics address \"127.0.0.1:0\" has port 0; give a real port, e.g. 127.0.0.1:9586"]),
    ("metrics: false", &["mesh.yaml:9:12: interface.metrics: expected an address like 127.0.0.1:9586, or `off`, found the boolean `false`; quote it if you mean the text"]),
    ("dns_refresh: 0", &["mesh.yaml:9:16: interface.dns_refresh: dns_refresh 0 is out of range; it must be between 1 and 86400"]),
    ("dns_refresh: 90000", &["mesh.yaml:9:16: interface.dns_refresh: dns_refresh 90000 is out of range; it must be between 1 and 86400"]),
    ("dns_refresh: 30s", &["mesh.yaml:9:16: interface.dns_refresh: expected an integer, found the string \"30s\""]),
    ("busy_poll: 1001", &["mesh.yaml:9:14: interface.busy_poll: busy_poll 1001 is out of range; it must be between 0 and 1000"]),
    ("busy_poll: -1", &["mesh.yaml:9:14: interface.busy_poll: busy_poll -1 is out of range; it must be between 0 and 1000"]),
    ("busy_poll: 50us", &["mesh.yaml:9:14: interface.busy_poll: expected an integer, found the string \"50us\""]),
    ("busy_poll: 0.5", &["mesh.yaml:9:14: interface.busy_poll: expected an integer, found the number `0.5`"]),
    ("quiet_cpu: 1024", &["mesh.yaml:9:14: interface.quiet_cpu: quiet_cpu \"1024\" is out of range; a CPU number is between 0 and 1023"]),
    ("quiet_cpu: 99999999999999999999", &["mesh.yaml:9:14: interface.quiet_cpu: quiet_cpu \"99999999999999999999\" is out of range; a CPU number is between 0 and 1023"]),
    ("quiet_cpu: -1", &["mesh.yaml:9:14: interface.quiet_cpu: quiet_cpu \"-1\" is not a CPU number (0, 1, ...), `auto` or `off`"]),
    ("quiet_cpu: 1.5", &["mesh.yaml:9:14: interface.quiet_cpu: quiet_cpu \"1.5\" is not a CPU number (0, 1, ...), `auto` or `off`"]),
    ("quiet_cpu: cpu0", &["mesh.yaml:9:14: interface.quiet_cpu: quiet_cpu \"cpu0\" is not a CPU number (0, 1, ...), `auto` or `off`"]),
    ("quiet_cpu: true", &["mesh.yaml:9:14: interface.quiet_cpu: expected a CPU number, `auto` or `off`, found the boolean `true`; quote it if you mean the text"]),
    ("quiet_cpu: [0, 1]", &["mesh.yaml:9:14: interface.quiet_cpu: expected a CPU number, `auto` or `off`, found a list"]),
    ("metrics_detail: peers", &["mesh.yaml:9:19: interface.metrics_detail: metrics_detail \"peers\" is not `node` or `peer`"]),
    ("metrics_detail: 1", &["mesh.yaml:9:19: interface.metrics_detail: metrics_detail \"1\" is not `node` or `peer`"]),
    ("metrics_detail: [peer]", &["mesh.yaml:9:19: interface.metrics_detail: expected `node` or `peer`, found a list"]),
];

#[test]
fn errors_in_interface() {
    check_cases(interface_with, INTERFACE);
}

/// One line of `admin`, on line 9.
#[rustfmt::skip]
const ADMIN: &Cases = &[
    ("ssh_from: 192.0.2.1/32", &["mesh.yaml:9:13: admin.ssh_from: expected a list, found the string \"192.0.2.1/32\"; write [192.0.2.1/32]"]),
    ("ssh_from: [192.0.2.10/24, nope, 192.0.2.1/33, 10.0.0.0/8]", &[
        "mesh.yaml:9:14: admin.ssh_from[0]: prefix \"192.0.2.10/24\" has host bits set; did you mean 192.0.2.0/24?",
        "mesh.yaml:9:29: admin.ssh_from[1]: \"nope\" is not an IP prefix like 192.168.50.0/24 or 2001:db8::/64",
        "mesh.yaml:9:35: admin.ssh_from[2]: \"192.0.2.1/33\" has an invalid prefix length \"33\"; it must be between 0 and 32",
    ]),
    ("icmp_rate: 0/second", &["mesh.yaml:9:14: admin.icmp_rate: rate \"0/second\" is zero; it must be at least 1"]),
    ("icmp_rate: 5/fortnight", &["mesh.yaml:9:14: admin.icmp_rate: rate \"5/fortnight\" has the unknown unit \"fortnight\"; expected second, minute or hour"]),
    ("icmp_rate: 5", &["mesh.yaml:9:14: admin.icmp_rate: rate \"5\" needs a unit; write e.g. 5/second (per second, minute or hour)"]),
    ("icmp_rate: many/second", &["mesh.yaml:9:14: admin.icmp_rate: rate \"many/second\": \"many\" is not a whole number of packets"]),
    ("icmp_rate: -1/second", &["mesh.yaml:9:14: admin.icmp_rate: rate \"-1/second\": \"-1\" is not a whole number of packets"]),
    ("icmp_rate: 99999999999/hour", &["mesh.yaml:9:14: admin.icmp_rate: rate \"99999999999/hour\" is too large"]),
];

#[test]
fn errors_in_admin() {
    check_cases(admin_with, ADMIN);
}

/// Node names, on line 2.
#[rustfmt::skip]
const NODE_NAMES: &Cases = &[
    ("DB1", &["mesh.yaml:2:11: nodes[0].name: node name \"DB1\" contains 'D'; use only lowercase letters, digits, `-` and `_` (write \"db1\")"]),
    ("-db", &["mesh.yaml:2:11: nodes[0].name: node name \"-db\" must start with a letter or a digit"]),
    ("_db", &["mesh.yaml:2:11: nodes[0].name: node name \"_db\" must start with a letter or a digit"]),
    ("db.1", &["mesh.yaml:2:11: nodes[0].name: node name \"db.1\" contains '.'; use only lowercase letters, digits, `-` and `_`"]),
    ("'db 1'", &["mesh.yaml:2:11: nodes[0].name: node name \"db 1\" contains ' '; use only lowercase letters, digits, `-` and `_`"]),
    ("''", &["mesh.yaml:2:11: nodes[0].name: the node name is empty"]),
    ("'~'", &["mesh.yaml:2:11: nodes[0].name: node name \"~\" contains '~'; use only lowercase letters, digits, `-` and `_`"]),
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &["mesh.yaml:2:11: nodes[0].name: node name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is 64 characters long; at most 63 are allowed"]),
    ("[a]", &["mesh.yaml:2:11: nodes[0].name: expected a node name, found a list"]),
    ("true", &["mesh.yaml:2:11: nodes[0].name: expected a node name, found the boolean `true`; quote it if you mean the text"]),
];

#[test]
fn errors_in_node_names() {
    check_cases(node_named, NODE_NAMES);
}

/// Public keys, on line 3.
#[rustfmt::skip]
const PUBLIC_KEYS: &Cases = &[
    ("not-base64!", &["mesh.yaml:3:17: nodes[0].public_key: public_key is not a WireGuard public key: not valid base64"]),
    ("AAAA", &["mesh.yaml:3:17: nodes[0].public_key: public_key is not a WireGuard public key: decodes to 3 bytes, a WireGuard key is 32 bytes (44 base64 characters)"]),
    ("\"<base64, as printed by `wg pubkey`>\"", &["mesh.yaml:3:17: nodes[0].public_key: public_key is not a WireGuard public key: not valid base64"]),
];

#[test]
fn errors_in_public_keys() {
    check_cases(node_keyed, PUBLIC_KEYS);
}

#[test]
fn a_rejected_key_is_not_echoed() {
    // It may be a private key in the wrong place.
    let errs = errors_of(&node_keyed("AAAA"));
    assert!(errs.iter().all(|e| !e.contains("AAAA")), "{errs:?}");
}

/// Node addresses, on line 4.
#[rustfmt::skip]
const ADDRESSES: &Cases = &[
    ("10.100.0.2", &["mesh.yaml:4:14: nodes[0].address: address \"10.100.0.2\" needs the mesh prefix length, e.g. 10.100.0.2/24"]),
    ("fd00::2", &["mesh.yaml:4:14: nodes[0].address: address \"fd00::2\" needs the mesh prefix length, e.g. fd00::2/64"]),
    ("10.100.0.0/24", &["mesh.yaml:4:14: nodes[0].address: address \"10.100.0.0/24\" is the network address of 10.100.0.0/24; pick a host address inside it"]),
    ("10.100.0.255/24", &["mesh.yaml:4:14: nodes[0].address: address \"10.100.0.255/24\" is the broadcast address of 10.100.0.0/24; pick a host address inside it"]),
    ("10.100.0.2/33", &["mesh.yaml:4:14: nodes[0].address: \"10.100.0.2/33\" has an invalid prefix length \"33\"; it must be between 0 and 32"]),
    ("10.100.0/24", &["mesh.yaml:4:14: nodes[0].address: \"10.100.0\" is not an IP address in \"10.100.0/24\""]),
    ("db1.local", &["mesh.yaml:4:14: nodes[0].address: \"db1.local\" is not an IP prefix like 192.168.50.0/24 or 2001:db8::/64"]),
    ("127.0.0.2/8", &["mesh.yaml:4:14: nodes[0].address: address \"127.0.0.2/8\" is not usable as a node address (unspecified, loopback or multicast)"]),
    ("0.0.0.0/0", &["mesh.yaml:4:14: nodes[0].address: address \"0.0.0.0/0\" is not usable as a node address (unspecified, loopback or multicast)"]),
    ("224.0.0.1/24", &["mesh.yaml:4:14: nodes[0].address: address \"224.0.0.1/24\" is not usable as a node address (unspecified, loopback or multicast)"]),
];

#[test]
fn errors_in_addresses() {
    check_cases(node_addressed, ADDRESSES);
}

/// app1's address in [`TWO`] (line 7), against db1's: the mesh prefix and duplicates.
#[rustfmt::skip]
const APP1_ADDRESSES: &Cases = &[
    ("10.101.0.3/24", &["mesh.yaml:7:14: nodes[1].address: \"10.101.0.3/24\" is outside the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4)"]),
    ("'fd00::3/64'", &["mesh.yaml:7:14: nodes[1].address: \"fd00::3/64\" is outside the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4)"]),
    ("10.100.0.3/16", &["mesh.yaml:7:14: nodes[1].address: \"10.100.0.3/16\" has prefix length /16 but the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4) is a /24; write 10.100.0.3/24"]),
    // Leading zeros in an octet: the same address as db1's.
    ("10.100.0.02/24", &["mesh.yaml:7:14: nodes[1].address: address \"10.100.0.2/24\" is already used by nodes[0].address, line 4; every node needs its own address"]),
];

#[test]
fn errors_in_addresses_across_nodes() {
    check_cases(app1_address, APP1_ADDRESSES);
}

/// A field of a node, on line 5.
#[rustfmt::skip]
const NODE_FIELDS: &Cases = &[
    ("endpoint: 192.0.2.2", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"192.0.2.2\" needs a port; write it like 192.0.2.2:51820"]),
    ("endpoint: 192.0.2.2:0", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"192.0.2.2:0\" has port 0; ports are 1 to 65535"]),
    ("endpoint: 192.0.2.2:70000", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"192.0.2.2:70000\" has port 70000; ports are 1 to 65535"]),
    ("endpoint: 192.0.2.2:http", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"192.0.2.2:http\": \"http\" is not a port number"]),
    ("endpoint: '2001:db8::1'", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"2001:db8::1\" needs a port; write it like [2001:db8::1]:51820"]),
    ("endpoint: '2001:db8::1:51820'", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"2001:db8::1:51820\" is not an address and port; write an IPv6 endpoint in brackets, e.g. [2001:db8::1]:51820"]),
    ("endpoint: '2001:db8::zz:51820'", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"2001:db8::zz:51820\" is not an address and port; write an IPv6 endpoint in brackets, e.g. [2001:db8::1]:51820"]),
    ("endpoint: '[2001:db8::1]'", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"[2001:db8::1]\" needs a port, e.g. [2001:db8::1]:51820"]),
    ("endpoint: '[192.0.2.1]:51820'", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"[192.0.2.1]:51820\": \"192.0.2.1\" is not an IPv6 address"]),
    ("endpoint: '[2001:db8::1:51820'", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"[2001:db8::1:51820\" is missing the closing `]`"]),
    ("endpoint: host.example.com", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"host.example.com\" needs a port, e.g. host.example.com:51820"]),
    ("endpoint: bad!host:51820", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"bad!host:51820\": host name \"bad!host\" contains '!'; use letters, digits, `-`, `_` and dots"]),
    ("endpoint: -bad.example:51820", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"-bad.example:51820\": host name \"-bad.example\" has a label starting or ending with `-`"]),
    ("endpoint: a..b:51820", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"a..b:51820\": \"a..b\" is not a valid host name (each dot-separated label has 1 to 63 characters)"]),
    ("endpoint: 1.2.3.400:51820", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"1.2.3.400:51820\": \"1.2.3.400\" is not a valid IPv4 address"]),
    ("endpoint: 0.0.0.0:51820", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \"0.0.0.0:51820\" is not a unicast address a peer can be reached at"]),
    ("endpoint: ':51820'", &["mesh.yaml:5:15: nodes[0].endpoint: endpoint \":51820\": the host name is empty"]),
    // Unquoted, a bracketed address is a YAML list: a hint says to quote it.
    ("endpoint: [2001:db8::1]:51820", &["mesh.yaml:5:28: (yaml): YAML syntax error: while parsing a block mapping, did not find expected key (quote a bracketed IPv6 address with a port: '[2001:db8::1]:51820')"]),
    ("keepalive: -1", &["mesh.yaml:5:16: nodes[0].keepalive: keepalive -1 is out of range; it must be between 0 and 65535"]),
    ("keepalive: 65536", &["mesh.yaml:5:16: nodes[0].keepalive: keepalive 65536 is out of range; it must be between 0 and 65535"]),
    ("keepalive: '25'", &["mesh.yaml:5:16: nodes[0].keepalive: expected an integer, found the string \"25\""]),
    ("keepalive: 2.5", &["mesh.yaml:5:16: nodes[0].keepalive: expected an integer, found the number `2.5`"]),
    ("keepalive: 25s", &["mesh.yaml:5:16: nodes[0].keepalive: expected an integer, found the string \"25s\""]),
    ("routes: [192.168.50.1/24, 10.0.0.0/33, '', 172.16.0.9]", &[
        "mesh.yaml:5:14: nodes[0].routes[0]: prefix \"192.168.50.1/24\" has host bits set; did you mean 192.168.50.0/24?",
        "mesh.yaml:5:31: nodes[0].routes[1]: \"10.0.0.0/33\" has an invalid prefix length \"33\"; it must be between 0 and 32",
        "mesh.yaml:5:44: nodes[0].routes[2]: \"\" is not an IP prefix like 192.168.50.0/24 or 2001:db8::/64",
    ]),
    ("routes: [10.0.0.0/8, 10.100.0.128/25, 0.0.0.0/0]", &[
        "mesh.yaml:5:14: nodes[0].routes[0]: route \"10.0.0.0/8\" overlaps the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4); the mesh addresses are routed to the nodes already",
        "mesh.yaml:5:26: nodes[0].routes[1]: route \"10.100.0.128/25\" overlaps the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4); the mesh addresses are routed to the nodes already",
        "mesh.yaml:5:43: nodes[0].routes[2]: route \"0.0.0.0/0\" overlaps the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4); the mesh addresses are routed to the nodes already",
    ]),
    ("open: [icmp, any, tcp/0, http, tcp/22]", &[
        "mesh.yaml:5:12: nodes[0].open[0]: icmp cannot be opened per node; echo requests are governed by admin.icmp_rate",
        "mesh.yaml:5:18: nodes[0].open[1]: `any` cannot be used in open; list the ports, e.g. [tcp/443, udp/53]",
        "mesh.yaml:5:23: nodes[0].open[2]: port 0 in \"tcp/0\" is out of range; ports are 1 to 65535",
        "mesh.yaml:5:30: nodes[0].open[3]: \"http\" is not a port spec; expected tcp/PORT, udp/PORT or tcp/LOW-HIGH",
    ]),
];

#[test]
fn errors_in_node_fields() {
    check_cases(node_with, NODE_FIELDS);
}

/// Bad entries of a rule's `allow`, and the message each gives: as a list element and as the
/// single scalar form alike.
#[rustfmt::skip]
const BAD_ALLOW: &[(&str, &str)] = &[
    ("tcp/70000", "port 70000 in \"tcp/70000\" is out of range; ports are 1 to 65535"),
    ("tcp/0", "port 0 in \"tcp/0\" is out of range; ports are 1 to 65535"),
    ("tcp/90-80", "port range \"tcp/90-80\" is reversed; write tcp/80-90"),
    ("sctp/1", "unknown protocol \"sctp\" in \"sctp/1\"; expected tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp or any"),
    ("tcp", "\"tcp\" needs a port, e.g. tcp/443 or tcp/8000-8100"),
    ("udp", "\"udp\" needs a port, e.g. udp/443 or udp/8000-8100"),
    ("icmp/8", "\"icmp/8\" is not valid: icmp takes no port; write icmp"),
    ("any/1", "\"any/1\" is not valid: any takes no port; write any"),
    ("tcp/abc", "\"abc\" in \"tcp/abc\" is not a port number"),
    ("tcp/", "\"tcp/\" is missing a port number"),
    ("tcp/1-", "\"tcp/1-\" is missing a port number"),
    ("tcp/1-2-3", "\"2-3\" in \"tcp/1-2-3\" is not a port number"),
    ("tcp/99999999999999999999", "port 99999999999999999999 in \"tcp/99999999999999999999\" is out of range; ports are 1 to 65535"),
    ("443", "\"443\" has no protocol; write tcp/443 or udp/443"),
    ("TCP/443", "unknown protocol \"TCP\" in \"TCP/443\"; expected tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp or any"),
    ("ssh", "\"ssh\" is not a port spec; expected tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp or any"),
];

#[test]
fn bad_port_specs_in_allow() {
    let mut failed = Vec::new();
    for (value, message) in BAD_ALLOW {
        let list = format!("policy:\n  - from: app1\n    to: db1\n    allow: [icmp, {value}]\n");
        let scalar = format!("policy:\n  - from: app1\n    to: db1\n    allow: {value}\n");
        let want = [
            [format!("mesh.yaml:11:19: policy[0].allow[1]: {message}")],
            [format!("mesh.yaml:11:12: policy[0].allow: {message}")],
        ];
        for (text, want) in [list, scalar].iter().zip(want) {
            let got = errors_of(&two_with(text));
            if got != want {
                failed.push(format!(
                    "case {value:?}:\n  want {want:#?}\n  got  {got:#?}"
                ));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn unknown_keys_everywhere() {
    check_errors(
        "\
nodez: []
interface:
  nmae: x
admin:
  ssh: []
nodes:
  - name: db1
    public_key: @K1
    address: 10.100.0.2/24
    endpont: 192.0.2.1:1
policy:
  - from: db1
    to: db1
    allow: icmp
    deny: any
",
        &[
            "mesh.yaml:1:1: nodez: unknown key `nodez`; expected one of: interface, admin, nodes, policy",
            "mesh.yaml:3:3: interface.nmae: unknown key `nmae`; expected one of: name, listen_port, mtu, metrics, dns_refresh, busy_poll, quiet_cpu, metrics_detail",
            "mesh.yaml:5:3: admin.ssh: unknown key `ssh`; expected one of: ssh_from, icmp_rate",
            "mesh.yaml:10:5: nodes[0].endpont: unknown key `endpont`; expected one of: name, public_key, address, endpoint, routes, keepalive, open",
            "mesh.yaml:15:5: policy[0].deny: unknown key `deny`; expected one of: from, to, allow",
        ],
    );
}

#[test]
fn duplicate_names_keys_and_addresses() {
    check_errors(
        "\
nodes:
  - name: db1
    public_key: @K1
    address: 10.100.0.2/24
  - name: db1
    public_key: @K1
    address: 10.100.0.2/24
",
        &[
            "mesh.yaml:5:11: nodes[1].name: node name \"db1\" is already used by nodes[0].name, line 2; node names must be unique",
            "mesh.yaml:6:17: nodes[1].public_key: this public key is already used by nodes[0].public_key, line 3, node `db1`; every node needs its own key pair",
            "mesh.yaml:7:14: nodes[1].address: address \"10.100.0.2/24\" is already used by nodes[0].address, line 4; every node needs its own address",
        ],
    );
}

#[test]
fn overlapping_routes_across_and_within_nodes() {
    check_errors(
        "\
nodes:
  - name: db1
    public_key: @K1
    address: 10.100.0.2/24
    routes: [192.168.50.0/24, 192.168.50.128/25]
  - name: app1
    public_key: @K2
    address: 10.100.0.3/24
    routes: [192.168.0.0/16, 172.16.0.0/12, 192.168.50.0/24]
",
        &[
            "mesh.yaml:5:31: nodes[0].routes[1]: route \"192.168.50.128/25\" overlaps 192.168.50.0/24 (nodes[0].routes[0], line 5); routes must not overlap",
            "mesh.yaml:9:14: nodes[1].routes[0]: route \"192.168.0.0/16\" overlaps 192.168.50.0/24 (nodes[0].routes[0], line 5); routes must not overlap",
            "mesh.yaml:9:45: nodes[1].routes[2]: route \"192.168.50.0/24\" is already given by nodes[0].routes[0], line 5; a subnet can be routed to one node only",
        ],
    );
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    check_errors(
        "\
policy:
  - from: ghost
    to: db1
    allow: [tcp/70000]
interface:
  mtu: 10
  colour: blue
nodes:
  - name: db1
    public_key: short
    address: 10.100.0.2/24
  - name: app1
    public_key: @K2
    address: 10.200.0.3/24
    endpoint: 192.0.2.3
",
        &[
            "mesh.yaml:2:11: policy[0].from: policy names unknown node `ghost`; the nodes are: db1, app1",
            "mesh.yaml:4:13: policy[0].allow[0]: port 70000 in \"tcp/70000\" is out of range; ports are 1 to 65535",
            "mesh.yaml:6:8: interface.mtu: mtu 10 is out of range; it must be between 576 and 65535",
            "mesh.yaml:7:3: interface.colour: unknown key `colour`; expected one of: name, listen_port, mtu, metrics, dns_refresh, busy_poll, quiet_cpu, metrics_detail",
            "mesh.yaml:10:17: nodes[0].public_key: public_key is not a WireGuard public key: not valid base64",
            "mesh.yaml:14:14: nodes[1].address: \"10.200.0.3/24\" is outside the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 11)",
            "mesh.yaml:15:15: nodes[1].endpoint: endpoint \"192.0.2.3\" needs a port; write it like 192.0.2.3:51820",
        ],
    );
}

#[test]
fn errors_display_with_file_line_column_and_key() {
    let e = parse("/etc/meshd/mesh.yaml", "nodes: []\n").expect_err("an empty list of nodes");
    assert_eq!(
        e.to_string(),
        "/etc/meshd/mesh.yaml:1:8: nodes: the list of nodes is empty; the mesh needs at least one node"
    );
}

// ---------------------------------------------------------------------------------------------
// Value parsers, called directly

#[test]
fn value_parsers_directly() {
    assert_eq!(parse_port_spec("udp/1-65535", ""), Ok(udp(1, 65535)));
    assert_eq!(parse_port_spec("tcp/0443", ""), Ok(tcp(443, 443)));
    assert_eq!(parse_allow(" icmp "), Ok(Allow::Icmp));
    assert!(parse_port_spec("tcp/65536", "").is_err());
    assert!(parse_port_spec("tcp/-1", "").is_err());
    assert_eq!(parse_prefix("10.0.0.0/8"), Ok(net("10.0.0.0/8")));
    assert_eq!(parse_prefix("::"), Ok(net("::/128")));
    assert!(parse_prefix("2001:db8::1/64").is_err());
    let host = Endpoint::Host {
        host: "vpn.example.org.".into(),
        port: 1,
    };
    assert_eq!(parse_endpoint("vpn.example.org.:1"), Ok(host));
}

// ---------------------------------------------------------------------------------------------
// Garbage never panics

#[test]
fn garbage_gives_errors_not_panics() {
    let deep_flow = format!("nodes: {}{}\n", "[".repeat(300), "]".repeat(300));
    let deep_map = format!("nodes: {}{}\n", "{a: ".repeat(300), "}".repeat(300));
    let deep_block: String = (0..400).map(|i| format!("{}- \n", " ".repeat(i))).collect();
    let deep_block_map: String = (0..400)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let wide_dashes = format!("nodes:\n  {}x\n", "- ".repeat(100_000));
    let inputs: Vec<String> = vec![
        String::new(),
        "\n\n\n".into(),
        "---".into(),
        "...".into(),
        "--- a\n--- b\n".into(),
        "[1, 2, 3]".into(),
        "- a\n- b".into(),
        "42".into(),
        "~".into(),
        "\u{0}\u{1}\u{2}\u{ff}\u{fffd}".into(),
        String::from_utf8_lossy(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x0a, 0x7f, 0x80, 0xfe]).into(),
        "\t\tnodes:\n\t- x".into(),
        "nodes: [".into(),
        "nodes: {".into(),
        "nodes: '".into(),
        "nodes: \"\\".into(),
        "? [a]\n: b".into(),
        "? a\n: b".into(),
        "nodes: &x [*x]".into(),
        "a: *b".into(),
        "nodes: !!binary AAAA".into(),
        "%YAML 1.2\n---\nnodes: []".into(),
        "%FOO\n".into(),
        "nodes:\n  - name: a\n  - : : :".into(),
        "nodes:\n  - {name: [[[[]]]], public_key: {a: {b: c}}, address: [1, [2]]}\n".into(),
        "nodes: |\n  text\n".into(),
        "nodes: >\n  folded\n".into(),
        "interface: {name: {}, listen_port: {}, mtu: [], metrics: []}\nadmin: {ssh_from: [[]], icmp_rate: []}\nnodes: [{}]\npolicy: [[], {}, 1, ~]\n".into(),
        deep_flow,
        deep_map,
        deep_block,
        deep_block_map,
        wide_dashes,
        "\u{feff}nodes: []".into(),
        "nodes:\r\n  - name: a\r\n".into(),
        "é: ü\nnodes: [{name: 名前, public_key: ключ, address: ١٠.٠.٠.١/٢٤}]".into(),
    ];
    for input in &inputs {
        match parse("junk.yaml", input) {
            Ok(c) => panic!("garbage {input:?} parsed as {c:?}"),
            Err(e) => assert!(!e.0.is_empty(), "no errors for {input:?}"),
        }
    }
}

/// A small deterministic generator (xorshift), to feed the parser many odd inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        let i = (self.next() % items.len() as u64) as usize;
        items.get(i).copied().unwrap_or("")
    }
}

#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "nodes", "interface", "admin", "policy", "name", "public_key", "address", "endpoint", "routes",
    "keepalive", "open", "from", "to", "allow", "mtu", "listen_port", "metrics", "ssh_from",
    "icmp_rate", ":", ": ", "- ", "\n", "\n  ", "\n    ", "[", "]", "{", "}", ",", "'", "\"", "*",
    "&", "!", "#", "?", "|", ">", "~", "null", "true", "0", "-1", "65536", "1.5", "0x1F",
    "10.100.0.2/24", "10.100.0.3/16", "fd00::1/64", "192.0.2.1:51820", "[::1]:1", "tcp/443",
    "tcp/90-80", "udp/1-65535", "icmp", "any", "off", "5/second", "db1", "app1",
    "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "\t", " ", "\u{0}", "é",
];

#[test]
fn random_yaml_like_input_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = (rng.next() % 60) as usize;
        let text: String = (0..len).map(|_| rng.pick(TOKENS)).collect();
        // Must return, with errors or a config; a panic fails the test.
        let _ = parse("fuzz.yaml", &text);
    }
}

#[test]
fn mutated_valid_config_never_panics() {
    let base = yaml(FULL_EXAMPLE);
    let bytes = base.as_bytes();
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let mut text = bytes.to_vec();
        for _ in 0..(1 + rng.next() % 4) {
            let at = (rng.next() % text.len().max(1) as u64) as usize;
            match rng.next() % 3 {
                0 => {
                    if at < text.len() {
                        text.remove(at);
                    }
                }
                1 => {
                    let junk = b"[]{}:-,'\"#&*!|> \n\t0x/";
                    let b = junk[(rng.next() % junk.len() as u64) as usize];
                    text.insert(at.min(text.len()), b);
                }
                _ => {
                    if let Some(b) = text.get_mut(at) {
                        *b = (rng.next() % 128) as u8;
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&text);
        if let Err(e) = parse("mutated.yaml", &text) {
            assert!(!e.0.is_empty());
            for err in &e.0 {
                assert!(!err.message.is_empty(), "{err}");
            }
        }
    }
}

#[test]
fn nesting_deep_enough_to_overflow_the_stack_is_refused_up_front() {
    let text = format!("nodes:\n  {}x\n", "- ".repeat(100_000));
    let want = "mesh.yaml:2:200003: (yaml): the file is too wide to parse safely: its lines could nest YAML up to 200264 levels deep, more than 10000; break long lines up";
    assert_eq!(errors_of(&text), [want]);
}

#[test]
fn deep_nesting_within_the_bound_parses_without_overflow() {
    // About 4,500 levels: far more than the caller's stack would take, fine on the parser's.
    let text = format!("nodes:\n  {}x\n", "- ".repeat(4_500));
    assert_eq!(
        errors_of(&text),
        ["mesh.yaml:2:5: nodes[0]: expected a mapping, found a list"]
    );
}

#[test]
fn the_public_entry_point_parses() {
    let c = crate::config::parse("mesh.yaml", &yaml(TWO));
    assert_eq!(c.map(|c| c.nodes.len()), Ok(2));
}

#[test]
fn a_thousand_nodes_parse_quickly() {
    let mut text = String::from("nodes:\n");
    for i in 0..1000u32 {
        let mut raw = [0u8; 32];
        raw[..4].copy_from_slice(&i.to_be_bytes());
        let (hi, lo) = ((i + 2) / 256, (i + 2) % 256);
        text.push_str(&format!(
            "  - name: node{i}\n    public_key: {}\n    address: 10.100.{hi}.{lo}/16\n    endpoint: node{i}.example.net:51820\n    routes: [192.168.{}.{}/30]\n",
            STANDARD.encode(raw),
            i / 64,
            (i % 64) * 4
        ));
    }
    text.push_str("policy:\n  - {from: '*', to: node0, allow: [tcp/22, icmp]}\n");
    let started = std::time::Instant::now();
    let c = ok(&text);
    assert_eq!(c.nodes.len(), 1000);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
}

// ---------------------------------------------------------------------------------------------
// Limits: size, values, errors

#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let mut text = yaml(TWO);
    text.push('#');
    text.push_str(&" ".repeat(MAX_CONFIG_BYTES - text.len()));
    let want = format!("mesh.yaml:1:1: (file): the file is {} bytes, more than the limit of {MAX_CONFIG_BYTES} bytes", MAX_CONFIG_BYTES + 1);
    assert_eq!(errors_of(&format!("{text}\n")), [want]);
    // At the limit exactly it parses.
    assert_eq!(text.len(), MAX_CONFIG_BYTES);
    assert_eq!(ok(&text).nodes.len(), 2);
}

#[test]
fn a_list_of_more_entries_than_the_limit_is_refused_at_the_entry_past_it() {
    // `nodes:` is line 1; the items start on line 2.
    let mut text = String::from("nodes:\n");
    text.push_str(&"- a\n".repeat(MAX_ENTRIES));
    let errs = parse("mesh.yaml", &text).err().map(|e| e.total());
    assert_eq!(errs, Some(MAX_ENTRIES), "at the limit: one error per item");
    text.push_str("- b\n");
    let want = format!("mesh.yaml:{}:3: (yaml): this list has more than 1048576 entries, more than a mesh config needs", MAX_ENTRIES + 2);
    assert_eq!(errors_of(&text), [want]);
    let mut map = String::from("interface:\n");
    for i in 0..=MAX_ENTRIES {
        map.push_str(&format!("  k{i}: v\n"));
    }
    let want = format!("mesh.yaml:{}:3: (yaml): this mapping has more than 1048576 entries, more than a mesh config needs", MAX_ENTRIES + 2);
    assert_eq!(errors_of(&map), [want]);
}

#[test]
fn a_file_of_more_values_than_the_limit_is_refused_at_the_value_past_it() {
    // Three lists of a million items: the top mapping, three keys and three lists are 7 values.
    let per_list = (MAX_YAML_VALUES - 7) / 3;
    let extra = MAX_YAML_VALUES - 7 - 3 * per_list;
    let mut text = String::new();
    for (key, n) in [
        ("nodes", per_list),
        ("policy", per_list),
        ("admin", per_list + extra),
    ] {
        text.push_str(key);
        text.push_str(":\n");
        text.push_str(&"- a\n".repeat(n));
    }
    let at_limit = parse("mesh.yaml", &text).err();
    assert!(
        at_limit.is_some_and(|e| !e.to_string().contains("YAML values")),
        "at the limit: type errors, not the limit"
    );
    text.push_str("- b\n");
    let want = format!("mesh.yaml:{}:3: (yaml): the file holds more than 3000000 YAML values (scalars, lists and mappings), more than a mesh config needs (about a dozen a node)", 3 + 3 * per_list + extra + 1);
    assert_eq!(errors_of(&text), [want]);
}

#[test]
fn a_file_of_more_mappings_than_the_limit_is_refused_at_the_mapping_past_it() {
    // The top mapping is the first; the items start on line 2.
    let mut text = String::from("nodes:\n");
    text.push_str(&"- {a: b}\n".repeat(MAX_MAPPINGS - 1));
    let at_limit = parse("mesh.yaml", &text).err();
    assert!(at_limit.is_some_and(|e| !e.to_string().contains("mappings,")));
    text.push_str("- {c: d}\n");
    let want = format!("mesh.yaml:{}:3: (yaml): the file holds more than 300000 mappings, more than a mesh config needs (one a node and one a policy rule)", MAX_MAPPINGS + 1);
    assert_eq!(errors_of(&text), [want]);
}

#[test]
fn errors_past_the_first_hundred_are_counted_not_kept() {
    let mut text = String::from("nodes:\n");
    text.push_str(&"- a\n".repeat(1000));
    let errs = parse("mesh.yaml", &text).expect_err("a list of scalars is not a list of nodes");
    assert_eq!(errs.0.len(), MAX_ERRORS);
    assert_eq!(errs.total(), 1000);
    assert_eq!(errs.0.last().map(|e| e.pos.line), Some(101));
    let shown = errs.to_string();
    let tail = &shown[shown.len().saturating_sub(200)..];
    assert!(
        shown.ends_with("... and 900 more errors (only the first 100 found are shown)"),
        "{tail}"
    );
}

/// A mesh of `n` nodes, each with a route, and a policy naming them all in one list.
fn big_mesh(n: usize) -> String {
    let mut t = String::from("nodes:\n");
    for i in 0..n {
        let k = STANDARD.encode([(i % 251) as u8, (i / 251) as u8, (i / 63001) as u8, 7].repeat(8));
        t.push_str(&format!(
            "  - name: n{i}\n    public_key: {k}\n    address: 2001:db8:ffff::{:x}:{:x}/64\n    routes: [2001:db8:{:x}:{:x}::/64]\n",
            (i + 1) >> 16,
            (i + 1) & 0xffff,
            i >> 16,
            i & 0xffff
        ));
    }
    t.push_str("policy:\n  - from:\n");
    for i in 0..n {
        t.push_str(&format!("      - n{i}\n"));
    }
    t.push_str("    to: n0\n    allow: [any]\n");
    t
}

#[test]
fn a_large_valid_mesh_parses_and_its_overlaps_are_found_without_pairwise_checks() {
    // 20,000 nodes: with a check of every route against every earlier one this alone is 200
    // million prefix comparisons; the sorted sweep makes it a few hundred thousand.
    let n = 20_000;
    let cfg = ok(&big_mesh(n));
    assert_eq!(cfg.nodes.len(), n);
    // The same mesh with the last route overlapping the first: found, with the first named.
    let text = big_mesh(n).replace(
        &format!("2001:db8:{:x}:{:x}::/64]", (n - 1) >> 16, (n - 1) & 0xffff),
        "2001:db8::/48]",
    );
    let want = format!("mesh.yaml:{}:14: nodes[{}].routes[0]: route \"2001:db8::/48\" overlaps 2001:db8::/64 (nodes[0].routes[0], line 5); routes must not overlap", 4 * n + 1, n - 1);
    assert_eq!(errors_of(&text), [want]);
}
