//! Background processes (meshd, wireguard-go) with their output in a log file, stopped by PID.

use crate::command::describe;
use crate::text::{contains_word, tail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Resident memory of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// Sends `sig` to one process, by PID. Never a process group, never by name.
pub fn kill_pid(pid: u32, sig: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) with a positive PID signals exactly that process; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A process started by a test, its stdout and stderr in `log_path`. On drop it gets SIGTERM,
/// then SIGKILL after 3 s; if the test is panicking its log is printed first.
#[derive(Debug)]
pub struct Daemon {
    label: String,
    child: Option<Child>,
    pid: u32,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

/// A stopped daemon: how it exited and everything it logged.
#[derive(Debug, Clone)]
pub struct Stopped {
    pub label: String,
    pub status: ExitStatus,
    pub log: String,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr appended to `log_path`.
    pub fn spawn(label: &str, mut cmd: Command, log_path: &Path) -> Daemon {
        let log = match fs::File::create(log_path) {
            Ok(f) => f,
            Err(e) => panic!("cannot create {}: {e}", log_path.display()),
        };
        let log2 = match log.try_clone() {
            Ok(f) => f,
            Err(e) => panic!("cannot clone log file handle: {e}"),
        };
        cmd.stdin(Stdio::null()).stdout(log2).stderr(log);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start {label}: `{}`: {e}", describe(&cmd)),
        };
        Daemon {
            label: label.to_string(),
            pid: child.id(),
            child: Some(child),
            log_path: log_path.to_path_buf(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The exit status if the process has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    self.status = Some(st);
                }
            }
        }
        self.status
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits until a log line satisfies `pred`. Fails (with the log) if the process exits first
    /// or the timeout passes.
    pub fn wait_for_line(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.lines().any(&pred) {
                return Ok(());
            }
            if let Some(st) = self.try_status() {
                // One last read: the line may have been written just before exiting.
                let log = self.log();
                if log.lines().any(&pred) {
                    return Ok(());
                }
                return Err(format!(
                    "{} exited ({st}) before logging {what}; its log:\n{log}",
                    self.label
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not log {what} within {timeout:?}; its log:\n{log}",
                    self.label
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a line containing the word `word`.
    pub fn wait_for_word(&mut self, word: &str, timeout: Duration) -> Result<(), String> {
        self.wait_for_line(&format!("`{word}`"), timeout, |l| contains_word(l, word))
    }

    /// Sends a signal by PID (only while the process has not been reaped).
    pub fn signal(&mut self, sig: i32) {
        if self.is_running() {
            kill_pid(self.pid, sig);
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit; SIGKILL and panic (with the log) if the
    /// process does not stop.
    pub fn stop(mut self, timeout: Duration) -> Stopped {
        self.signal(libc::SIGTERM);
        let Some(status) = self.wait_exit(timeout) else {
            kill_pid(self.pid, libc::SIGKILL);
            let _ = self.wait_exit(Duration::from_secs(5));
            panic!(
                "{} did not exit within {timeout:?} of SIGTERM; its log:\n{}",
                self.label,
                self.log()
            );
        };
        Stopped {
            label: self.label.clone(),
            status,
            log: self.log(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- log of {} (pid {}, last 60 lines) ----\n{}\n---- end of log of {} ----",
                self.label,
                self.pid,
                tail(&self.log(), 60),
                self.label
            );
        }
        if self.is_running() {
            kill_pid(self.pid, libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                kill_pid(self.pid, libc::SIGKILL);
                let _ = self.wait_exit(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::TempDir;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn waits_for_ready_and_stops_with_sigterm() {
        let dir = TempDir::new();
        let script = "trap 'echo stopped dropped_no_route=3 >&2; exit 0' TERM; \
                      echo 'already starting' >&2; sleep 0.2; echo 'INFO ready' >&2; \
                      while :; do sleep 0.05; done";
        let mut d = Daemon::spawn("fake", sh(script), &dir.join("fake.log"));
        assert!(d.wait_for_word("ready", Duration::from_secs(5)).is_ok());
        let st = d.stop(Duration::from_secs(5));
        assert!(st.status.success(), "{st:?}");
        assert!(st.log.contains("stopped dropped_no_route=3"), "{st:?}");
    }

    #[test]
    fn exit_before_ready_is_reported_with_the_log() {
        let dir = TempDir::new();
        let mut d = Daemon::spawn(
            "fake",
            sh("echo 'bad config' >&2; exit 1"),
            &dir.join("f.log"),
        );
        let err = d.wait_for_word("ready", Duration::from_secs(5));
        let Err(msg) = err else {
            panic!("expected a failure")
        };
        assert!(msg.contains("bad config"), "{msg}");
        assert!(msg.contains("exited"), "{msg}");
    }

    #[test]
    fn timeout_is_reported() {
        let dir = TempDir::new();
        let mut d = Daemon::spawn("fake", sh("sleep 5"), &dir.join("f.log"));
        assert!(d
            .wait_for_word("ready", Duration::from_millis(200))
            .is_err());
    }
}
