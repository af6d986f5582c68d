//! Keeps meshd's firewall in place (fail closed).
//!
//! - Installed before the tunnel exists; never removed on exit.
//! - Read back every few seconds and put back if the table was deleted, the ruleset flushed,
//!   a chain emptied or a rule or set edited.
//! - A reload replaces it in one transaction.

use anyhow::{Context, Result};
use meshd_firewall::nft;
use meshd_firewall::Nftables;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the table is read back.
const CHECK_EVERY: Duration = Duration::from_secs(2);

pub(crate) struct FirewallGuard {
    /// The ruleset to keep in place. Its lock is held for a whole check or replacement, so
    /// a check never puts back the table a reload is replacing.
    ruleset: Mutex<Nftables<'static>>,
    /// The table as nft listed it right after meshd applied it (normalised).
    installed: Mutex<String>,
    /// Times the table had to be put back.
    pub(crate) reasserts: AtomicU64,
    /// Transactions applied, and refused.
    pub(crate) applied: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Packets dropped per chain: (what earlier, replaced tables counted, what the current
    /// table counted at the latest read-back).
    dropped: Mutex<(BTreeMap<String, u64>, BTreeMap<String, u64>)>,
}

impl FirewallGuard {
    /// Applies the table; an error here means the tunnel must not come up. nft runs on a
    /// blocking thread, never on the runtime's own.
    pub(crate) async fn install(ruleset: Nftables<'static>) -> Result<Arc<Self>> {
        let (ruleset, installed) = tokio::task::spawn_blocking(move || {
            let listed = nft::apply(&ruleset);
            (ruleset, listed)
        })
        .await?;
        let installed = installed.context("cannot install the firewall (table inet meshd)")?;
        tracing::info!("firewall applied table=inet meshd");
        Ok(Arc::new(Self {
            ruleset: Mutex::new(ruleset),
            installed: Mutex::new(installed.normalized),
            dropped: Mutex::new((BTreeMap::new(), installed.dropped)),
            reasserts: AtomicU64::new(0),
            applied: AtomicU64::new(1),
            failed: AtomicU64::new(0),
        }))
    }

    /// Packets dropped per chain, as of the latest read-back (at most a check period old).
    /// Counts only grow: a table meshd had to put back starts its counters from zero, so
    /// what the replaced one had counted is carried.
    pub(crate) fn dropped(&self) -> BTreeMap<String, u64> {
        let d = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = d.0.clone();
        for (chain, n) in &d.1 {
            *total.entry(chain.clone()).or_insert(0) += n;
        }
        total
    }

    /// Records a read-back of the current table; `replaced` when it is a new table.
    fn record(&self, counted: BTreeMap<String, u64>, replaced: bool) {
        let mut d = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        if replaced {
            let old = std::mem::take(&mut d.1);
            for (chain, n) in old {
                *d.0.entry(chain).or_insert(0) += n;
            }
        }
        d.1 = counted;
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
        let ruleset = self.ruleset.lock().unwrap_or_else(|e| e.into_inner());
        let why = match nft::verify(&self.installed()) {
            Ok(listing) => {
                self.record(listing.dropped, false);
                return Ok(None);
            }
            Err(why) => why,
        };
        self.apply(&ruleset).map(|()| Some(why))
    }

    /// Applies `ruleset` (one transaction: the old table stays if nft refuses the new one)
    /// and records it as installed. Once nft took the transaction it is in place, even if
    /// reading it back fails: then nothing is recorded as installed, so the next check finds
    /// a difference and applies it again. The caller holds the ruleset lock.
    fn apply(&self, ruleset: &Nftables<'static>) -> Result<(), nft::FirewallError> {
        if let Err(e) = nft::commit(ruleset) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        self.applied.fetch_add(1, Ordering::Relaxed);
        let listed = nft::read();
        let mut installed = self.installed.lock().unwrap_or_else(|e| e.into_inner());
        match listed {
            Ok(listed) => {
                *installed = listed.normalized;
                drop(installed);
                self.record(listed.dropped, true);
            }
            Err(e) => {
                installed.clear();
                tracing::warn!(
                    "firewall applied but not read back ({}); checking again soon",
                    crate::logging::one_line(&e.to_string())
                );
            }
        }
        Ok(())
    }

    /// Whether `ruleset` is the one in place.
    pub(crate) fn is_current(&self, ruleset: &Nftables<'static>) -> bool {
        *self.ruleset.lock().unwrap_or_else(|e| e.into_inner()) == *ruleset
    }

    /// Replaces the table with `ruleset` for a reload; on error the old table and ruleset
    /// stay. nft runs on a blocking thread.
    pub(crate) async fn replace(self: &Arc<Self>, ruleset: Nftables<'static>) -> Result<()> {
        let guard = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut current = guard.ruleset.lock().unwrap_or_else(|e| e.into_inner());
            guard.apply(&ruleset)?;
            *current = ruleset;
            Ok::<_, nft::FirewallError>(())
        })
        .await?
        .context("cannot replace the firewall (table inet meshd); the old table stays")
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
                Err(e) => tracing::error!(
                    "firewall check failed: {}",
                    crate::logging::one_line(&e.to_string())
                ),
            }
        }
    }
}
