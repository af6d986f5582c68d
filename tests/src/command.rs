//! Running commands with clear failure messages: what ran, its status and its output.

use crate::setup::unique_id;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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
                let _ = child.kill(); // SIGKILL
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
