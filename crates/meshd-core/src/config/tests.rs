//! Unit tests of `mesh.yaml` parsing and validation: every error with its key path, line and
//! column; the example files; and garbage that must give errors, never a panic.

use super::parse;
use super::{parse_allow, parse_endpoint, parse_port_spec, parse_prefix};
use crate::config::{
    AdminConfig, Allow, ConfigError, Endpoint, InterfaceConfig, MeshConfig, Metrics, MetricsDetail,
    NodeConfig, PolicyRule, PortSpec, Pos, Protocol, QuietCpu, Rate, RateUnit, Selector,
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
    match s.parse() {
        Ok(n) => n,
        Err(e) => panic!("bad test prefix {s}: {e}"),
    }
}

fn sock(s: &str) -> SocketAddr {
    match s.parse() {
        Ok(a) => a,
        Err(e) => panic!("bad test socket address {s}: {e}"),
    }
}

fn ok(text: &str) -> MeshConfig {
    match parse("mesh.yaml", &yaml(text)) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse("mesh.yaml", &yaml(text)) {
        Ok(c) => panic!("expected errors, got a valid config: {c:?}"),
        Err(e) => e.0,
    }
}

/// The only error of `text`.
fn one(text: &str) -> ConfigError {
    let errs = errors(text);
    match errs.as_slice() {
        [e] => e.clone(),
        _ => panic!("expected exactly one error, got {}:\n{errs:#?}", errs.len()),
    }
}

/// Asserts an error's key path, position and a fragment of its message.
#[track_caller]
fn check(e: &ConfigError, key: &str, line: usize, column: usize, fragment: &str) {
    assert_eq!(e.key, key, "key path of {e}");
    assert_eq!(
        (e.pos.line, e.pos.column),
        (line, column),
        "position of {e}"
    );
    assert!(
        e.message.contains(fragment),
        "message of {e} should contain {fragment:?}"
    );
    assert_eq!(e.file, "mesh.yaml");
}

/// The only error of `text`, checked.
#[track_caller]
fn one_err(text: &str, key: &str, line: usize, column: usize, fragment: &str) {
    check(&one(text), key, line, column, fragment);
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

fn two_with(extra: &str) -> String {
    format!("{TWO}{extra}")
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
                open: vec![PortSpec {
                    protocol: Protocol::Tcp,
                    low: 443,
                    high: 443,
                }],
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
            allow: vec![
                Allow::Port(PortSpec {
                    protocol: Protocol::Tcp,
                    low: 3306,
                    high: 3306,
                }),
                Allow::Icmp,
            ],
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
    let config = match parse("mesh.example.yaml", text) {
        Ok(c) => c,
        Err(e) => panic!("config/mesh.example.yaml is invalid:\n{e}"),
    };
    let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["db1", "app1", "bastion"]);
    let bastion = config.node("bastion").map(|n| n.endpoint.clone());
    assert_eq!(
        bastion,
        Some(Some(Endpoint::Host {
            host: "bastion.example.net".into(),
            port: 51820
        }))
    );
    assert_eq!(config.node("app1").map(|n| n.keepalive), Some(Some(25)));
    assert_eq!(config.policy.len(), 3);
    assert_eq!(
        config.policy.last().map(|r| r.allow.clone()),
        Some(vec![Allow::Port(PortSpec {
            protocol: Protocol::Udp,
            low: 514,
            high: 514
        })])
    );
    assert!(config.warnings().is_empty());
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let c = ok("nodes:\n  - name: solo\n    public_key: @K1\n    address: 10.0.0.1/24\n");
    assert_eq!(
        c.interface,
        InterfaceConfig {
            name: "meshd0".into(),
            listen_port: 51820,
            mtu: 1420,
            metrics: Metrics::Listen(sock("127.0.0.1:9586")),
            dns_refresh: 30,
            busy_poll: 100,
            quiet_cpu: QuietCpu::Auto,
            metrics_detail: MetricsDetail::Node,
        }
    );
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

#[test]
fn empty_optional_sections_mean_defaults() {
    let c = ok(&two_with("interface:\nadmin: ~\npolicy:\n"));
    assert_eq!(c.interface.name, "meshd0");
    assert_eq!(c.admin.icmp_rate.count, 5);
    assert!(c.policy.is_empty());
    let c = ok(&two_with("interface: {}\nadmin: {}\npolicy: []\n"));
    assert_eq!(c.interface.listen_port, 51820);
}

#[test]
fn partial_interface_keeps_other_defaults() {
    let c = ok(&two_with(
        "interface:\n  listen_port: 0xCAFE\n  metrics: off\n",
    ));
    assert_eq!(c.interface.listen_port, 0xCAFE);
    assert_eq!(c.interface.metrics, Metrics::Off);
    assert_eq!(c.interface.mtu, 1420);
    assert_eq!(c.interface.name, "meshd0");
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
    assert_eq!(
        c.nodes[0].endpoint,
        Some(Endpoint::Addr(sock("[2001:db8::1]:51820")))
    );
    assert_eq!(
        c.nodes[0].routes,
        vec![net("fd00:200::/48"), net("2001:db8:5::7/128")]
    );
    assert_eq!(
        c.nodes[1].endpoint,
        Some(Endpoint::Host {
            host: "peer-b.example.com".into(),
            port: 4500
        })
    );
    assert_eq!(
        c.nodes[2].endpoint,
        Some(Endpoint::Addr(sock("198.51.100.7:51820")))
    );
}

#[test]
fn ssh_from_bare_addresses_are_host_prefixes() {
    let c = ok(&two_with(
        "admin:\n  ssh_from: [192.0.2.10, 2001:db8::10, 198.51.100.0/24]\n  icmp_rate: 10/minute\n",
    ));
    assert_eq!(
        c.admin.ssh_from,
        vec![
            net("192.0.2.10/32"),
            net("2001:db8::10/128"),
            net("198.51.100.0/24")
        ]
    );
    assert_eq!(
        c.admin.icmp_rate,
        Rate {
            count: 10,
            per: RateUnit::Minute
        }
    );
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
    assert_eq!(
        c.policy[1].allow,
        vec![
            Allow::Port(PortSpec {
                protocol: Protocol::Tcp,
                low: 8000,
                high: 8100
            }),
            Allow::Port(PortSpec {
                protocol: Protocol::Udp,
                low: 53,
                high: 53
            }),
            Allow::Icmp,
            Allow::Any
        ]
    );
}

#[test]
fn open_ports_parse() {
    let c = ok("nodes:\n  - {name: a, public_key: @K1, address: 10.0.0.1/24, open: [tcp/443, udp/1000-2000]}\n");
    assert_eq!(
        c.nodes[0].open,
        vec![
            PortSpec {
                protocol: Protocol::Tcp,
                low: 443,
                high: 443
            },
            PortSpec {
                protocol: Protocol::Udp,
                low: 1000,
                high: 2000
            }
        ]
    );
}

#[test]
fn numeric_node_names_are_names() {
    let c = ok("nodes:\n  - {name: 1, public_key: @K1, address: 10.0.0.1/24}\npolicy:\n  - {from: 1, to: '*', allow: icmp}\n");
    assert_eq!(c.nodes[0].name, "1");
    assert_eq!(c.policy[0].from, Selector::Nodes(vec!["1".into()]));
}

#[test]
fn ipv4_mesh_accepts_a_small_mtu() {
    let c = ok(&two_with("interface:\n  mtu: 576\n"));
    assert_eq!(c.interface.mtu, 576);
}

#[test]
fn slash_31_and_32_meshes_may_use_every_address() {
    let c = ok("nodes:\n  - {name: a, public_key: @K1, address: 10.0.0.0/31}\n  - {name: b, public_key: @K2, address: 10.0.0.1/31}\n");
    assert_eq!(c.nodes.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// YAML-level errors

#[test]
fn yaml_syntax_error_is_one_error_with_position() {
    let e = one("nodes:\n  - name: a\n   bad: [\n");
    assert_eq!(e.key, "(yaml)");
    assert!(e.message.starts_with("YAML syntax error"), "{e}");
    assert!(e.pos.line >= 2, "{e}");
}

#[test]
fn unclosed_flow_list_is_a_syntax_error() {
    let e = one("nodes: [\n");
    assert_eq!(e.key, "(yaml)");
    assert!(e.message.contains("YAML syntax error"), "{e}");
}

#[test]
fn duplicate_key_reports_the_second_with_its_path() {
    one_err(
        "nodes:\n  - name: db1\n    name: db2\n    public_key: @K1\n    address: 10.0.0.1/24\n",
        "nodes[0].name",
        3,
        5,
        "duplicate key `name`; it is already set at line 2, column 5",
    );
    one_err(
        "interface: {}\nnodes: []\ninterface: {}\n",
        "interface",
        3,
        1,
        "already set at line 1",
    );
}

#[test]
fn anchors_and_tags_are_refused() {
    let e = one("x: &a 1\nnodes: *a\n");
    assert!(e.message.contains("anchors"), "{e}");
    assert_eq!(e.pos.line, 1);
    let e = one("nodes: !!str x\n");
    assert!(e.message.contains("tags"), "{e}");
}

#[test]
fn top_level_list_or_scalar_is_an_error() {
    one_err(
        "- name: db1\n- name: app1\n",
        "(top level)",
        1,
        1,
        "must be a mapping",
    );
    one_err("just words\n", "(top level)", 1, 1, "must be a mapping");
    one_err("---\n", "(top level)", 2, 1, "must be a mapping");
}

#[test]
fn empty_file_needs_nodes() {
    let e = one("");
    check(&e, "nodes", 1, 1, "missing required key `nodes`");
    let e = one("# only a comment\n\n");
    assert_eq!(e.key, "nodes");
    assert!(e.message.contains("missing required key"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Structure: unknown keys, missing keys, types

#[test]
fn unknown_keys_everywhere() {
    let errs = errors(
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
    );
    assert_eq!(errs.len(), 5, "{errs:#?}");
    check(
        &errs[0],
        "nodez",
        1,
        1,
        "unknown key `nodez`; expected one of: interface, admin, nodes, policy",
    );
    check(
        &errs[1],
        "interface.nmae",
        3,
        3,
        "unknown key `nmae`; expected one of: name, listen_port, mtu, metrics, dns_refresh, busy_poll, quiet_cpu, metrics_detail",
    );
    check(
        &errs[2],
        "admin.ssh",
        5,
        3,
        "expected one of: ssh_from, icmp_rate",
    );
    check(
        &errs[3],
        "nodes[0].endpont",
        10,
        5,
        "expected one of: name, public_key, address, endpoint, routes, keepalive, open",
    );
    check(
        &errs[4],
        "policy[0].deny",
        15,
        5,
        "unknown key `deny`; expected one of: from, to, allow",
    );
}

#[test]
fn missing_node_keys_are_reported_at_the_node() {
    let errs = errors("nodes:\n  - endpoint: 192.0.2.1:51820\n");
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "nodes[0].name",
        2,
        5,
        "missing required key `name`",
    );
    check(
        &errs[1],
        "nodes[0].public_key",
        2,
        5,
        "missing required key `public_key`",
    );
    check(
        &errs[2],
        "nodes[0].address",
        2,
        5,
        "missing required key `address`",
    );
}

#[test]
fn missing_policy_keys_are_reported_at_the_rule() {
    let errs = errors(&two_with("policy:\n  - from: db1\n"));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    check(&errs[0], "policy[0].to", 9, 5, "missing required key `to`");
    check(
        &errs[1],
        "policy[0].allow",
        9,
        5,
        "missing required key `allow`",
    );
}

#[test]
fn required_key_without_value() {
    one_err(
        "nodes:\n  - name:\n    public_key: @K1\n    address: 10.0.0.1/24\n",
        "nodes[0].name",
        2,
        5,
        "no value given; expected a node name",
    );
}

#[test]
fn nodes_must_be_a_non_empty_list() {
    one_err("nodes: []\n", "nodes", 1, 8, "the list of nodes is empty");
    one_err("nodes:\n", "nodes", 1, 1, "no nodes given");
    one_err(
        "nodes:\n  db1: {}\n",
        "nodes",
        2,
        3,
        "expected a list of nodes, found a mapping",
    );
    one_err(
        "nodes: db1\n",
        "nodes",
        1,
        8,
        "expected a list of nodes, found the string \"db1\"",
    );
}

#[test]
fn sections_of_the_wrong_type() {
    let errs = errors(&two_with(
        "interface: meshd0\nadmin: [1]\npolicy: {from: a}\n",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "interface",
        8,
        12,
        "expected a mapping, found the string \"meshd0\"",
    );
    check(&errs[1], "admin", 9, 8, "expected a mapping, found a list");
    check(
        &errs[2],
        "policy",
        10,
        9,
        "expected a list, found a mapping",
    );
}

#[test]
fn node_entry_of_the_wrong_type() {
    let errs = errors("nodes:\n  - db1\n  - [a]\n");
    assert_eq!(errs.len(), 2, "{errs:#?}");
    check(
        &errs[0],
        "nodes[0]",
        2,
        5,
        "expected a mapping, found the string \"db1\"",
    );
    check(
        &errs[1],
        "nodes[1]",
        3,
        5,
        "expected a mapping, found a list",
    );
}

#[test]
fn scalar_where_a_list_is_expected_suggests_brackets() {
    one_err(
        &two_with("admin:\n  ssh_from: 192.0.2.1/32\n"),
        "admin.ssh_from",
        9,
        13,
        "expected a list, found the string \"192.0.2.1/32\"; write [192.0.2.1/32]",
    );
    one_err(
        "nodes:\n  - {name: a, public_key: @K1, address: 10.0.0.1/24, open: tcp/22}\n",
        "nodes[0].open",
        2,
        101,
        "write [tcp/22]",
    );
}

#[test]
fn list_where_a_scalar_is_expected() {
    one_err(
        "nodes:\n  - name: [a]\n    public_key: @K1\n    address: 10.0.0.1/24\n",
        "nodes[0].name",
        2,
        11,
        "expected a node name, found a list",
    );
}

#[test]
fn booleans_are_not_names() {
    one_err(
        "nodes:\n  - name: true\n    public_key: @K1\n    address: 10.0.0.1/24\n",
        "nodes[0].name",
        2,
        11,
        "found the boolean `true`; quote it",
    );
}

// ---------------------------------------------------------------------------------------------
// interface

#[test]
fn interface_name_rules() {
    one_err(
        &two_with("interface:\n  name: meshd-0123456789\n"),
        "interface.name",
        9,
        9,
        "interface name \"meshd-0123456789\" is 16 bytes long; Linux allows at most 15",
    );
    one_err(
        &two_with("interface:\n  name: mesh/0\n"),
        "interface.name",
        9,
        9,
        "contains '/'",
    );
    one_err(
        &two_with("interface:\n  name: ''\n"),
        "interface.name",
        9,
        9,
        "the interface name is empty",
    );
    one_err(
        &two_with("interface:\n  name: '..'\n"),
        "interface.name",
        9,
        9,
        "not a valid interface name",
    );
    let c = ok(&two_with("interface:\n  name: wg_mesh.0-a\n"));
    assert_eq!(c.interface.name, "wg_mesh.0-a");
}

#[test]
fn busy_poll_is_whole_microseconds_up_to_a_millisecond() {
    assert_eq!(
        ok(&two_with("interface:\n  busy_poll: 0\n"))
            .interface
            .busy_poll,
        0
    );
    assert_eq!(
        ok(&two_with("interface:\n  busy_poll: 1000\n"))
            .interface
            .busy_poll,
        1000
    );
    for (value, fragment) in [
        (
            "1001",
            "busy_poll 1001 is out of range; it must be between 0 and 1000",
        ),
        ("-1", "busy_poll -1 is out of range"),
        ("50us", "expected an integer, found the string \"50us\""),
        ("0.5", "expected an integer"),
    ] {
        one_err(
            &two_with(&format!("interface:\n  busy_poll: {value}\n")),
            "interface.busy_poll",
            9,
            14,
            fragment,
        );
    }
}

#[test]
fn metrics_detail_is_node_or_peer() {
    let detail = |yaml: &str| ok(&two_with(yaml)).interface.metrics_detail;
    assert_eq!(detail(""), MetricsDetail::Node);
    assert_eq!(
        detail("interface:\n  metrics_detail: node\n"),
        MetricsDetail::Node
    );
    assert_eq!(
        detail("interface:\n  metrics_detail: peer\n"),
        MetricsDetail::Peer
    );
    for (value, fragment) in [
        ("peers", "metrics_detail \"peers\" is not `node` or `peer`"),
        ("1", "metrics_detail \"1\" is not `node` or `peer`"),
        ("[peer]", "expected `node` or `peer`"),
    ] {
        one_err(
            &two_with(&format!("interface:\n  metrics_detail: {value}\n")),
            "interface.metrics_detail",
            9,
            19,
            fragment,
        );
    }
}

#[test]
fn quiet_cpu_is_auto_off_or_a_cpu_number() {
    let cpu = |yaml: &str| ok(&two_with(yaml)).interface.quiet_cpu;
    assert_eq!(cpu(""), QuietCpu::Auto);
    assert_eq!(cpu("interface:\n  quiet_cpu: auto\n"), QuietCpu::Auto);
    assert_eq!(cpu("interface:\n  quiet_cpu: off\n"), QuietCpu::Off);
    assert_eq!(cpu("interface:\n  quiet_cpu: 0\n"), QuietCpu::Cpu(0));
    assert_eq!(cpu("interface:\n  quiet_cpu: 1023\n"), QuietCpu::Cpu(1023));
    for (value, fragment) in [
        (
            "1024",
            "quiet_cpu \"1024\" is out of range; a CPU number is between 0 and 1023",
        ),
        ("99999999999999999999", "is out of range"),
        (
            "-1",
            "quiet_cpu \"-1\" is not a CPU number (0, 1, ...), `auto` or `off`",
        ),
        ("1.5", "is not a CPU number"),
        ("cpu0", "is not a CPU number"),
        ("true", "found the boolean `true`"),
        ("[0, 1]", "expected a CPU number, `auto` or `off`"),
    ] {
        one_err(
            &two_with(&format!("interface:\n  quiet_cpu: {value}\n")),
            "interface.quiet_cpu",
            9,
            14,
            fragment,
        );
    }
}

#[test]
fn dns_refresh_is_whole_seconds_from_1_to_a_day() {
    let c = ok(&two_with("interface:\n  dns_refresh: 120\n"));
    assert_eq!(c.interface.dns_refresh, 120);
    for (value, fragment) in [
        (
            "0",
            "dns_refresh 0 is out of range; it must be between 1 and 86400",
        ),
        ("90000", "dns_refresh 90000 is out of range"),
        ("30s", "expected an integer, found the string \"30s\""),
    ] {
        one_err(
            &two_with(&format!("interface:\n  dns_refresh: {value}\n")),
            "interface.dns_refresh",
            9,
            16,
            fragment,
        );
    }
}

#[test]
fn listen_port_must_be_an_integer_in_range() {
    let cases = [
        (
            "0",
            "listen_port 0 is out of range; it must be between 1 and 65535",
        ),
        ("70000", "listen_port 70000 is out of range"),
        ("-1", "listen_port -1 is out of range"),
        (
            "123456789012345678901234567890123456789012345678901234567890",
            "is out of range",
        ),
        ("'51820'", "expected an integer, found the string \"51820\""),
        ("518.20", "expected an integer, found the number `518.20`"),
        ("1e3", "expected an integer, found the number `1e3`"),
        ("port", "expected an integer, found the string \"port\""),
        ("[1]", "expected an integer, found a list"),
        ("yes", "expected an integer, found the string \"yes\""),
        ("true", "expected an integer, found the boolean `true`"),
    ];
    for (value, fragment) in cases {
        one_err(
            &two_with(&format!("interface:\n  listen_port: {value}\n")),
            "interface.listen_port",
            9,
            16,
            fragment,
        );
    }
}

#[test]
fn mtu_range() {
    one_err(
        &two_with("interface:\n  mtu: 575\n"),
        "interface.mtu",
        9,
        8,
        "mtu 575 is out of range; it must be between 576 and 65535",
    );
    one_err(
        &two_with("interface:\n  mtu: 65536\n"),
        "interface.mtu",
        9,
        8,
        "mtu 65536 is out of range",
    );
}

#[test]
fn mtu_below_1280_is_refused_with_ipv6() {
    one_err(
        "interface:\n  mtu: 1279\nnodes:\n  - {name: a, public_key: @K1, address: 'fd00::1/64'}\n",
        "interface.mtu",
        2,
        8,
        "mtu 1279 is too small for IPv6 (nodes[0].address, line 4 is fd00::1/64); IPv6 needs an MTU of at least 1280",
    );
    // An IPv6 route needs it just as much.
    one_err(
        &two_with("interface:\n  mtu: 1200\n").replace(
            "address: 10.100.0.3/24",
            "address: 10.100.0.3/24\n    routes: ['2001:db8::/64']",
        ),
        "interface.mtu",
        10,
        8,
        "too small for IPv6 (nodes[1].routes[0], line 8",
    );
}

#[test]
fn metrics_forms() {
    one_err(
        &two_with("interface:\n  metrics: localhost:9586\n"),
        "interface.metrics",
        9,
        12,
        "metrics \"localhost:9586\" is not an IP address and port",
    );
    one_err(
        &two_with("interface:\n  metrics: 127.0.0.1:0\n"),
        "interface.metrics",
        9,
        12,
        "has port 0",
    );
    one_err(
        &two_with("interface:\n  metrics: false\n"),
        "interface.metrics",
        9,
        12,
        "found the boolean `false`",
    );
    let c = ok(&two_with("interface:\n  metrics: 0.0.0.0:9100\n"));
    assert_eq!(c.interface.metrics, Metrics::Listen(sock("0.0.0.0:9100")));
}

// ---------------------------------------------------------------------------------------------
// admin

#[test]
fn ssh_from_errors() {
    let errs = errors(&two_with(
        "admin:\n  ssh_from: [192.0.2.10/24, nope, 192.0.2.1/33, 10.0.0.0/8]\n",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "admin.ssh_from[0]",
        9,
        14,
        "prefix \"192.0.2.10/24\" has host bits set; did you mean 192.0.2.0/24?",
    );
    check(
        &errs[1],
        "admin.ssh_from[1]",
        9,
        29,
        "\"nope\" is not an IP prefix",
    );
    check(
        &errs[2],
        "admin.ssh_from[2]",
        9,
        35,
        "invalid prefix length \"33\"; it must be between 0 and 32",
    );
}

#[test]
fn icmp_rate_errors() {
    let cases = [
        (
            "0/second",
            "rate \"0/second\" is zero; it must be at least 1",
        ),
        (
            "5/fortnight",
            "unknown unit \"fortnight\"; expected second, minute or hour",
        ),
        ("5", "rate \"5\" needs a unit"),
        ("many/second", "\"many\" is not a whole number"),
        ("-1/second", "\"-1\" is not a whole number"),
        ("99999999999/hour", "is too large"),
    ];
    for (value, fragment) in cases {
        one_err(
            &two_with(&format!("admin:\n  icmp_rate: {value}\n")),
            "admin.icmp_rate",
            9,
            14,
            fragment,
        );
    }
    let c = ok(&two_with("admin:\n  icmp_rate: 100/hour\n"));
    assert_eq!(
        c.admin.icmp_rate,
        Rate {
            count: 100,
            per: RateUnit::Hour
        }
    );
}

// ---------------------------------------------------------------------------------------------
// nodes: per-field rules

fn node_with(field: &str) -> String {
    format!("nodes:\n  - name: db1\n    public_key: @K1\n    address: 10.100.0.2/24\n    {field}\n")
}

#[test]
fn node_name_rules() {
    let cases = [
        ("DB1", "node name \"DB1\" contains 'D'; use only lowercase letters, digits, `-` and `_` (write \"db1\")"),
        ("-db", "node name \"-db\" must start with a letter or a digit"),
        ("_db", "must start with a letter or a digit"),
        ("db.1", "contains '.'"),
        ("'db 1'", "contains ' '"),
        ("''", "the node name is empty"),
        ("'~'", "contains '~'"),
    ];
    for (value, fragment) in cases {
        one_err(
            &format!("nodes:\n  - name: {value}\n    public_key: @K1\n    address: 10.0.0.1/24\n"),
            "nodes[0].name",
            2,
            11,
            fragment,
        );
    }
    let long = "a".repeat(64);
    one_err(
        &format!("nodes:\n  - name: {long}\n    public_key: @K1\n    address: 10.0.0.1/24\n"),
        "nodes[0].name",
        2,
        11,
        "is 64 characters long; at most 63",
    );
    let c = ok(&format!(
        "nodes:\n  - name: {}\n    public_key: @K1\n    address: 10.0.0.1/24\n",
        "a".repeat(63)
    ));
    assert_eq!(c.nodes[0].name.len(), 63);
}

#[test]
fn public_key_rules() {
    one_err(
        "nodes:\n  - name: a\n    public_key: not-base64!\n    address: 10.0.0.1/24\n",
        "nodes[0].public_key",
        3,
        17,
        "public_key is not a WireGuard public key: not valid base64",
    );
    let e = one("nodes:\n  - name: a\n    public_key: AAAA\n    address: 10.0.0.1/24\n");
    check(
        &e,
        "nodes[0].public_key",
        3,
        17,
        "decodes to 3 bytes, a WireGuard key is 32 bytes",
    );
    // The text of a rejected key is never echoed (it may be a private key in the wrong place).
    assert!(!e.message.contains("AAAA"), "{e}");
    one_err(
        "nodes:\n  - name: a\n    public_key: \"<base64, as printed by `wg pubkey`>\"\n    address: 10.0.0.1/24\n",
        "nodes[0].public_key",
        3,
        17,
        "not valid base64",
    );
}

#[test]
fn address_rules() {
    let cases = [
        (
            "10.100.0.2",
            "address \"10.100.0.2\" needs the mesh prefix length, e.g. 10.100.0.2/24",
        ),
        (
            "fd00::2",
            "address \"fd00::2\" needs the mesh prefix length, e.g. fd00::2/64",
        ),
        (
            "10.100.0.0/24",
            "address \"10.100.0.0/24\" is the network address of 10.100.0.0/24",
        ),
        (
            "10.100.0.255/24",
            "is the broadcast address of 10.100.0.0/24",
        ),
        ("10.100.0.2/33", "invalid prefix length \"33\""),
        (
            "10.100.0/24",
            "\"10.100.0\" is not an IP address in \"10.100.0/24\"",
        ),
        ("db1.local", "is not an IP prefix"),
        ("127.0.0.2/8", "not usable as a node address"),
        ("0.0.0.0/0", "not usable as a node address"),
        ("224.0.0.1/24", "not usable as a node address"),
    ];
    for (value, fragment) in cases {
        one_err(
            &format!("nodes:\n  - name: a\n    public_key: @K1\n    address: {value}\n"),
            "nodes[0].address",
            4,
            14,
            fragment,
        );
    }
}

#[test]
fn endpoint_rules() {
    let cases = [
        (
            "192.0.2.2",
            "endpoint \"192.0.2.2\" needs a port; write it like 192.0.2.2:51820",
        ),
        (
            "192.0.2.2:0",
            "endpoint \"192.0.2.2:0\" has port 0; ports are 1 to 65535",
        ),
        ("192.0.2.2:70000", "has port 70000; ports are 1 to 65535"),
        ("192.0.2.2:http", "\"http\" is not a port number"),
        (
            "'2001:db8::1'",
            "needs a port; write it like [2001:db8::1]:51820",
        ),
        ("'2001:db8::1:51820'", "write an IPv6 endpoint in brackets"),
        ("'2001:db8::zz:51820'", "write an IPv6 endpoint in brackets"),
        ("'[2001:db8::1]'", "needs a port, e.g. [2001:db8::1]:51820"),
        (
            "'[192.0.2.1]:51820'",
            "\"192.0.2.1\" is not an IPv6 address",
        ),
        ("'[2001:db8::1:51820'", "missing the closing `]`"),
        (
            "host.example.com",
            "needs a port, e.g. host.example.com:51820",
        ),
        ("bad!host:51820", "host name \"bad!host\" contains '!'"),
        ("-bad.example:51820", "label starting or ending with `-`"),
        ("a..b:51820", "is not a valid host name"),
        (
            "1.2.3.400:51820",
            "\"1.2.3.400\" is not a valid IPv4 address",
        ),
        ("0.0.0.0:51820", "not a unicast address"),
        ("':51820'", "the host name is empty"),
    ];
    for (value, fragment) in cases {
        one_err(
            &node_with(&format!("endpoint: {value}")),
            "nodes[0].endpoint",
            5,
            15,
            fragment,
        );
    }
}

#[test]
fn routes_rules() {
    let errs = errors(&node_with(
        "routes: [192.168.50.1/24, 10.0.0.0/33, '', 172.16.0.9]",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "nodes[0].routes[0]",
        5,
        14,
        "prefix \"192.168.50.1/24\" has host bits set; did you mean 192.168.50.0/24?",
    );
    check(
        &errs[1],
        "nodes[0].routes[1]",
        5,
        31,
        "invalid prefix length",
    );
    check(&errs[2], "nodes[0].routes[2]", 5, 44, "is not an IP prefix");
    let c = ok(&node_with("routes: [172.16.0.9]"));
    assert_eq!(c.nodes[0].routes, vec![net("172.16.0.9/32")]);
}

#[test]
fn keepalive_rules() {
    let cases = [
        (
            "-1",
            "keepalive -1 is out of range; it must be between 0 and 65535",
        ),
        ("65536", "keepalive 65536 is out of range"),
        ("'25'", "expected an integer, found the string \"25\""),
        ("2.5", "expected an integer, found the number `2.5`"),
        ("25s", "expected an integer, found the string \"25s\""),
    ];
    for (value, fragment) in cases {
        one_err(
            &node_with(&format!("keepalive: {value}")),
            "nodes[0].keepalive",
            5,
            16,
            fragment,
        );
    }
}

#[test]
fn open_rules() {
    let errs = errors(&node_with("open: [icmp, any, tcp/0, http, tcp/22]"));
    assert_eq!(errs.len(), 4, "{errs:#?}");
    check(
        &errs[0],
        "nodes[0].open[0]",
        5,
        12,
        "icmp cannot be opened per node; echo requests are governed by admin.icmp_rate",
    );
    check(
        &errs[1],
        "nodes[0].open[1]",
        5,
        18,
        "`any` cannot be used in open",
    );
    check(
        &errs[2],
        "nodes[0].open[2]",
        5,
        23,
        "port 0 in \"tcp/0\" is out of range; ports are 1 to 65535",
    );
    check(
        &errs[3],
        "nodes[0].open[3]",
        5,
        30,
        "\"http\" is not a port spec",
    );
}

// ---------------------------------------------------------------------------------------------
// nodes: rules across nodes

#[test]
fn address_outside_the_mesh_prefix() {
    let text = TWO.replace("10.100.0.3/24", "10.101.0.3/24");
    one_err(
        &text,
        "nodes[1].address",
        7,
        14,
        "\"10.101.0.3/24\" is outside the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4)",
    );
}

#[test]
fn address_of_the_other_family_is_outside() {
    let text = TWO.replace("10.100.0.3/24", "'fd00::3/64'");
    one_err(
        &text,
        "nodes[1].address",
        7,
        14,
        "is outside the mesh prefix 10.100.0.0/24",
    );
}

#[test]
fn address_with_another_prefix_length() {
    let text = TWO.replace("10.100.0.3/24", "10.100.0.3/16");
    one_err(
        &text,
        "nodes[1].address",
        7,
        14,
        "\"10.100.0.3/16\" has prefix length /16 but the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4) is a /24; write 10.100.0.3/24",
    );
}

#[test]
fn mesh_prefix_comes_from_the_first_valid_address() {
    let text = TWO.replace("10.100.0.2/24", "nonsense").replace(
        "10.100.0.3/24",
        "10.100.0.3/24\n  - {name: c, public_key: @K3, address: 10.9.0.1/24}",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    check(&errs[0], "nodes[0].address", 4, 14, "is not an IP prefix");
    check(
        &errs[1],
        "nodes[2].address",
        8,
        82,
        "outside the mesh prefix 10.100.0.0/24 (set by nodes[1].address, line 7)",
    );
}

#[test]
fn duplicate_names_keys_and_addresses() {
    let errs = errors(
        "\
nodes:
  - name: db1
    public_key: @K1
    address: 10.100.0.2/24
  - name: db1
    public_key: @K1
    address: 10.100.0.2/24
",
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "nodes[1].name",
        5,
        11,
        "node name \"db1\" is already used by nodes[0].name, line 2",
    );
    check(
        &errs[1],
        "nodes[1].public_key",
        6,
        17,
        "this public key is already used by nodes[0].public_key, line 3, node `db1`",
    );
    check(
        &errs[2],
        "nodes[1].address",
        7,
        14,
        "address \"10.100.0.2/24\" is already used by nodes[0].address, line 4",
    );
}

#[test]
fn duplicate_address_is_the_same_ip() {
    // Same IP, written differently: still the same address.
    let text = TWO.replace("10.100.0.3/24", "10.100.0.02/24");
    // Rust does not accept leading zeros in IPv4 octets, so this is a syntax error instead;
    // use IPv6 spellings to show the comparison is on the address.
    assert_eq!(errors(&text).len(), 1);
    let errs = errors(
        "nodes:\n  - {name: a, public_key: @K1, address: 'fd00::0001/64'}\n  - {name: b, public_key: @K2, address: 'fd00:0::1/64'}\n",
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    check(
        &errs[0],
        "nodes[1].address",
        3,
        82,
        "is already used by nodes[0].address, line 2",
    );
}

#[test]
fn overlapping_routes_across_and_within_nodes() {
    let errs = errors(
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
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "nodes[0].routes[1]",
        5,
        31,
        "route \"192.168.50.128/25\" overlaps 192.168.50.0/24 (nodes[0].routes[0], line 5); routes must not overlap",
    );
    check(
        &errs[1],
        "nodes[1].routes[0]",
        9,
        14,
        "route \"192.168.0.0/16\" overlaps 192.168.50.0/24 (nodes[0].routes[0], line 5)",
    );
    check(
        &errs[2],
        "nodes[1].routes[2]",
        9,
        45,
        "route \"192.168.50.0/24\" is already given by nodes[0].routes[0], line 5",
    );
}

#[test]
fn route_overlapping_the_mesh_prefix() {
    let errs = errors(&node_with(
        "routes: [10.0.0.0/8, 10.100.0.128/25, 0.0.0.0/0]",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "nodes[0].routes[0]",
        5,
        14,
        "route \"10.0.0.0/8\" overlaps the mesh prefix 10.100.0.0/24 (set by nodes[0].address, line 4)",
    );
    check(
        &errs[1],
        "nodes[0].routes[1]",
        5,
        26,
        "overlaps the mesh prefix",
    );
    check(
        &errs[2],
        "nodes[0].routes[2]",
        5,
        43,
        "overlaps the mesh prefix",
    );
}

#[test]
fn routes_of_other_families_do_not_overlap() {
    let c = ok(&node_with("routes: [192.168.0.0/16, '2001:db8::/32']"));
    assert_eq!(c.nodes[0].routes.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// policy

#[test]
fn policy_names_unknown_nodes() {
    let errs = errors(&two_with(
        "policy:\n  - from: web1\n    to: [db1, db2, app1]\n    allow: icmp\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    check(
        &errs[0],
        "policy[0].from",
        9,
        11,
        "policy names unknown node `web1`; the nodes are: db1, app1",
    );
    check(
        &errs[1],
        "policy[0].to[1]",
        10,
        15,
        "policy names unknown node `db2`",
    );
}

#[test]
fn invalid_node_name_is_not_reported_twice() {
    let text = TWO.replace("name: app1", "name: App1")
        + "policy:\n  - {from: App1, to: db1, allow: icmp}\n  - {from: app1, to: db1, allow: icmp}\n";
    one_err(&text, "nodes[1].name", 5, 11, "contains 'A'");
}

#[test]
fn broken_nodes_do_not_make_every_policy_name_unknown() {
    one_err(
        "nodes: 5\npolicy:\n  - {from: a, to: b, allow: icmp}\n",
        "nodes",
        1,
        8,
        "expected a list of nodes, found the integer `5`",
    );
}

#[test]
fn star_inside_a_list_and_empty_selectors() {
    let errs = errors(&two_with(
        "policy:\n  - from: [db1, '*']\n    to: []\n    allow: []\n",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "policy[0].from[1]",
        9,
        17,
        "\"*\" stands for all nodes and cannot be part of a list",
    );
    check(
        &errs[1],
        "policy[0].to",
        10,
        9,
        "the list of nodes is empty",
    );
    check(&errs[2], "policy[0].allow", 11, 12, "allow is empty");
}

#[test]
fn selector_and_allow_types() {
    let errs = errors(&two_with(
        "policy:\n  - from: {db1: x}\n    to: ~\n    allow: {tcp: 22}\n",
    ));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    check(
        &errs[0],
        "policy[0].from",
        9,
        11,
        "expected a node name, a list of node names, or \"*\", found a mapping",
    );
    check(&errs[1], "policy[0].to", 10, 5, "no value given");
    check(&errs[2], "policy[0].allow", 11, 12, "found a mapping");
}

#[test]
fn policy_entry_must_be_a_mapping() {
    one_err(
        &two_with("policy:\n  - app1 -> db1\n"),
        "policy[0]",
        9,
        5,
        "expected a mapping, found the string \"app1 -> db1\"",
    );
}

#[test]
fn bad_port_specs_in_allow() {
    let cases = [
        (
            "tcp/70000",
            "port 70000 in \"tcp/70000\" is out of range; ports are 1 to 65535",
        ),
        ("tcp/0", "port 0 in \"tcp/0\" is out of range"),
        (
            "tcp/90-80",
            "port range \"tcp/90-80\" is reversed; write tcp/80-90",
        ),
        (
            "sctp/1",
            "unknown protocol \"sctp\" in \"sctp/1\"; expected tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp or any",
        ),
        ("tcp", "\"tcp\" needs a port, e.g. tcp/443 or tcp/8000-8100"),
        ("udp", "\"udp\" needs a port, e.g. udp/443"),
        ("icmp/8", "icmp takes no port"),
        ("any/1", "any takes no port"),
        ("tcp/abc", "\"abc\" in \"tcp/abc\" is not a port number"),
        ("tcp/", "\"tcp/\" is missing a port number"),
        ("tcp/1-", "\"tcp/1-\" is missing a port number"),
        ("tcp/1-2-3", "\"2-3\" in \"tcp/1-2-3\" is not a port number"),
        ("tcp/99999999999999999999", "is out of range"),
        ("443", "\"443\" has no protocol; write tcp/443 or udp/443"),
        ("TCP/443", "unknown protocol \"TCP\""),
        (
            "ssh",
            "\"ssh\" is not a port spec; expected tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp or any",
        ),
    ];
    for (value, fragment) in cases {
        // As a list element...
        one_err(
            &two_with(&format!(
                "policy:\n  - from: app1\n    to: db1\n    allow: [icmp, {value}]\n"
            )),
            "policy[0].allow[1]",
            11,
            19,
            fragment,
        );
        // ...and as the single scalar form.
        one_err(
            &two_with(&format!(
                "policy:\n  - from: app1\n    to: db1\n    allow: {value}\n"
            )),
            "policy[0].allow",
            11,
            12,
            fragment,
        );
    }
}

#[test]
fn port_spec_parser_directly() {
    assert_eq!(
        parse_port_spec("udp/1-65535", ""),
        Ok(PortSpec {
            protocol: Protocol::Udp,
            low: 1,
            high: 65535
        })
    );
    assert_eq!(
        parse_port_spec("tcp/0443", ""),
        Ok(PortSpec {
            protocol: Protocol::Tcp,
            low: 443,
            high: 443
        })
    );
    assert_eq!(parse_allow(" icmp "), Ok(Allow::Icmp));
    assert!(parse_port_spec("tcp/65536", "").is_err());
    assert!(parse_port_spec("tcp/-1", "").is_err());
}

#[test]
fn prefix_and_endpoint_parsers_directly() {
    assert_eq!(parse_prefix("10.0.0.0/8"), Ok(net("10.0.0.0/8")));
    assert_eq!(parse_prefix("::"), Ok(net("::/128")));
    assert!(parse_prefix("2001:db8::1/64").is_err());
    assert_eq!(
        parse_endpoint("vpn.example.org.:1"),
        Ok(Endpoint::Host {
            host: "vpn.example.org.".into(),
            port: 1
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Several errors at once, in file order

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let errs = errors(
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
    );
    let got: Vec<(String, usize, usize)> = errs
        .iter()
        .map(|e| (e.key.clone(), e.pos.line, e.pos.column))
        .collect();
    let want = [
        ("policy[0].from", 2, 11),
        ("policy[0].allow[0]", 4, 13),
        ("interface.mtu", 6, 8),
        ("interface.colour", 7, 3),
        ("nodes[0].public_key", 10, 17),
        ("nodes[1].address", 14, 14),
        ("nodes[1].endpoint", 15, 15),
    ];
    let want: Vec<(String, usize, usize)> = want
        .iter()
        .map(|(k, l, c)| (k.to_string(), *l, *c))
        .collect();
    assert_eq!(got, want, "{errs:#?}");
}

#[test]
fn errors_display_with_file_line_column_and_key() {
    let e = match parse("/etc/meshd/mesh.yaml", "nodes: []\n") {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    };
    assert_eq!(
        e.to_string(),
        "/etc/meshd/mesh.yaml:1:8: nodes: the list of nodes is empty; the mesh needs at least one node"
    );
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

#[test]
fn random_yaml_like_input_never_panics() {
    let tokens = [
        "nodes",
        "interface",
        "admin",
        "policy",
        "name",
        "public_key",
        "address",
        "endpoint",
        "routes",
        "keepalive",
        "open",
        "from",
        "to",
        "allow",
        "mtu",
        "listen_port",
        "metrics",
        "ssh_from",
        "icmp_rate",
        ":",
        ": ",
        "- ",
        "\n",
        "\n  ",
        "\n    ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "'",
        "\"",
        "*",
        "&",
        "!",
        "#",
        "?",
        "|",
        ">",
        "~",
        "null",
        "true",
        "0",
        "-1",
        "65536",
        "1.5",
        "0x1F",
        "10.100.0.2/24",
        "10.100.0.3/16",
        "fd00::1/64",
        "192.0.2.1:51820",
        "[::1]:1",
        "tcp/443",
        "tcp/90-80",
        "udp/1-65535",
        "icmp",
        "any",
        "off",
        "5/second",
        "db1",
        "app1",
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        "\t",
        " ",
        "\u{0}",
        "é",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = (rng.next() % 60) as usize;
        let text: String = (0..len).map(|_| rng.pick(&tokens)).collect();
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
    let e = one(&text);
    assert_eq!(e.key, "(yaml)");
    assert_eq!(e.pos.line, 2);
    assert!(e.message.contains("too wide to parse safely"), "{e}");
}

#[test]
fn deep_nesting_within_the_bound_parses_without_overflow() {
    // About 4,500 levels: far more than the caller's stack would take, fine on the parser's.
    let text = format!("nodes:\n  {}x\n", "- ".repeat(4_500));
    one_err(&text, "nodes[0]", 2, 5, "expected a mapping, found a list");
}

#[test]
fn unquoted_bracketed_ipv6_endpoint_gets_a_hint() {
    let e = one(&node_with("endpoint: [2001:db8::1]:51820"));
    assert_eq!(e.key, "(yaml)");
    assert_eq!(e.pos.line, 5);
    assert!(
        e.message
            .contains("quote a bracketed IPv6 address with a port: '[2001:db8::1]:51820'"),
        "{e}"
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
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Limits: size, values, errors

#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let mut text = yaml(TWO);
    text.push('#');
    text.push_str(&" ".repeat(super::MAX_CONFIG_BYTES - text.len()));
    let err = one(&format!("{text}\n"));
    check(
        &err,
        "(file)",
        1,
        1,
        &format!("more than the limit of {} bytes", super::MAX_CONFIG_BYTES),
    );
    // At the limit exactly it parses.
    assert_eq!(text.len(), super::MAX_CONFIG_BYTES);
    assert_eq!(ok(&text).nodes.len(), 2);
}

#[test]
fn a_list_of_more_entries_than_the_limit_is_refused_at_the_entry_past_it() {
    // `nodes:` is line 1; the items start on line 2.
    let mut text = String::from("nodes:\n");
    text.push_str(&"- a\n".repeat(super::MAX_ENTRIES));
    let errs = parse("mesh.yaml", &text).err().map(|e| e.total());
    assert_eq!(
        errs,
        Some(super::MAX_ENTRIES),
        "at the limit: one error per item"
    );
    text.push_str("- b\n");
    let err = one(&text);
    check(
        &err,
        "(yaml)",
        super::MAX_ENTRIES + 2,
        3,
        "this list has more than 1048576 entries",
    );
    let mut map = String::from("interface:\n");
    for i in 0..=super::MAX_ENTRIES {
        map.push_str(&format!("  k{i}: v\n"));
    }
    let err = one(&map);
    check(
        &err,
        "(yaml)",
        super::MAX_ENTRIES + 2,
        3,
        "this mapping has more than 1048576 entries",
    );
}

#[test]
fn a_file_of_more_values_than_the_limit_is_refused_at_the_value_past_it() {
    // Three lists of a million items: the top mapping, three keys and three lists are 7 values.
    let per_list = (super::MAX_YAML_VALUES - 7) / 3;
    let extra = super::MAX_YAML_VALUES - 7 - 3 * per_list;
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
    let err = one(&text);
    check(
        &err,
        "(yaml)",
        3 + 3 * per_list + extra + 1,
        3,
        "more than 3000000 YAML values",
    );
}

#[test]
fn a_file_of_more_mappings_than_the_limit_is_refused_at_the_mapping_past_it() {
    // The top mapping is the first; the items start on line 2.
    let mut text = String::from("nodes:\n");
    text.push_str(&"- {a: b}\n".repeat(super::MAX_MAPPINGS - 1));
    let at_limit = parse("mesh.yaml", &text).err();
    assert!(at_limit.is_some_and(|e| !e.to_string().contains("mappings,")));
    text.push_str("- {c: d}\n");
    let err = one(&text);
    check(
        &err,
        "(yaml)",
        super::MAX_MAPPINGS + 1,
        3,
        "more than 300000 mappings",
    );
}

#[test]
fn errors_past_the_first_hundred_are_counted_not_kept() {
    let mut text = String::from("nodes:\n");
    text.push_str(&"- a\n".repeat(1000));
    let errs = parse("mesh.yaml", &text).err();
    let errs = errs.unwrap_or_else(|| panic!("a list of scalars is not a list of nodes"));
    assert_eq!(errs.0.len(), super::MAX_ERRORS);
    assert_eq!(errs.total(), 1000);
    assert_eq!(errs.0.last().map(|e| e.pos.line), Some(101));
    let shown = errs.to_string();
    assert!(
        shown.ends_with("... and 900 more errors (only the first 100 found are shown)"),
        "{}",
        &shown[shown.len().saturating_sub(200)..]
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
    let err = one(&text);
    assert_eq!(err.key, format!("nodes[{}].routes[0]", n - 1));
    assert!(
        err.message
            .contains("overlaps 2001:db8::/64 (nodes[0].routes[0], line 5)"),
        "{err}"
    );
}
