//! Small helpers shared by the harness: unique names, the root check, finding the meshd binary,
//! running commands with clear failure messages, temporary directories.

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A token unique to this process and call: `<pid>x<n>`. The `x` keeps `pid 12, n 34` apart from
/// `pid 123, n 4`, so parallel test binaries never pick the same name.
pub fn unique_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}x{}", std::process::id(), n)
}

/// True when the e2e tests can run. Without root: prints `skipping: needs root` and returns false,
/// unless the environment variable `CI` is set, where a skipped e2e suite would hide breakage, so
/// it panics instead.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("the e2e tests need root (network namespaces) and CI is set: refusing to skip");
    }
    eprintln!("skipping: needs root");
    false
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The meshd binary: `$MESHD_BIN`, else `<target>/release/meshd`, else `<target>/debug/meshd`
/// (`<target>` is `$CARGO_TARGET_DIR`, then `<workspace>/target`). Panics with a clear message
/// if there is none.
pub fn meshd_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("MESHD_BIN") {
            let p = PathBuf::from(p);
            if !p.is_file() {
                panic!("MESHD_BIN={} is not a file", p.display());
            }
            eprintln!("using meshd binary {} (from MESHD_BIN)", p.display());
            return p;
        }
        let mut targets = Vec::new();
        if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
            targets.push(PathBuf::from(t));
        }
        targets.push(workspace_root().join("target"));
        let mut looked = Vec::new();
        for target in &targets {
            for profile in ["release", "debug"] {
                let p = target.join(profile).join("meshd");
                if p.is_file() {
                    eprintln!("using meshd binary {}", p.display());
                    return p;
                }
                looked.push(p.display().to_string());
            }
        }
        panic!(
            "no meshd binary: set MESHD_BIN, or build one with `cargo build --release -p meshd` \
             (looked for {})",
            looked.join(", ")
        )
    })
    .clone()
}

/// Renders a command for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion, capturing its output. Panics only if it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null());
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run `{}`: {e}", describe(cmd)),
    }
}

/// Runs a command that must succeed; returns its stdout. Panics with the command, status and
/// stderr otherwise.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    if !out.status.success() {
        panic!(
            "`{}` failed ({}):\nstdout: {}\nstderr: {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command with `input` on stdin; it must succeed. Returns stdout.
pub fn run_ok_stdin(cmd: &mut Command, input: &str) -> String {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot run `{}`: {e}", describe(cmd)),
    };
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(e) = stdin.write_all(input.as_bytes()) {
            panic!("writing to `{}`: {e}", describe(cmd));
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => panic!("waiting for `{}`: {e}", describe(cmd)),
    };
    if !out.status.success() {
        panic!(
            "`{}` failed ({}):\ninput:\n{input}\nstderr: {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a command that was given a deadline did.
#[derive(Debug)]
pub struct TimedOutput {
    /// `None` when it did not exit in time and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a command with stdout and stderr going to files in `dir`, killing it (by PID) if it has not
/// exited after `timeout`.
pub fn output_with_timeout(cmd: &mut Command, dir: &Path, timeout: Duration) -> TimedOutput {
    let id = unique_id();
    let out_path = dir.join(format!("cmd-{id}.stdout"));
    let err_path = dir.join(format!("cmd-{id}.stderr"));
    let (out_f, err_f) = match (fs::File::create(&out_path), fs::File::create(&err_path)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => panic!("cannot create output files in {}", dir.display()),
    };
    cmd.stdin(Stdio::null()).stdout(out_f).stderr(err_f);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("cannot run `{}`: {e}", describe(cmd)),
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                crate::process::kill_pid(child.id(), libc::SIGKILL);
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for `{}`: {e}", describe(cmd)),
        }
    };
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    TimedOutput {
        status,
        stdout,
        stderr,
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes. Returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A private temporary directory (mode 0700), removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("mdt-{}", unique_id()));
        if let Err(e) = fs::DirBuilder::new().mode(0o700).create(&path) {
            panic!("cannot create {}: {e}", path.display());
        }
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MDT_KEEP").is_some() {
            eprintln!("MDT_KEEP set: keeping {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The last `n` lines of a text, for failure messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

/// Whether `word` occurs in `line` as a whole word (so `ready` does not match `already`).
pub fn contains_word(line: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The bytes a base64 string (a WireGuard key) stands for, in lowercase hex: how a key would
/// look if something printed it in hex.
pub fn hex_of_base64(b64: &str) -> String {
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "printf %s \"$0\" | base64 -d | od -An -tx1 | tr -d ' \\n'",
            b64,
        ])
        .output()
        .expect("run base64");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_differ() {
        assert_ne!(unique_id(), unique_id());
    }

    #[test]
    fn whole_words() {
        assert!(contains_word("INFO meshd: ready iface=meshd0", "ready"));
        assert!(contains_word("ready", "ready"));
        assert!(contains_word("x: ready.", "ready"));
        assert!(!contains_word("already up", "ready"));
        assert!(!contains_word("readyness", "ready"));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
