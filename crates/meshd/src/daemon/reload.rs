//! Reload (SIGHUP, so `systemctl reload`, and the control socket's `reload`): mesh.yaml is
//! read again, planned and diffed against the running plan ([`meshd_core::diff`]), then
//! applied in an order where every step can be undone by the ones before it:
//!
//! 1. routes for new subnets into the device (harmless alone: the node has no peer for them
//!    yet, so packets to them are counted `no_route`);
//! 2. the firewall, replaced in one nft transaction if it differs;
//! 3. the node swapped for one built from the new plan, unchanged peers shared with the old
//!    one (sessions, endpoints and counters carry on);
//! 4. routes no peer has any more removed, and DNS endpoints followed for the new peers.
//!
//! A config that does not parse, a change that needs a restart, or a failure in step 1 or 2
//! refuses the reload and leaves everything as it was.

use super::firewall_guard::FirewallGuard;
use super::{dns, systemd};
use crate::cli::NodeArgs;
use crate::dataplane::device;
use crate::dataplane::DataPlane;
use crate::load;
use anyhow::Result;
use arc_swap::ArcSwap;
use ipnet::IpNet;
use meshd_core::config::Endpoint;
use meshd_core::diff::{diff, PlanDiff};
use meshd_core::node::Peer;
use meshd_core::plan::NodePlan;
use meshd_firewall::Nftables;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// What a reload changes in the running daemon, and where it counts its outcomes.
pub(crate) struct Target<'a> {
    pub(crate) plan: &'a ArcSwap<NodePlan>,
    pub(crate) plane: &'a Arc<DataPlane>,
    pub(crate) guard: &'a Arc<FirewallGuard>,
    pub(crate) counts: &'a ReloadCounts,
}

/// Reloads applied and refused, and whether the latest was applied.
pub(crate) struct ReloadCounts {
    pub(crate) ok: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) last_ok: AtomicBool,
}

impl Default for ReloadCounts {
    fn default() -> Self {
        Self {
            ok: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            last_ok: AtomicBool::new(true),
        }
    }
}

/// Runs reloads, one at a time (the daemon holds it behind a lock), and the tasks that
/// follow the peers' DNS endpoints.
pub(crate) struct Reloader {
    args: NodeArgs,
    /// The tasks that follow DNS endpoints, by peer slot.
    dns: HashMap<usize, tokio::task::AbortHandle>,
    dns_tasks: JoinSet<()>,
}

/// What a reload is to apply, worked out on a blocking thread (it reads files, waits for the
/// firewall guard and runs `ip`), with the new routes already added.
struct Prepared {
    plan: NodePlan,
    changes: PlanDiff,
    ruleset: Nftables<'static>,
    firewall: bool,
}

impl Reloader {
    pub(crate) fn new(args: NodeArgs) -> Self {
        Self {
            args,
            dns: HashMap::new(),
            dns_tasks: JoinSet::new(),
        }
    }

    /// Stops following every DNS endpoint (the daemon is stopping).
    pub(crate) fn stop_following(&mut self) {
        self.dns_tasks.abort_all();
        self.dns.clear();
    }

    /// Starts following the DNS endpoints of the running node's peers.
    pub(crate) fn start(&mut self, target: &Target<'_>) {
        let node = target.plane.node.load_full();
        self.refollow(target, &node);
    }

    fn follow(&mut self, target: &Target<'_>, peer: &Arc<Peer>, refresh: u32, greet: bool) {
        if let Some(Endpoint::Host { host, port }) = peer.plan.endpoint.clone() {
            let (plane, slot) = (Arc::clone(target.plane), peer.slot);
            // Greeted at its new address only if the node greets it at start
            // (`Node::greets`); any other gets its session with its next packet.
            let task = dns::follow(
                Arc::clone(peer),
                host,
                port,
                Duration::from_secs(u64::from(refresh)),
                plane.sockets.v6.is_some(),
                move || {
                    if greet {
                        plane.handshakes.initiate(slot);
                    }
                },
            );
            self.dns.insert(peer.slot, self.dns_tasks.spawn(task));
        }
    }

    /// Reloads, tells systemd (`RELOADING=1`, then `READY=1` whatever the outcome) and logs
    /// one line: what changed, or why nothing did.
    pub(crate) async fn run(&mut self, target: &Target<'_>) -> Result<String> {
        systemd::notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            crate::dataplane::health::monotonic_usec()
        ));
        let outcome = self.reload(target).await;
        let status = match &outcome {
            Ok(summary) => {
                target.counts.ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!("reloaded {summary}");
                "config reloaded"
            }
            Err(e) => {
                target.counts.refused.fetch_add(1, Ordering::Relaxed);
                let why = crate::logging::one_line(&format!("{e:#}"));
                tracing::error!("reload refused, running config unchanged: {why}");
                "reload refused, running the previous config"
            }
        };
        target
            .counts
            .last_ok
            .store(outcome.is_ok(), Ordering::Relaxed);
        let node = &target.plan.load().me.name;
        systemd::notify(&format!("READY=1\nSTATUS=node {node}, {status}"));
        outcome
    }

    async fn reload(&mut self, target: &Target<'_>) -> Result<String> {
        let old = target.plan.load_full();
        let (args, guard) = (self.args.clone(), Arc::clone(target.guard));
        let prepared = tokio::task::spawn_blocking(move || prepare(&args, &old, &guard)).await??;
        let device = prepared.plan.interface.name.clone();
        if prepared.firewall {
            if let Err(e) = target.guard.replace(prepared.ruleset).await {
                let added = prepared.changes.routes_added;
                tokio::task::spawn_blocking(move || delete_routes(&device, &added)).await?;
                return Err(e);
            }
        }

        let plane = target.plane;
        let node = Arc::new(plane.node.load().reloaded(&prepared.plan));
        let highest_slot = node.highest_slot();
        plane.sockets.refuse(|r| r.set_highest_slot(highest_slot));
        plane.node.store(Arc::clone(&node));
        plane.handshakes.wake();
        target.plan.store(Arc::new(prepared.plan));

        let removed = prepared.changes.routes_removed.clone();
        let summary = summary(&prepared.changes, prepared.firewall);
        tokio::task::spawn_blocking(move || {
            delete_routes(&device, &removed);
            release_freed_memory();
        })
        .await?;
        self.refollow(target, &node);
        Ok(summary)
    }

    /// Stops following the names of peers a reload replaced or removed; follows those of
    /// new peers (at start: of all peers).
    fn refollow(&mut self, target: &Target<'_>, node: &meshd_core::node::Node) {
        self.dns.retain(|slot, task| {
            let kept = node.peer_by_slot(*slot).is_some();
            if !kept {
                task.abort();
            }
            kept
        });
        while let Some(ended) = self.dns_tasks.try_join_next() {
            if let Err(e) = ended {
                if !e.is_cancelled() {
                    tracing::error!("a DNS endpoint follower ended: {e}");
                }
            }
        }
        let refresh = target.plan.load().interface.dns_refresh;
        for peer in node.peers() {
            if !self.dns.contains_key(&peer.slot) {
                self.follow(target, peer, refresh, node.greets(peer));
            }
        }
    }
}

/// Loads and diffs the new config, builds its firewall and adds its new routes (taken out
/// again if one fails).
fn prepare(args: &NodeArgs, old: &NodePlan, guard: &FirewallGuard) -> Result<Prepared> {
    let (plan, _key) = load::load_plan(args, true)?;
    let changes = diff(old, &plan)?;
    let ruleset = meshd_firewall::ruleset(&plan);
    let firewall = !guard.is_current(&ruleset);
    let device = &plan.interface.name;
    for (n, &route) in changes.routes_added.iter().enumerate() {
        if let Err(e) = device::add_route(device, route) {
            delete_routes(device, &changes.routes_added[..n]);
            return Err(e);
        }
    }
    Ok(Prepared {
        plan,
        changes,
        ruleset,
        firewall,
    })
}

/// Hands the memory the old plan and node freed back to the kernel: a reload of a large mesh
/// frees hundreds of megabytes in pieces that glibc would otherwise keep.
fn release_freed_memory() {
    // SAFETY: malloc_trim only walks glibc's own heap structures, under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Best effort: a route that cannot be removed is logged.
fn delete_routes(device: &str, routes: &[IpNet]) {
    for &route in routes {
        if let Err(e) = device::delete_route(device, route) {
            tracing::warn!("{}", crate::logging::one_line(&format!("{e:#}")));
        }
    }
}

/// `added=n removed=r changed=c unchanged=2 routes=+1/-0 firewall=replaced`
fn summary(d: &PlanDiff, firewall: bool) -> String {
    let names = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    format!(
        "added={} removed={} changed={} unchanged={} routes=+{}/-{} firewall={}",
        names(&d.added),
        names(&d.removed),
        names(&d.changed),
        d.unchanged.len(),
        d.routes_added.len(),
        d.routes_removed.len(),
        if firewall { "replaced" } else { "unchanged" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_peers_and_counts_the_rest() {
        let d = PlanDiff {
            added: vec!["n".into()],
            removed: vec!["r".into(), "s".into()],
            changed: vec![],
            unchanged: vec!["a".into(), "b".into()],
            routes_added: vec!["192.168.5.0/24".parse().unwrap()],
            routes_removed: vec![],
        };
        assert_eq!(
            summary(&d, true),
            "added=n removed=r,s changed=- unchanged=2 routes=+1/-0 firewall=replaced"
        );
    }
}
