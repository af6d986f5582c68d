//! `meshd-attacker`: floods a WireGuard port for meshd's tests and `benches/flood.sh`.

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use clap::Parser;
use meshd_e2e::attack::{flood, FloodConfig, Kind};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Floods a WireGuard UDP port with what anyone on the internet can send it.
#[derive(Parser, Debug)]
#[command(name = "meshd-attacker")]
struct Args {
    /// The target's WireGuard port.
    #[arg(long)]
    target: SocketAddr,
    /// The target's public key (base64): mac1 and cookies are keyed with it.
    #[arg(long)]
    responder_key: String,
    /// garbage, init-mac1, init-mac2 or impersonate.
    #[arg(long)]
    kind: Kind,
    /// Datagrams a second; 0 = as fast as the socket takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to flood, seconds.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Local address to send from.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// For impersonate: the public key (base64) the initiations claim.
    #[arg(long)]
    claim: Option<String>,
    /// Put a valid mac2 on initiations once the target sent a cookie (init-mac2 always does).
    #[arg(long)]
    mac2: bool,
    /// Print the summary as one line of JSON.
    #[arg(long)]
    json: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn key(what: &str, b64: &str) -> Result<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .with_context(|| format!("{what}: not base64"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("{what}: {} bytes, a key has 32", b.len()))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshd-attacker: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    if !(args.secs.is_finite() && args.secs > 0.0) {
        bail!("--secs must be a positive number of seconds");
    }
    let claim = match (&args.claim, args.kind) {
        (Some(c), Kind::Impersonate) => Some(key("--claim", c)?),
        (None, Kind::Impersonate) => bail!("--kind impersonate needs --claim KEY"),
        (Some(_), _) => bail!("--claim is for --kind impersonate only"),
        (None, _) => None,
    };
    if args.mac2 && args.kind == Kind::Garbage {
        bail!("--mac2 is for initiations (init-mac1, impersonate)");
    }
    let cfg = FloodConfig {
        target: args.target,
        bind: args.bind,
        responder: key("--responder-key", &args.responder_key)?,
        kind: args.kind,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.secs),
        claim,
        mac2: args.mac2,
    };
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
    let s = flood::run(&cfg, &STOP).with_context(|| format!("flooding {}", args.target))?;
    if args.json {
        println!("{}", s.to_json());
    } else {
        println!("{} to {} for {:.1} s", s.kind, s.target, s.secs);
        println!(
            "  sent {} ({:.0}/s), refused {}",
            s.sent, s.achieved_rate, s.send_errors
        );
        for (k, n) in &s.sent_by_kind {
            println!("    {k}: {n}");
        }
        println!(
            "  cookie replies {} (decrypted {}, bad {}), cookies used {}, with mac2 {}",
            s.cookie_replies, s.cookies_decrypted, s.cookies_bad, s.cookies_used, s.mac2_sent
        );
        println!("  other datagrams received {}", s.other_received);
    }
    Ok(())
}
