//! Which CPUs a process and the data thread may use, and the CPU time a thread has used.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `Cpus_allowed_list` of a status file in /proc: "0-1", "0", "0,2-3".
pub fn allowed_in(status: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
}

/// The CPUs this test (and so each meshd it starts) may run on, as `Cpus_allowed_list` says.
pub fn own_cpus() -> String {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    allowed_in(&status).unwrap_or_else(|| panic!("no Cpus_allowed_list in\n{status}"))
}

/// The /proc directory of meshd `pid`'s data-path thread (named `meshd-data`).
pub fn data_thread(pid: u32) -> PathBuf {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list /proc/PID/task");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "meshd-data" {
            return task.path();
        }
    }
    panic!("meshd {pid} has no meshd-data thread");
}

/// CPU time (user and system) a thread has used, from its /proc `stat`.
pub fn thread_cpu(task: &Path) -> Duration {
    let stat = std::fs::read_to_string(task.join("stat")).expect("read a thread's /proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces: utime and
    // stime are the 12th and 13th, in clock ticks.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse::<u64>().unwrap_or_else(|e| panic!("{stat}: {e}")))
        .sum();
    // SAFETY: no arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}
