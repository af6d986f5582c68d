//! Keeps meshd's firewall in place (SPEC §4, fail closed): installed before the tunnel
//! exists, then read back every few seconds and put back if someone deleted the table,
//! flushed the ruleset or emptied a chain. It is never removed on exit.

use anyhow::{Context, Result};
use meshd_firewall::nft;
use meshd_firewall::Nftables;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the table is read back.
const CHECK_EVERY: Duration = Duration::from_secs(2);

pub(crate) struct Guard {
    ruleset: Nftables<'static>,
    /// Times the table had to be put back.
    pub(crate) reasserts: AtomicU64,
}

impl Guard {
    /// Applies the table; an error here means the tunnel must not come up.
    pub(crate) fn install(ruleset: Nftables<'static>) -> Result<Arc<Self>> {
        nft::apply(&ruleset).context("cannot install the firewall (table inet meshd)")?;
        tracing::info!("firewall applied table=inet meshd");
        Ok(Arc::new(Self {
            ruleset,
            reasserts: AtomicU64::new(0),
        }))
    }

    /// Checks and restores the table for as long as the daemon runs.
    pub(crate) async fn watch(self: Arc<Self>) -> Result<()> {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            let guard = Arc::clone(&self);
            let outcome = tokio::task::spawn_blocking(move || match nft::verify(&guard.ruleset) {
                Ok(()) => Ok(None),
                Err(why) => nft::apply(&guard.ruleset).map(|()| Some(why)),
            })
            .await?;
            match outcome {
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
