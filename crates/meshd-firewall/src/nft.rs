//! The thin edge to the `nft` tool: apply one transaction, read the table back, remove it.
//! Every nft invocation names table `inet meshd`; nothing here lists, flushes or deletes
//! anything else.

use crate::ruleset::{to_json, TABLE};
use nftables::schema::{NfListObject, NfObject, Nftables};
use std::io::Write;
use std::process::{Command, Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run nft ({0}); install the nftables package")]
    Missing(std::io::Error),
    #[error("nft refused the ruleset: {0}")]
    Refused(String),
    #[error("table inet {TABLE} is not installed")]
    Absent,
    #[error("table inet {TABLE} differs from what meshd installed: {0}")]
    Differs(String),
}

fn run(args: &[&str], stdin: Option<&str>) -> Result<Output, FirewallError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(FirewallError::Missing)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .map_err(FirewallError::Missing)?;
    }
    child.wait_with_output().map_err(FirewallError::Missing)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// Applies the transaction (atomic: all of it or nothing), then verifies it.
pub fn apply(ruleset: &Nftables<'_>) -> Result<(), FirewallError> {
    let out = run(&["-j", "-f", "-"], Some(&to_json(ruleset)))?;
    if !out.status.success() {
        return Err(FirewallError::Refused(stderr(&out)));
    }
    verify(ruleset)
}

/// Counts of what a ruleset holds: (chains, rules, sets).
fn shape(objects: &[NfObject<'_>]) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for o in objects {
        let obj = match o {
            NfObject::ListObject(l) => l,
            NfObject::CmdObject(nftables::schema::NfCmd::Add(l)) => l,
            _ => continue,
        };
        match obj {
            NfListObject::Chain(_) => counts.0 += 1,
            NfListObject::Rule(_) => counts.1 += 1,
            NfListObject::Set(_) => counts.2 += 1,
            _ => {}
        }
    }
    counts
}

/// Reads table `inet meshd` back and checks it has the chains, rules and sets `ruleset`
/// installs: catches a deleted table, a flushed ruleset or a flushed chain.
pub fn verify(ruleset: &Nftables<'_>) -> Result<(), FirewallError> {
    let out = run(&["-j", "list", "table", "inet", TABLE], None)?;
    if !out.status.success() {
        return Err(FirewallError::Absent);
    }
    let listed: Nftables<'_> = serde_json::from_slice(&out.stdout)
        .map_err(|e| FirewallError::Differs(format!("unreadable listing: {e}")))?;
    let (want, got) = (shape(&ruleset.objects), shape(&listed.objects));
    if want != got {
        return Err(FirewallError::Differs(format!(
            "expected {} chains, {} rules, {} sets; found {}, {}, {}",
            want.0, want.1, want.2, got.0, got.1, got.2
        )));
    }
    Ok(())
}

/// Deletes table `inet meshd`. Returns whether there was one.
pub fn remove() -> Result<bool, FirewallError> {
    let out = run(&["list", "table", "inet", TABLE], None)?;
    if !out.status.success() {
        return Ok(false);
    }
    let out = run(&["delete", "table", "inet", TABLE], None)?;
    if !out.status.success() {
        return Err(FirewallError::Refused(stderr(&out)));
    }
    Ok(true)
}

/// The ruleset in nft syntax, exactly as nft itself prints it once installed: it is loaded
/// into a private, empty network namespace that exists only for this (`unshare --net`), and
/// listed there. Nothing is applied to the host. Needs the privilege to create a network
/// namespace (root, or unprivileged user namespaces).
pub fn render(ruleset: &Nftables<'_>) -> Result<String, FirewallError> {
    let script = format!("nft -j -f - && nft list table inet {TABLE}");
    let try_unshare = |args: &[&str]| -> Result<Output, FirewallError> {
        let mut child = Command::new("unshare")
            .args(args)
            .args(["sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(FirewallError::Missing)?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(to_json(ruleset).as_bytes())
                .map_err(FirewallError::Missing)?;
        }
        child.wait_with_output().map_err(FirewallError::Missing)
    };
    let mut out = try_unshare(&["--net"])?;
    if !out.status.success() {
        out = try_unshare(&["--user", "--map-root-user", "--net"])?;
    }
    if !out.status.success() {
        return Err(FirewallError::Refused(stderr(&out)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
