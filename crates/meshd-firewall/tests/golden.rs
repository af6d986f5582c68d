//! Golden tests of the ruleset for the example mesh: the JSON transaction (pure) and the nft
//! text that nft itself prints once the table is loaded (into a private network namespace,
//! never the host's). `UPDATE_GOLDEN=1 cargo test -p meshd-firewall` rewrites the files after
//! an intended change; review the diff.

// For the helpers too, which allow-expect-in-tests does not cover (they are no #[test]).
#![allow(clippy::expect_used)]

use meshd_core::config;
use meshd_core::plan::{Identity, NodePlan};
use meshd_firewall::{nft, ruleset, Nftables};
use nftables::schema::{NfCmd, NfListObject, NfObject};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn plan(node: &str) -> NodePlan {
    let path = root().join("../../config/mesh.example.yaml");
    let text = std::fs::read_to_string(&path).expect("read config/mesh.example.yaml");
    let cfg = config::parse("mesh.example.yaml", &text).expect("the example mesh parses");
    NodePlan::new(&cfg, &Identity::Name(node.into())).expect("the node has a plan")
}

fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        want == actual,
        "{name} differs from the golden file; if the change is intended, rerun with UPDATE_GOLDEN=1\n--- got ---\n{actual}"
    );
}

#[test]
fn json_transaction_of_each_example_node_matches_golden() {
    for node in ["db1", "app1", "bastion"] {
        golden(
            &format!("{node}.json"),
            &ruleset::to_json(&ruleset(&plan(node))),
        );
    }
}

#[test]
fn the_transaction_names_only_table_inet_meshd_and_flushes_nothing() {
    for node in ["db1", "app1", "bastion"] {
        let rules: Nftables = ruleset(&plan(node));
        for object in rules.objects.iter() {
            let NfObject::CmdObject(cmd) = object else {
                panic!("not a command: {object:?}");
            };
            let obj = match cmd {
                NfCmd::Add(o) | NfCmd::Delete(o) => o,
                other => panic!("only add and delete belong in the transaction, got {other:?}"),
            };
            let table = match obj {
                NfListObject::Table(t) => &t.name,
                NfListObject::Chain(c) => &c.table,
                NfListObject::Rule(r) => &r.table,
                NfListObject::Set(s) => &s.table,
                other => panic!("unexpected object {other:?}"),
            };
            assert_eq!(table, "meshd");
        }
        // Replaced whole: add, delete, add, then the contents.
        assert!(matches!(
            &rules.objects[1],
            NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(_)))
        ));
    }
}

fn can_unshare() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn nft_text_of_db1_matches_golden() {
    if !can_unshare() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root"
        );
        eprintln!("skipping: rendering needs root (a private network namespace)");
        return;
    }
    let text = nft::render(&ruleset(&plan("db1"))).expect("nft renders the ruleset");
    golden("db1.nft", &text);
}

#[test]
fn an_ipv6_mesh_fills_the_v6_sets_only() {
    let yaml = concat!(
        "admin: {ssh_from: [2001:db8:1::10/128]}\n",
        "nodes:\n",
        "  - {name: db, public_key: \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\", address: 2001:db8:100::2/64, routes: [2001:db8:200::/48]}\n",
        "  - {name: app, public_key: \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\", address: 2001:db8:100::3/64}\n",
        "policy:\n",
        "  - {from: app, to: db, allow: [tcp/3306, udp/5000-5010, icmp]}\n",
    );
    let cfg = config::parse("v6.yaml", yaml).expect("v6.yaml parses");
    let plan = NodePlan::new(&cfg, &Identity::Name("db".into())).expect("db has a plan");
    let json: serde_json::Value =
        serde_json::from_str(&ruleset::to_json(&ruleset(&plan))).unwrap_or_default();
    let elems = |set: &str| -> String {
        json["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("add").and_then(|a| a.get("set")))
            .find(|s| s["name"] == set)
            .map(|s| s.get("elem").map(|e| e.to_string()).unwrap_or_default())
            .unwrap_or_else(|| panic!("no set {set}"))
    };
    let ports = elems("mesh_ports_v6");
    assert!(
        ports.contains("2001:db8:100::3") && ports.contains("3306"),
        "{ports}"
    );
    assert!(ports.contains("5000") && ports.contains("5010"), "{ports}");
    assert!(elems("mesh_icmp_v6").contains("2001:db8:100::3"));
    assert!(elems("ssh_from_v6").contains("2001:db8:1::10"));
    assert!(elems("routes_v6").contains("2001:db8:200::"));
    for v4 in [
        "mesh_ports_v4",
        "mesh_icmp_v4",
        "ssh_from_v4",
        "routes_v4",
        "mesh_any_v4",
    ] {
        assert_eq!(elems(v4), "", "{v4} should be empty");
    }
}

fn two_node_plan(extra: &str) -> NodePlan {
    let yaml = format!(
        "{extra}nodes:\n\
         - {{name: db, public_key: \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\", address: 10.100.0.2/24}}\n\
         - {{name: app, public_key: \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\", address: 10.100.0.3/24, routes: [192.168.60.0/24]}}\n\
         policy:\n\
         - {{from: app, to: db, allow: [tcp/3306]}}\n"
    );
    let cfg = config::parse("t.yaml", &yaml).expect("the test mesh parses");
    NodePlan::new(&cfg, &Identity::Name("db".into())).expect("db has a plan")
}

#[test]
fn a_low_icmp_rate_gets_a_burst_of_its_own_size_shared_by_v4_and_v6() {
    if !can_unshare() {
        assert!(std::env::var_os("CI").is_none(), "CI must run this as root");
        return;
    }
    let text = nft::render(&ruleset(&two_node_plan("admin: {icmp_rate: 2/second}\n")))
        .expect("nft renders the ruleset");
    // nft's default burst is 5: above a rate of 2/second it would let 5 through at once.
    assert_eq!(
        text.matches("limit rate 2/second burst 2 packets").count(),
        1,
        "one shared limit with burst 2 expected in:\n{text}"
    );
    assert!(
        text.contains("icmp type echo-request jump echo_in"),
        "{text}"
    );
    assert!(
        text.contains("icmpv6 type echo-request jump echo_in"),
        "{text}"
    );
}

#[test]
fn a_mesh_source_off_the_tunnel_is_dropped_by_reverse_path_before_conntrack() {
    if !can_unshare() {
        assert!(std::env::var_os("CI").is_none(), "CI must run this as root");
        return;
    }
    let text = nft::render(&ruleset(&two_node_plan(""))).expect("nft renders the ruleset");
    for chain in ["input", "forward"] {
        let body = text
            .split(&format!("chain {chain} {{"))
            .nth(1)
            .and_then(|rest| rest.split("\n\t}").next())
            .unwrap_or_default();
        let spoof = body
            .find("iifname != \"meshd0\" fib saddr oifname \"meshd0\" counter")
            .unwrap_or_else(|| panic!("no reverse-path rule in chain {chain}:\n{body}"));
        let ct = body.find("ct state").unwrap_or(usize::MAX);
        assert!(spoof < ct, "chain {chain}: anti-spoofing after conntrack");
    }
}

#[test]
fn sources_allowed_the_same_ports_share_aggregated_elements_that_nft_loads() {
    // db and five nodes at 10.100.0.2-7 that may all reach it on tcp/22 and tcp/443, but
    // x (10.100.0.5) on tcp/22 only.
    let mut yaml = String::from("nodes:\n");
    for (i, name) in ["db", "a", "b", "x", "c", "d"].into_iter().enumerate() {
        yaml += &format!(
            "  - {{name: {name}, public_key: \"{}\", address: 10.100.0.{}/24}}\n",
            meshd_core::key::PrivateKey::generate()
                .public_key()
                .to_base64(),
            i + 2
        );
    }
    yaml += "policy:\n  - {from: [a, b, c, d], to: db, allow: [tcp/22, tcp/443]}\n";
    yaml += "  - {from: x, to: db, allow: [tcp/22]}\n";
    let cfg = config::parse("t.yaml", &yaml).expect("the test mesh parses");
    let plan = NodePlan::new(&cfg, &Identity::Name("db".into())).expect("db has a plan");
    let rules = ruleset(&plan);
    let json: serde_json::Value =
        serde_json::from_str(&ruleset::to_json(&rules)).unwrap_or_default();
    let elems: Vec<String> = json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("add").and_then(|a| a.get("set")))
        .find(|s| s["name"] == "mesh_ports_v4")
        .and_then(|s| s["elem"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| e.to_string())
        .collect();
    let prefix = |net: &str, len: u8, port: u16| {
        format!(r#"{{"concat":[{{"prefix":{{"addr":"{net}","len":{len}}}}},"tcp",{port}]}}"#)
    };
    let host = |addr: &str, port: u16| format!(r#"{{"concat":["{addr}","tcp",{port}]}}"#);
    // a and b (10.100.0.3, .4: no prefix holds just the two), c and d (10.100.0.6/31).
    let mut want = vec![
        host("10.100.0.3", 22),
        host("10.100.0.3", 443),
        host("10.100.0.4", 22),
        host("10.100.0.4", 443),
        prefix("10.100.0.6", 31, 22),
        prefix("10.100.0.6", 31, 443),
        host("10.100.0.5", 22),
    ];
    want.sort();
    let mut got = elems.clone();
    got.sort();
    assert_eq!(got, want);
    if can_unshare() {
        let text = nft::render(&rules).expect("nft renders the ruleset");
        assert!(text.contains("10.100.0.6/31 . tcp . 443"), "{text}");
    }
}
