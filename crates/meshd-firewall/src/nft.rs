//! The thin edge to the `nft` tool: apply one transaction, read the table back, remove it.
//! Every nft invocation names table `inet meshd`; nothing here lists, flushes or deletes
//! anything else. Every invocation is bounded in time: an nft that hangs is killed and
//! reported, never waited on for ever.

use crate::ruleset::{to_json, TABLE};
use nftables::schema::Nftables;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long one nft (or unshare) invocation may take before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run {program} ({source}); install the {package} package")]
    Missing {
        program: &'static str,
        package: &'static str,
        source: std::io::Error,
    },
    #[error("{program} did not finish within {}s and was killed", .after.as_secs())]
    Timeout {
        program: &'static str,
        after: Duration,
    },
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
    #[error("cannot read table inet {TABLE}: {0}")]
    Unreadable(String),
    #[error("table inet {TABLE} is not installed")]
    Absent,
    #[error("table inet {TABLE} differs from what meshd installed")]
    Differs,
}

/// What one finished invocation left behind.
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `program args`, feeding `stdin`, and waits at most `timeout`. A write error on
/// stdin (the program exited early, e.g. because it is not allowed to run) is not an error
/// in itself: the exit status and stderr say what happened.
fn run_program(
    program: &'static str,
    package: &'static str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, FirewallError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FirewallError::Missing {
            program,
            package,
            source,
        })?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let input = input.to_owned();
        // Written from a thread so that a program that stops reading cannot block us past
        // the deadline; the pipe closes when the thread ends.
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(FirewallError::Timeout {
                    program,
                    after: timeout,
                });
            }
            Err(source) => {
                return Err(FirewallError::Missing {
                    program,
                    package,
                    source,
                })
            }
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&err.join().unwrap_or_default())
            .trim()
            .to_string(),
    })
}

fn run(args: &[&str], stdin: Option<&str>) -> Result<Output, FirewallError> {
    run_program("nft", "nftables", args, stdin, TIMEOUT)
}

/// nft's way of saying the table does not exist (ENOENT), as opposed to any other failure.
fn is_absent(stderr: &str) -> bool {
    stderr.contains("No such file or directory")
}

/// Table `inet meshd` as read back from nft.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// The table with what changes on its own stripped (see [`normalize`]).
    pub normalized: String,
    /// Packets counted per chain. Every counter in meshd's table sits on a path that ends in
    /// a drop, so these are the firewall's drops by chain.
    pub dropped: BTreeMap<String, u64>,
}

/// Packets of the counters in the rules of a `nft -j list` listing, summed per chain.
pub fn dropped_by_chain(listing: &[u8]) -> Result<BTreeMap<String, u64>, FirewallError> {
    let v: Value = serde_json::from_slice(listing)
        .map_err(|e| FirewallError::Unreadable(format!("not nft JSON: {e}")))?;
    let mut out = BTreeMap::new();
    let items = v["nftables"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for item in items {
        if let Some(chain) = item["chain"]["name"].as_str() {
            out.entry(chain.to_string()).or_insert(0);
        }
        let rule = &item["rule"];
        let Some(chain) = rule["chain"].as_str() else {
            continue;
        };
        let packets: u64 = rule["expr"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["counter"]["packets"].as_u64())
            .sum();
        *out.entry(chain.to_string()).or_insert(0) += packets;
    }
    Ok(out)
}

/// The table as installed, with what changes on its own stripped: handles, counter values
/// and nft's metainfo. Two listings of an untouched table normalise to the same text; a
/// deleted, flushed, emptied or edited table does not.
pub fn normalize(listing: &[u8]) -> Result<String, FirewallError> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("handle");
                if let Some(Value::Object(c)) = map.get_mut("counter") {
                    c.remove("packets");
                    c.remove("bytes");
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => {
                items.retain(|i| i.get("metainfo").is_none());
                items.iter_mut().for_each(strip);
            }
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_slice(listing)
        .map_err(|e| FirewallError::Unreadable(format!("not nft JSON: {e}")))?;
    strip(&mut v);
    Ok(v.to_string())
}

/// Reads table `inet meshd` back.
pub fn read() -> Result<Listing, FirewallError> {
    let out = run(&["-j", "list", "table", "inet", TABLE], None)?;
    if !out.status.success() {
        return Err(if is_absent(&out.stderr) {
            FirewallError::Absent
        } else {
            FirewallError::Unreadable(out.stderr)
        });
    }
    Ok(Listing {
        normalized: normalize(&out.stdout)?,
        dropped: dropped_by_chain(&out.stdout)?,
    })
}

/// Applies the transaction (atomic: all of it or nothing) and reads the table back. The
/// returned listing is what [`verify`] compares against from then on.
pub fn apply(ruleset: &Nftables<'_>) -> Result<Listing, FirewallError> {
    commit(ruleset)?;
    read()
}

/// Applies the transaction only (atomic: all of it or nothing): an error means the table is
/// as it was, unless nft had to be killed at the time limit.
pub fn commit(ruleset: &Nftables<'_>) -> Result<(), FirewallError> {
    let out = run(&["-j", "-f", "-"], Some(&to_json(ruleset)))?;
    if !out.status.success() {
        return Err(FirewallError::Refused(out.stderr));
    }
    Ok(())
}

/// Checks that table `inet meshd` is still exactly what [`apply`] installed: catches a
/// deleted table, a flushed ruleset, an emptied chain and an edited rule or set. Returns
/// the listing (with its counters) when it is.
pub fn verify(expected: &str) -> Result<Listing, FirewallError> {
    let listing = read()?;
    if listing.normalized == expected {
        Ok(listing)
    } else {
        Err(FirewallError::Differs)
    }
}

/// Deletes table `inet meshd`. Returns whether there was one.
pub fn remove() -> Result<bool, FirewallError> {
    let out = run(&["delete", "table", "inet", TABLE], None)?;
    if out.status.success() {
        Ok(true)
    } else if is_absent(&out.stderr) {
        Ok(false)
    } else {
        Err(FirewallError::Refused(out.stderr))
    }
}

/// The ruleset in nft syntax, exactly as nft itself prints it once installed: it is loaded
/// into a private, empty network namespace that exists only for this (`unshare --net`), and
/// listed there. Nothing is applied to the host. Needs the privilege to create a network
/// namespace (root, or unprivileged user namespaces).
pub fn render(ruleset: &Nftables<'_>) -> Result<String, FirewallError> {
    let script = format!("nft -j -f - && nft list table inet {TABLE}");
    let json = to_json(ruleset);
    let attempt = |ns: &[&str]| {
        let mut args = ns.to_vec();
        args.extend(["sh", "-c", &script]);
        run_program("unshare", "util-linux", &args, Some(&json), TIMEOUT)
    };
    let mut out = attempt(&["--net"])?;
    if !out.status.success() {
        out = attempt(&["--user", "--map-root-user", "--net"])?;
    }
    if !out.status.success() {
        return Err(FirewallError::Refused(out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "meshd", "handle": 7}},
        {"rule": {"family": "inet", "table": "meshd", "chain": "input", "handle": 12,
          "expr": [{"counter": {"packets": 5, "bytes": 420}}]}}]}"#;

    #[test]
    fn normalize_ignores_handles_counters_and_metainfo() {
        let moved = LISTING
            .replace("\"handle\": 7", "\"handle\": 70")
            .replace("\"handle\": 12", "\"handle\": 3")
            .replace("\"packets\": 5", "\"packets\": 9000")
            .replace("1.0.6", "1.0.9");
        let a = normalize(LISTING.as_bytes()).unwrap();
        let b = normalize(moved.as_bytes()).unwrap();
        assert_eq!(a, b);
        assert!(!a.contains("handle") && !a.contains("metainfo") && !a.contains("420"));
    }

    #[test]
    fn counters_are_summed_per_chain_and_empty_chains_are_listed() {
        let listing = r#"{"nftables": [{"metainfo": {}},
            {"chain": {"family": "inet", "table": "meshd", "name": "forward"}},
            {"rule": {"chain": "input", "expr": [{"counter": {"packets": 5, "bytes": 420}}]}},
            {"rule": {"chain": "input", "expr": [{"match": {}}, {"counter": {"packets": 2, "bytes": 80}}, {"drop": null}]}},
            {"rule": {"chain": "mesh_in", "expr": [{"accept": null}]}}]}"#;
        let d = dropped_by_chain(listing.as_bytes()).unwrap();
        let want: BTreeMap<String, u64> = [("forward", 0), ("input", 7), ("mesh_in", 0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(d, want);
    }

    #[test]
    fn normalize_sees_an_edited_rule() {
        let edited = LISTING.replace("\"chain\": \"input\"", "\"chain\": \"forward\"");
        let a = normalize(LISTING.as_bytes()).unwrap();
        let b = normalize(edited.as_bytes()).unwrap();
        assert_ne!(a, b);
        assert!(matches!(
            normalize(b"not json"),
            Err(FirewallError::Unreadable(_))
        ));
    }

    #[test]
    fn a_missing_program_is_reported_with_its_package() {
        let e = run_program(
            "meshd-no-such-program",
            "some-package",
            &[],
            Some("x"),
            TIMEOUT,
        );
        let Err(e) = e else {
            panic!("a missing program ran")
        };
        let text = e.to_string();
        assert!(text.contains("meshd-no-such-program") && text.contains("some-package"));
    }

    #[test]
    fn a_program_that_exits_before_reading_stdin_is_judged_by_its_status() {
        // `false` never reads its stdin: the write may fail with a broken pipe, which must
        // not hide the exit status.
        let big = "x".repeat(1 << 20);
        let out = run_program("false", "coreutils", &[], Some(&big), TIMEOUT);
        let out = out.expect("run `false`");
        assert!(!out.status.success());
    }

    #[test]
    fn a_hanging_program_is_killed() {
        let start = Instant::now();
        let r = run_program(
            "sleep",
            "coreutils",
            &["60"],
            None,
            Duration::from_millis(300),
        );
        assert!(matches!(
            r,
            Err(FirewallError::Timeout {
                program: "sleep",
                ..
            })
        ));
        assert!(start.elapsed() < Duration::from_secs(20));
    }
}
