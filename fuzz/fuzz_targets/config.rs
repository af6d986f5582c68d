//! A `mesh.yaml` as an operator (or whoever can write the file) gives it: parsed, validated,
//! planned for each of its first nodes, and compiled into that node's firewall.
//!
//! Holds: no panic; a refused file has at least one error, each naming the file and saying what is wrong;
//! an accepted one plans and compiles for every node it names (up to 8 tried).
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshd_core::config;
use meshd_core::plan::{Identity, NodePlan};
use meshd_firewall::ruleset::{ruleset, to_json};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mesh = match config::parse("mesh.yaml", text) {
        Ok(mesh) => mesh,
        Err(errors) => {
            assert!(errors.total() > 0 && !errors.0.is_empty());
            for e in &errors.0 {
                assert_eq!(e.file, "mesh.yaml");
                assert!(!e.message.is_empty(), "{e}");
            }
            return;
        }
    };
    for node in mesh.nodes.iter().take(8) {
        let plan = NodePlan::new(&mesh, &Identity::Name(node.name.clone()))
            .unwrap_or_else(|e| panic!("{} was accepted but does not plan: {e}", node.name));
        let json = to_json(&ruleset(&plan));
        assert!(json.contains("meshd"));
    }
});
