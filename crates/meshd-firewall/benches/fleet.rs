//! What a start and a reload compute for one node of a large mesh, at 1,000 and 10,000 nodes:
//! the config parsed and validated, the node's plan, its ruleset (and the JSON handed to nft),
//! and the diff a reload takes between two plans. The two sizes side by side show how each
//! step grows with the mesh.
//!
//!   cargo bench -p meshd-firewall --bench fleet
//!
//! The mesh is the scale bench's (`benches/scale.sh`): every node may reach every other on
//! tcp/22, icmp, tcp/443 and one more port, which a reload changes.

// A bench is test code: a panic is its failure report.
#![allow(clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use meshd_core::config;
use meshd_core::diff::diff;
use meshd_core::key::PublicKey;
use meshd_core::plan::{Identity, NodePlan};
use meshd_firewall::ruleset;
use std::fmt::Write as _;
use std::time::Duration;

const SIZES: [usize; 2] = [1_000, 10_000];

/// The mesh of `n` nodes, its third rule allowing tcp/`port`.
fn mesh(n: usize, port: u16) -> String {
    let mut y = String::from("admin:\n  ssh_from: [192.0.2.10/32]\nnodes:\n");
    for i in 0..n {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let host = i + 1;
        let _ = write!(
            y,
            "  - name: n{i:06}\n    public_key: \"{}\"\n    address: 10.100.{}.{}/16\n    \
             endpoint: \"198.51.100.{}:{}\"\n",
            PublicKey(key).to_base64(),
            host >> 8,
            host & 255,
            i % 250 + 1,
            51820 + i / 250
        );
    }
    let _ = write!(
        y,
        "policy:\n  - {{from: \"*\", to: \"*\", allow: [tcp/22, icmp]}}\n  \
         - {{from: \"*\", to: \"*\", allow: [tcp/443]}}\n  \
         - {{from: \"*\", to: \"*\", allow: [tcp/{port}]}}\n"
    );
    y
}

fn plan_of(yaml: &str) -> NodePlan {
    let cfg = config::parse("mesh.yaml", yaml).expect("the bench mesh parses");
    NodePlan::new(&cfg, &Identity::Name("n000000".into())).expect("n000000 has a plan")
}

fn fleet(c: &mut Criterion) {
    let mut g = c.benchmark_group("fleet");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let yaml = mesh(n, 8080);
        let cfg = config::parse("mesh.yaml", &yaml).expect("the bench mesh parses");
        let plan = plan_of(&yaml);
        let next = plan_of(&mesh(n, 8081));
        let rules = ruleset(&plan);
        g.bench_with_input(BenchmarkId::new("validate (parse)", n), &yaml, |b, y| {
            b.iter(|| config::parse("mesh.yaml", black_box(y)).map(|c| c.nodes.len()))
        });
        g.bench_with_input(BenchmarkId::new("plan", n), &cfg, |b, cfg| {
            b.iter(|| NodePlan::new(black_box(cfg), &Identity::Name("n000000".into())))
        });
        g.bench_with_input(BenchmarkId::new("ruleset", n), &plan, |b, p| {
            b.iter(|| ruleset(black_box(p)))
        });
        g.bench_with_input(
            BenchmarkId::new("ruleset as nft JSON", n),
            &rules,
            |b, r| b.iter(|| ruleset::to_json(black_box(r)).len()),
        );
        g.bench_with_input(
            BenchmarkId::new("diff (one rule changed)", n),
            &(plan, next),
            |b, (old, new)| b.iter(|| diff(black_box(old), black_box(new)).is_ok()),
        );
    }
    g.finish();
}

criterion_group!(benches, fleet);
criterion_main!(benches);
