//! Whether the data plane's threads make progress, for the systemd watchdog.
//!
//! - The data thread notes when it starts on what `epoll` returned and when it goes back to
//!   waiting; the timers and handshake threads note each round (the worker wakes at least
//!   once a second).
//! - Each note is one relaxed store of the monotonic clock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Debug, Default)]
pub(crate) struct Health {
    /// When the data thread started on its current round (µs), or 0 while it waits for packets.
    busy_since: AtomicU64,
    /// When the timers thread last ran (µs); 0 before it first did.
    timers_ran: AtomicU64,
    /// When the handshake worker last finished a round (µs); 0 before it first did.
    handshakes_ran: AtomicU64,
}

impl Health {
    pub(crate) fn data_busy(&self) {
        self.busy_since.store(monotonic_usec(), Relaxed);
    }

    pub(crate) fn data_idle(&self) {
        self.busy_since.store(0, Relaxed);
    }

    pub(crate) fn timers_ran(&self) {
        self.timers_ran.store(monotonic_usec(), Relaxed);
    }

    pub(crate) fn handshakes_ran(&self) {
        self.handshakes_ran.store(monotonic_usec(), Relaxed);
    }

    /// Which thread, if any, has been stuck for longer than `limit`.
    pub(crate) fn stuck(&self, limit: Duration) -> Option<&'static str> {
        self.stuck_at(monotonic_usec(), limit)
    }

    fn stuck_at(&self, now: u64, limit: Duration) -> Option<&'static str> {
        let limit = limit.as_micros() as u64;
        let busy = self.busy_since.load(Relaxed);
        if busy != 0 && now.saturating_sub(busy) > limit {
            return Some("data path");
        }
        let ran = self.timers_ran.load(Relaxed);
        if ran != 0 && now.saturating_sub(ran) > limit {
            return Some("timers");
        }
        let ran = self.handshakes_ran.load(Relaxed);
        if ran != 0 && now.saturating_sub(ran) > limit {
            return Some("handshake worker");
        }
        None
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock of every note (and of systemd's `RELOADING=1`).
pub(crate) fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn a_thread_stuck_past_the_limit_is_named_and_waiting_is_not_stuck() {
        let health = Health::default();
        let limit = Duration::from_secs(15);
        health.busy_since.store(100 * S, Relaxed);
        health.timers_ran.store(110 * S, Relaxed);
        assert_eq!(health.stuck_at(114 * S, limit), None);
        assert_eq!(health.stuck_at(116 * S, limit), Some("data path"));
        // Back to waiting: waiting for packets, however long, is not being stuck.
        health.data_idle();
        assert_eq!(health.stuck_at(116 * S, limit), None);
        assert_eq!(health.stuck_at(126 * S, limit), Some("timers"));
        health.timers_ran();
        assert_eq!(health.stuck(limit), None);
        health.handshakes_ran.store(110 * S, Relaxed);
        assert_eq!(health.stuck_at(126 * S, limit), Some("handshake worker"));
    }
}
