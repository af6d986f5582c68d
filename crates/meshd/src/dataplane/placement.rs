//! Where the data thread runs: on one CPU while traffic is light, on any while it is heavy
//! (`activity.rs` says which).
//!
//! - Light: the kernel wakes a sleeping thread on an idle CPU, which on a virtual machine has
//!   halted and costs tens of microseconds to wake, several times per round trip. Kept to one
//!   CPU, the thread wakes where the kernel already runs (docs/performance.md).
//! - Heavy: the thread needs a CPU of its own, and gets back every CPU it started with.

use meshd_core::config::QuietCpu;
use std::io;

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

/// The data thread's placement; see the module's notes.
pub(crate) struct Placement {
    /// None while placement is off.
    cpus: Option<Cpus>,
}

/// The two places the thread moves between.
struct Cpus {
    /// The CPUs the thread started with, given back while traffic is heavy.
    all: CpuSet,
    /// The one CPU while traffic is light.
    one: CpuSet,
    pinned: bool,
}

impl Placement {
    /// For the calling thread, as `interface.quiet_cpu` says. Off when that is `off`, when
    /// the thread may run on one CPU only (nothing to choose), when the CPU asked for is not
    /// among those it may run on (logged), or when the kernel will not say.
    pub(crate) fn new(quiet_cpu: QuietCpu) -> Self {
        Self {
            cpus: Cpus::new(quiet_cpu),
        }
    }

    /// Follows the traffic: one CPU while it is light, every CPU while it is heavy. A move
    /// the kernel refuses (a cpuset changed under meshd, say) switches placement off, with
    /// the thread on every CPU it may use.
    pub(crate) fn follow(&mut self, heavy: bool) {
        let Some(p) = &mut self.cpus else { return };
        let pin = !heavy;
        if pin == p.pinned {
            return;
        }
        let to = if pin { &p.one } else { &p.all };
        match to.apply() {
            Ok(()) => p.pinned = pin,
            Err(e) => {
                tracing::warn!("data thread placement off: sched_setaffinity: {e}");
                let _ = p.all.apply();
                self.cpus = None;
            }
        }
    }
}

impl Cpus {
    fn new(quiet_cpu: QuietCpu) -> Option<Self> {
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
        })
    }
}
