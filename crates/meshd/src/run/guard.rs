//! Keeps meshd's firewall in place (SPEC §4, fail closed): installed before the tunnel
//! exists, then read back every few seconds and put back if someone deleted the table,
//! flushed the ruleset, emptied a chain or edited a rule or set. It is never removed on exit.

use anyhow::{Context, Result};
use meshd_firewall::nft;
use meshd_firewall::Nftables;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the table is read back.
const CHECK_EVERY: Duration = Duration::from_secs(2);

pub(crate) struct Guard {
    ruleset: Nftables<'static>,
    /// The table as nft listed it right after meshd applied it (normalised).
    installed: Mutex<String>,
    /// Times the table had to be put back.
    pub(crate) reasserts: AtomicU64,
    /// Transactions applied, and refused.
    pub(crate) applied: AtomicU64,
    pub(crate) failed: AtomicU64,
}

impl Guard {
    /// Applies the table; an error here means the tunnel must not come up. nft runs on a
    /// blocking thread, never on the runtime's workers.
    pub(crate) async fn install(ruleset: Nftables<'static>) -> Result<Arc<Self>> {
        let (ruleset, installed) = tokio::task::spawn_blocking(move || {
            let listed = nft::apply(&ruleset);
            (ruleset, listed)
        })
        .await?;
        let installed = installed.context("cannot install the firewall (table inet meshd)")?;
        tracing::info!("firewall applied table=inet meshd");
        Ok(Arc::new(Self {
            ruleset,
            installed: Mutex::new(installed),
            reasserts: AtomicU64::new(0),
            applied: AtomicU64::new(1),
            failed: AtomicU64::new(0),
        }))
    }

    fn installed(&self) -> String {
        self.installed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Verifies the table and, if it is not what meshd installed, applies it again.
    /// Returns why it had to be restored, if it had to.
    fn check(&self) -> Result<Option<nft::FirewallError>, nft::FirewallError> {
        let why = match nft::verify(&self.installed()) {
            Ok(()) => return Ok(None),
            Err(why) => why,
        };
        match nft::apply(&self.ruleset) {
            Ok(listed) => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                *self.installed.lock().unwrap_or_else(|e| e.into_inner()) = listed;
                Ok(Some(why))
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Checks and restores the table for as long as the daemon runs.
    pub(crate) async fn watch(self: Arc<Self>) -> Result<()> {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let guard = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || guard.check()).await? {
                Ok(None) => {}
                Ok(Some(why)) => {
                    let n = self.reasserts.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!("firewall restored ({why}) reasserts={n}");
                }
                Err(e) => tracing::error!("firewall check failed: {e}"),
            }
        }
    }
}
