//! Where the data path's thread runs: on one CPU while traffic is light, on any while it is
//! heavy.
//!
//! A lone packet wakes the sleeping data thread, and the kernel wakes a sleeping thread on an
//! idle CPU when it has one, rather than on the CPU that woke it. On a virtual machine an idle
//! vCPU has halted, and the host must wake it first: each such hop costs tens of
//! microseconds, and a round trip through the tunnel makes several (the application's packet
//! wakes meshd, meshd's datagram wakes the peer, the answer wakes meshd again). Kept to one
//! CPU, the thread is woken where the kernel already runs, on a vCPU that is awake. While
//! traffic is heavy the thread needs a CPU of its own instead, and gets back every CPU it
//! started with. The README's Performance section has the figures.
//!
//! The decision is taken once per window of [`WINDOW`], from how many rounds (wake-ups with
//! work) the thread ran in it, with a gap between the two thresholds so that a rate near one
//! of them does not flip the placement at every window.

use meshd_core::config::QuietCpu;
use std::io;
use std::time::{Duration, Instant};

/// How often the placement is reconsidered.
const WINDOW: Duration = Duration::from_millis(10);
/// Rounds in a window at which the thread spreads out again (2000 wake-ups a second).
const BUSY_ROUNDS: u32 = 20;
/// Rounds in a window at or below which it keeps to one CPU (500 wake-ups a second).
const QUIET_ROUNDS: u32 = 5;

/// A set of CPUs, as `sched_setaffinity` takes it.
#[derive(Clone, Copy)]
struct CpuSet(libc::cpu_set_t);

impl CpuSet {
    /// The calling thread's.
    fn current() -> io::Result<Self> {
        // SAFETY: an all-zero cpu_set_t is an empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the calling thread (0), and the size of the set it fills.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(set))
    }

    fn only(cpu: usize) -> Self {
        // SAFETY: an all-zero cpu_set_t is an empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: CPU_SET checks the index against the set's size.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        Self(set)
    }

    fn cpus(&self) -> impl Iterator<Item = usize> + '_ {
        // SAFETY: CPU_ISSET checks the index against the set's size.
        (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &self.0) })
    }

    /// Makes it the calling thread's.
    fn apply(&self) -> io::Result<()> {
        // SAFETY: the calling thread (0), and a set of the size given.
        let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&self.0), &self.0) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The rule alone, without the system calls: given the rounds of a window that has ended
/// `elapsed` after it began (longer than [`WINDOW`] when traffic paused: the rounds are then
/// scaled to a window's worth) and whether the thread is kept to one CPU, whether it should be.
pub(crate) fn keep_to_one(pinned: bool, rounds: u32, elapsed: Duration) -> bool {
    let scaled = u128::from(rounds) * WINDOW.as_micros() / elapsed.as_micros().max(1);
    let rounds = u32::try_from(scaled).unwrap_or(u32::MAX);
    if pinned {
        rounds < BUSY_ROUNDS
    } else {
        rounds <= QUIET_ROUNDS
    }
}

/// The data thread's placement; see the module's notes.
pub(crate) struct Placement {
    /// The CPUs the thread started with, given back while traffic is heavy.
    all: CpuSet,
    /// The one CPU while traffic is light.
    one: CpuSet,
    pinned: bool,
    window: Instant,
    rounds: u32,
}

impl Placement {
    /// For the calling thread, as `interface.quiet_cpu` says. None when that is `off`, when
    /// the thread may run on one CPU only (nothing to choose), when the CPU asked for is not
    /// among those it may run on (logged), or when the kernel will not say.
    pub(crate) fn new(quiet_cpu: QuietCpu) -> Option<Self> {
        let cpu = match quiet_cpu {
            QuietCpu::Off => return None,
            QuietCpu::Auto => None,
            QuietCpu::Cpu(cpu) => Some(usize::from(cpu)),
        };
        let all = match CpuSet::current() {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!("data thread placement off: sched_getaffinity: {e}");
                return None;
            }
        };
        let allowed: Vec<usize> = all.cpus().collect();
        let one = match cpu {
            Some(cpu) if !allowed.contains(&cpu) => {
                tracing::warn!(
                    "data thread placement off: CPU {cpu} is not one meshd may run on ({allowed:?})"
                );
                return None;
            }
            Some(cpu) => cpu,
            None => *allowed.first()?,
        };
        if allowed.len() < 2 {
            return None;
        }
        tracing::info!(
            "data thread placement: CPU {one} while traffic is light, {allowed:?} while heavy"
        );
        Some(Self {
            all,
            one: CpuSet::only(one),
            pinned: false,
            window: Instant::now(),
            rounds: 0,
        })
    }

    /// Counts a round; at the end of a window, moves the thread if the rule says so. A move
    /// the kernel refuses (a cpuset changed under meshd, say) switches placement off, with
    /// the thread on every CPU it may use.
    pub(crate) fn round(this: &mut Option<Self>, now: Instant) {
        let Some(p) = this else { return };
        p.rounds += 1;
        let elapsed = now.duration_since(p.window);
        if elapsed < WINDOW {
            return;
        }
        let (rounds, pin) = (p.rounds, keep_to_one(p.pinned, p.rounds, elapsed));
        p.window = now;
        p.rounds = 0;
        if pin == p.pinned {
            return;
        }
        let to = if pin { p.one } else { p.all };
        match to.apply() {
            Ok(()) => {
                p.pinned = pin;
                tracing::debug!(
                    rounds,
                    "data thread {}",
                    if pin {
                        "kept to one CPU"
                    } else {
                        "on every CPU"
                    }
                );
            }
            Err(e) => {
                tracing::warn!("data thread placement off: sched_setaffinity: {e}");
                let _ = p.all.apply();
                *this = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_traffic_keeps_to_one_cpu_and_heavy_spreads_with_a_gap_between() {
        let w = WINDOW;
        // Spread: pins only at or below the quiet threshold.
        assert!(keep_to_one(false, 0, w));
        assert!(keep_to_one(false, QUIET_ROUNDS, w));
        assert!(!keep_to_one(false, QUIET_ROUNDS + 1, w));
        assert!(!keep_to_one(false, BUSY_ROUNDS - 1, w));
        // Pinned: stays until the busy threshold.
        assert!(keep_to_one(true, QUIET_ROUNDS + 1, w));
        assert!(keep_to_one(true, BUSY_ROUNDS - 1, w));
        assert!(!keep_to_one(true, BUSY_ROUNDS, w));
    }

    #[test]
    fn a_window_that_spans_a_pause_counts_as_its_rate() {
        // A stream's last rounds, then a packet a second later: light traffic.
        assert!(keep_to_one(false, 100, Duration::from_secs(1)));
        // The same rounds within one window: heavy.
        assert!(!keep_to_one(true, 100, WINDOW));
        // A window that ran a little long is about its count.
        assert!(!keep_to_one(true, 2 * BUSY_ROUNDS, WINDOW + WINDOW / 2));
        // No division by zero, and no overflow.
        assert!(!keep_to_one(false, u32::MAX, Duration::ZERO));
    }
}
