//! `meshd peers`, `meshd whois` and `meshd reload`: clients of the running daemon's control
//! socket.

use crate::cli::{PeersArgs, ReloadArgs, WhoisArgs};
use anyhow::{Context, Result};
use meshd::api::control::{self, PeersReply, Query, ReloadReply, Request, WhoisReply};
use meshd::api::table;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// How long the daemon may take to answer a query, and a reload (which runs nft, bounded at
/// 10 s, and `ip`).
const TIMEOUT: Duration = Duration::from_secs(5);
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one request to the daemon on `iface`; returns its reply line.
fn ask(iface: &str, request: Request) -> Result<Vec<u8>> {
    ask_within(iface, request, TIMEOUT)
}

fn ask_within(iface: &str, request: Request, timeout: Duration) -> Result<Vec<u8>> {
    let path = control::socket_path(iface);
    let mut stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "cannot reach meshd on {iface} at {}: is `meshd run` running (and are you root)?",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream
        .write_all(&request.to_line())
        .with_context(|| format!("cannot write to {}", path.display()))?;
    let mut line = Vec::new();
    BufReader::new(stream)
        .read_until(b'\n', &mut line)
        .with_context(|| format!("no reply from meshd at {}", path.display()))?;
    Ok(line)
}

pub(crate) fn peers(args: &PeersArgs) -> Result<()> {
    let line = ask(&args.interface, Request::Query(Query::Peers))?;
    let reply: PeersReply = control::parse_reply(&line)?;
    if args.json {
        print!("{}", String::from_utf8_lossy(&line));
    } else {
        print!("{}", table::render(&reply));
    }
    Ok(())
}

pub(crate) fn whois(args: &WhoisArgs) -> Result<()> {
    let line = ask(&args.interface, Request::Query(Query::Whois(args.address)))?;
    let reply: WhoisReply = control::parse_reply(&line)?;
    if args.json {
        print!("{}", String::from_utf8_lossy(&line));
    } else {
        let me = if reply.is_self { " (this node)" } else { "" };
        println!(
            "{} is {}{me}\npublic key: {}\nmatched: {}",
            reply.address, reply.node, reply.public_key, reply.matched
        );
    }
    Ok(())
}

/// Asks the daemon to reload mesh.yaml (as SIGHUP does) and prints what changed; a refused
/// config is an error (exit 1) with the daemon's reason.
pub(crate) fn reload(args: &ReloadArgs) -> Result<()> {
    let line = ask_within(&args.interface, Request::Reload, RELOAD_TIMEOUT)?;
    let reply: ReloadReply = control::parse_reply(&line)?;
    println!("reloaded {}", reply.reloaded);
    Ok(())
}
