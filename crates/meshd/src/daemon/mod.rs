//! `meshd run`: the daemon, its control plane on one tokio thread (signals, reloads, DNS, the
//! firewall's guard, the control and metrics servers, systemd), the data plane on threads of
//! its own ([`crate::dataplane`]).
//!
//! Start-up order matters: everything that can fail on bad input (key, config, plan, sockets)
//! is checked before the device exists, so a refused start leaves nothing behind.

mod admission;
mod control_server;
mod dns;
mod firewall_guard;
mod metrics_server;
mod reload;
mod state;
mod systemd;

use crate::cli::NodeArgs;
use crate::dataplane::udp::ListeningSockets;
use crate::dataplane::{
    data_thread, device, handshake_queue, handshake_worker, health, timers, DataPlane,
};
use crate::load;
use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use meshd_core::config::Metrics;
use meshd_core::node::{slot_size, Node};
use meshd_core::plan::NodePlan;
use state::Daemon;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

pub(crate) fn run(args: &NodeArgs) -> Result<()> {
    one_malloc_arena();
    let (plan, key) = load::load_plan(args, true)?;
    let key = key.context("no private key")?;
    // The runtime carries the control plane (signals, sockets, metrics, reloads, the
    // firewall's guard); the data path has threads of its own (`spawn_data_plane_thread`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let node = Node::new(&plan, &key);
    drop(key);
    let result = runtime.block_on(serve(args.clone(), plan, node));
    // The data path's threads hold the device until the process exits, and the kernel
    // removes it then.
    runtime.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped {}", result?);
    Ok(())
}

/// One malloc arena for the whole process, set before any thread starts.
/// - The plans a start and each reload build on threads of their own otherwise land in
///   arenas of their own, each keeping its freed pieces: a node of a 10,000-node mesh holds
///   46 MB idle with glibc's default and 32 MB with one arena (`docs/scale.md`).
/// - The data path allocates nothing per packet, so its threads do not wait on the arena.
fn one_malloc_arena() {
    // SAFETY: mallopt only sets a glibc tunable; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn drop_summary(node: &Node) -> String {
    let mut s = String::new();
    for (reason, n) in node.drops().snapshot() {
        let _ = write!(s, "dropped_{}={n} ", reason.as_str());
    }
    s.trim_end().to_string()
}

/// Starts one data-plane loop on a thread of its own, named `name`. Such a loop only ends on
/// an error (or a panic, turned into one), which comes back on `fatal`.
fn spawn_data_plane_thread(
    name: &str,
    fatal: &tokio::sync::mpsc::UnboundedSender<anyhow::Error>,
    plane: &Arc<DataPlane>,
    body: fn(Arc<DataPlane>) -> Result<Infallible>,
) -> Result<()> {
    let (fatal, plane, what) = (fatal.clone(), Arc::clone(plane), name.to_string());
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let error = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(plane)))
            {
                Ok(Err(e)) => e,
                Err(panic) => anyhow::anyhow!("panicked: {}", panic_message(&*panic)),
            };
            let error = error.context(format!("{what} ended"));
            let _ = fatal.send(error.context("data path failed"));
        })
        .with_context(|| format!("cannot start the {name} thread"))?;
    Ok(())
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// An offload switch: on unless the environment variable says `off` (for comparing, and as
/// a way out should a kernel mishandle one).
fn switch(name: &str) -> bool {
    std::env::var(name).map_or(true, |v| v != "off")
}

/// Runs the node until SIGTERM/SIGINT; returns the drop summary for the last log line.
async fn serve(args: NodeArgs, plan: NodePlan, node: Node) -> Result<String> {
    let sockets = ListeningSockets::bind(plan.interface.listen_port, switch("MESHD_UDP_OFFLOAD"))?;
    sockets.refuse(|r| r.set_highest_slot(node.highest_slot()));
    let metrics = match plan.interface.metrics {
        Metrics::Listen(addr) => Some(metrics_server::bind(addr)?),
        Metrics::Off => None,
    };
    let control = control_server::bind(&meshd::api::control::socket_path(&plan.interface.name))?;
    let uapi = control_server::bind(&meshd::api::uapi::socket_path(&plan.interface.name))?;
    // The firewall first: if nft is missing or refuses the table, no tunnel comes up.
    let guard = firewall_guard::FirewallGuard::install(meshd_firewall::ruleset(&plan)).await?;
    let device = device::create(&plan, switch("MESHD_TUN_OFFLOAD"))?;
    tracing::info!(
        "offloads tun={} udp_gso={} udp_gro={} busy_poll={}us",
        if device.offload { "on" } else { "off" },
        sockets.v4.gso_segments(),
        sockets.v4.gro_segments(),
        plan.interface.busy_poll
    );
    let plane = Arc::new(DataPlane {
        node: ArcSwap::from_pointee(node),
        device: device.device,
        tun_offload: device.offload,
        sockets,
        stride: slot_size(plan.interface.mtu),
        health: health::Health::default(),
        busy_poll: Duration::from_micros(plan.interface.busy_poll.into()),
        connect_peers: switch("MESHD_CONNECTED_SOCKETS"),
        quiet_cpu: plan.interface.quiet_cpu,
        handshakes: handshake_queue::HandshakeQueue::default(),
    });
    let (fatal_tx, mut fatal) = tokio::sync::mpsc::unbounded_channel();
    spawn_data_plane_thread("meshd-data", &fatal_tx, &plane, data_thread::run)?;
    spawn_data_plane_thread("meshd-timers", &fatal_tx, &plane, timers::run)?;
    spawn_data_plane_thread("meshd-handshake", &fatal_tx, &plane, handshake_worker::run)?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(Arc::clone(&guard).watch());
    let daemon = Arc::new(Daemon {
        plan: ArcSwap::from_pointee(plan.clone()),
        plane: Arc::clone(&plane),
        guard,
        reloader: tokio::sync::Mutex::new(reload::Reloader::new(args)),
        reload_counts: reload::ReloadCounts::default(),
        stopping: AtomicBool::new(false),
        fatal: fatal_tx,
    });
    daemon.follow_dns().await;
    if let Some(listener) = metrics {
        tasks.spawn(metrics_server::serve(listener, Arc::clone(&daemon)));
    }
    tasks.spawn(control_server::serve_control(control, Arc::clone(&daemon)));
    tasks.spawn(control_server::serve_uapi(uapi, Arc::clone(&daemon)));

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tracing::info!(
        "ready node={} interface={} address={} listen_port={} peers={} public_key={}",
        plan.me.name,
        plan.interface.name,
        plan.me.address,
        plan.interface.listen_port,
        plan.peers.len(),
        plan.me.public_key.to_base64()
    );
    // Firewall and device are up: tell systemd (Type=notify), and keep its watchdog fed.
    systemd::notify(&format!(
        "READY=1\nSTATUS=node {} on {}",
        plan.me.name, plan.interface.name
    ));
    if let Some(every) = systemd::watchdog_interval() {
        tasks.spawn(systemd::watchdog(every, Arc::clone(&plane)));
    }
    let outcome = loop {
        tokio::select! {
            _ = term.recv() => break Ok(()),
            _ = int.recv() => break Ok(()),
            _ = hup.recv() => {
                let _ = daemon.reload().await;
            }
            Some(error) = fatal.recv() => break Err(error),
            Some(ended) = tasks.join_next() => {
                break match ended {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(anyhow::anyhow!("task ended: {e}")),
                };
            }
        }
    };
    // A reload under way ends first, and none starts after.
    daemon.stopping.store(true, Ordering::Relaxed);
    let mut reloader = daemon.reloader.lock().await;
    reloader.stop_following();
    systemd::notify("STOPPING=1");
    tasks.shutdown().await;
    outcome?;
    drop(reloader);
    Ok(drop_summary(&plane.node.load()))
}
