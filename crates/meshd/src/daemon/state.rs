//! The running daemon as its servers (metrics, control socket, UAPI) and its main loop see it.

use super::firewall_guard::FirewallGuard;
use super::reload::{ReloadCounts, Reloader, Target};
use crate::dataplane::DataPlane;
use arc_swap::ArcSwap;
use meshd::api::metrics::{FirewallStats, ReloadStats};
use meshd::api::snapshot::Snapshot;
use meshd_core::plan::NodePlan;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Mutex;

pub(crate) struct Daemon {
    /// The running plan; a reload swaps in the next one.
    pub(crate) plan: ArcSwap<NodePlan>,
    pub(crate) plane: Arc<DataPlane>,
    pub(crate) guard: Arc<FirewallGuard>,
    /// Runs reloads (SIGHUP, the control socket's `reload`) one at a time.
    pub(crate) reloader: Mutex<Reloader>,
    pub(crate) reload_counts: ReloadCounts,
    /// Set once the daemon is stopping: no reload starts after.
    pub(crate) stopping: AtomicBool,
    /// Where a failure that must stop the daemon goes (the main loop ends on it).
    pub(crate) fatal: UnboundedSender<anyhow::Error>,
}

impl Daemon {
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot::take(
            &self.plan.load(),
            &self.plane.node.load(),
            SystemTime::now(),
            Instant::now(),
        )
    }

    /// Reloads mesh.yaml once any reload under way has ended: what changed, or why the
    /// config was refused (the running one stays).
    /// - The reload runs in a task of its own: a client that hangs up cannot cut it short.
    /// - A reload that panicked may have applied part of the new config: the daemon stops.
    pub(crate) async fn reload(self: &Arc<Self>) -> anyhow::Result<String> {
        let daemon = Arc::clone(self);
        let run = tokio::spawn(async move {
            let mut reloader = daemon.reloader.lock().await;
            if daemon.stopping.load(Ordering::Relaxed) {
                anyhow::bail!("meshd is stopping");
            }
            reloader.run(&daemon.reload_target()).await
        });
        match run.await {
            Ok(outcome) => outcome,
            Err(e) => {
                let _ = self.fatal.send(anyhow::anyhow!("reload failed: {e}"));
                anyhow::bail!("meshd is stopping")
            }
        }
    }

    /// Starts following the DNS endpoints of the running node's peers.
    pub(crate) async fn follow_dns(&self) {
        self.reloader.lock().await.start(&self.reload_target());
    }

    fn reload_target(&self) -> Target<'_> {
        Target {
            plan: &self.plan,
            plane: &self.plane,
            guard: &self.guard,
            counts: &self.reload_counts,
        }
    }

    pub(crate) fn reloads(&self) -> ReloadStats {
        ReloadStats {
            ok: self.reload_counts.ok.load(Ordering::Relaxed),
            refused: self.reload_counts.refused.load(Ordering::Relaxed),
            last_successful: self.reload_counts.last_ok.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn firewall(&self) -> FirewallStats {
        FirewallStats {
            applies_ok: self.guard.applied.load(Ordering::Relaxed),
            applies_error: self.guard.failed.load(Ordering::Relaxed),
            reasserts: self.guard.reasserts.load(Ordering::Relaxed),
            dropped: self.guard.dropped(),
        }
    }
}
