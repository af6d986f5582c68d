//! systemd's readiness protocol (sd_notify) and watchdog.
//!
//! - `READY=1` once the firewall and the device are up; `RELOADING=1` then `READY=1` around a
//!   reload; `STOPPING=1` on the way out.
//! - `WATCHDOG=1` at half of `WATCHDOG_USEC`, while the data plane's threads make progress.
//! - Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use crate::dataplane::DataPlane;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Duration;

/// Where systemd listens, if it does: a path, or `@name` for the abstract namespace.
fn socket_path() -> Option<String> {
    std::env::var("NOTIFY_SOCKET")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Sends one notification; a failure is logged, never fatal (systemd may be gone).
pub(crate) fn notify(message: &str) {
    let Some(path) = socket_path() else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(message.as_bytes(), &addr)
        } else {
            sock.send_to(message.as_bytes(), &path)
        }
    });
    if let Err(e) = sent {
        tracing::warn!("cannot notify systemd at {path} ({message}): {e}");
    }
}

/// Half of the watchdog period systemd asked for, if it asked (and asked this process).
pub(crate) fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// A data-path thread is stuck once one round of it has taken this long (or the watchdog's
/// interval, if longer): far beyond any batch, and beyond a loaded machine's scheduling
/// delays, which a short watchdog interval must not mistake for a hang.
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// Pings the watchdog while the daemon makes progress: the control plane's runtime runs this
/// task, and the data path's `Health` says whether its threads are stuck (one round of the
/// data thread, or of the timers thread, taking longer than `STUCK_AFTER`). A stuck node stops
/// the pings, says why once, and systemd restarts it.
pub(crate) async fn watchdog(every: Duration, plane: Arc<DataPlane>) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    let limit = every.max(STUCK_AFTER);
    let mut said = false;
    loop {
        tick.tick().await;
        match plane.health.stuck(limit) {
            None => {
                notify("WATCHDOG=1");
                said = false;
            }
            Some(what) if !said => {
                tracing::error!("{what} stuck for over {limit:?}: no longer feeding the watchdog");
                said = true;
            }
            Some(_) => {}
        }
    }
}
