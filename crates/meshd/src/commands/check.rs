//! `meshd check`: validate the config and show what this node would do.

use crate::cli::CheckArgs;
use crate::load;
use anyhow::Result;
use meshd_core::plan::{Direction, NodePlan};
use std::fmt::Write as _;

pub(crate) fn check(args: &CheckArgs) -> Result<()> {
    let (plan, _) = load::load_plan(&args.node, false)?;
    if args.quiet {
        return Ok(());
    }
    print!("{}", describe(&plan));
    if plan.admin.ssh_from.is_empty() {
        eprintln!(
            "\nWARNING: admin.ssh_from is empty. The firewall will refuse SSH to this host from \
             anywhere outside the mesh: make sure you can still reach it before you start meshd."
        );
    }
    Ok(())
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human summary of a plan printed by `check`.
pub(crate) fn describe(plan: &NodePlan) -> String {
    let mut s = String::new();
    let me = &plan.me;
    let _ = writeln!(
        s,
        "node {} {} on {} (mtu {}), udp/{}",
        me.name, me.address, plan.interface.name, plan.interface.mtu, plan.interface.listen_port
    );
    let _ = writeln!(s, "peers ({}):", plan.peers.len());
    for p in &plan.peers {
        let endpoint = p
            .endpoint
            .as_ref()
            .map_or("(none: waits for the peer)".to_string(), |e| e.to_string());
        let keepalive = p
            .keepalive
            .map_or(String::new(), |k| format!("  keepalive {k}s"));
        let _ = writeln!(
            s,
            "  {:<16} endpoint {:<24} allowed-ips {}{keepalive}",
            p.name,
            endpoint,
            join(&p.allowed_ips)
        );
    }
    let _ = writeln!(s, "rules ({}):", plan.rules.len());
    for r in &plan.rules {
        let (arrow, what) = match r.direction {
            Direction::Inbound => ("from", "may open to this node"),
            Direction::Outbound => ("to", "this node may open"),
        };
        let _ = writeln!(
            s,
            "  {arrow} {}: {} ({what})",
            join(&r.peers),
            join(&r.allow)
        );
    }
    let _ = writeln!(s, "config OK");
    s
}
