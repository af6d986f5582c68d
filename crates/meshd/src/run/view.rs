//! What the read-only endpoints (metrics, control socket, UAPI) see of the running daemon.

use super::datapath::Shared;
use super::guard::Guard;
use arc_swap::ArcSwap;
use meshd::api::metrics::{FirewallStats, ReloadStats};
use meshd::api::snapshot::Snapshot;
use meshd_core::plan::NodePlan;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

pub(crate) struct View {
    /// The running plan; a reload swaps in the next one.
    pub(crate) plan: ArcSwap<NodePlan>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) guard: Arc<Guard>,
    /// Where the control socket's `reload` goes: the daemon's main loop, which runs reloads
    /// one at a time and answers with the summary or why the config was refused.
    pub(crate) reload: mpsc::Sender<oneshot::Sender<Result<String, String>>>,
    /// Reloads applied and refused, and whether the latest was applied.
    pub(crate) reloads_ok: AtomicU64,
    pub(crate) reloads_refused: AtomicU64,
    pub(crate) last_reload_ok: AtomicBool,
}

impl View {
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot::take(
            &self.plan.load(),
            &self.shared.node.load(),
            SystemTime::now(),
            Instant::now(),
        )
    }

    /// Asks the main loop for a reload and waits for its outcome.
    pub(crate) async fn reload(&self) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.reload
            .send(tx)
            .await
            .map_err(|_| "meshd is stopping".to_string())?;
        rx.await.map_err(|_| "meshd is stopping".to_string())?
    }

    pub(crate) fn reloads(&self) -> ReloadStats {
        ReloadStats {
            ok: self.reloads_ok.load(Ordering::Relaxed),
            refused: self.reloads_refused.load(Ordering::Relaxed),
            last_successful: self.last_reload_ok.load(Ordering::Relaxed),
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
