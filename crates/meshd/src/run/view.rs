//! What the read-only endpoints (metrics, control socket, UAPI) see of the running daemon.

use super::datapath::Shared;
use super::guard::Guard;
use crate::api::metrics::FirewallStats;
use crate::api::snapshot::Snapshot;
use meshd_core::plan::NodePlan;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub(crate) struct View {
    pub(crate) plan: NodePlan,
    pub(crate) shared: Arc<Shared>,
    pub(crate) guard: Arc<Guard>,
}

impl View {
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot::take(
            &self.plan,
            &self.shared.node,
            SystemTime::now(),
            Instant::now(),
        )
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
