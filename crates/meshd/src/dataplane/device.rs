//! The TUN device: created with the node's overlay address (which routes the mesh prefix into
//! it) and the routes of every peer's subnets. Not persistent: it goes with the process.

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use meshd_core::plan::NodePlan;
use std::process::Command;
use tun_rs::{DeviceBuilder, SyncDevice};

/// The device (non-blocking: the data-path thread waits for it with `poll`), and whether it
/// carries offload headers (TSO/GSO in, GRO out).
pub(crate) struct Device {
    pub(crate) device: SyncDevice,
    pub(crate) offload: bool,
}

/// Packets queued towards the device in the kernel before it drops (the default is 500):
/// room for a few bursts of a fast sender.
const TX_QUEUE_LEN: u32 = 5000;

fn build(plan: &NodePlan, offload: bool) -> std::io::Result<SyncDevice> {
    let builder = DeviceBuilder::new()
        .name(&plan.interface.name)
        .mtu(plan.interface.mtu)
        .offload(offload);
    let builder = match plan.me.address {
        IpNet::V4(a) => builder.ipv4(a.addr(), a.prefix_len(), None),
        IpNet::V6(a) => builder.ipv6(a.addr(), a.prefix_len()),
    };
    let device = builder.build_sync()?;
    device.set_nonblocking(true)?;
    Ok(device)
}

/// Creates the device, with TUN offloads unless `want_offload` is false; a kernel that
/// refuses them gets a device without, and one log line saying so.
pub(crate) fn create(plan: &NodePlan, want_offload: bool) -> Result<Device> {
    let name = &plan.interface.name;
    let context =
        || format!("cannot create TUN device {name} (needs CAP_NET_ADMIN and /dev/net/tun)");
    let (device, offload) = if want_offload {
        match build(plan, true) {
            Ok(d) => (d, true),
            Err(e) => {
                tracing::warn!("TUN offload unavailable ({e}): one packet per system call");
                (build(plan, false).with_context(context)?, false)
            }
        }
    } else {
        (build(plan, false).with_context(context)?, false)
    };
    if let Err(e) = device.set_tx_queue_len(TX_QUEUE_LEN) {
        tracing::debug!("cannot set the queue length of {name}: {e}");
    }
    if offload {
        // A TSO segment must split into the buffers one read has (64): the kernel cuts
        // anything bigger before it reaches the device.
        if let Err(e) = ip(&["link", "set", "dev", name, "gso_max_segs", "64"]) {
            tracing::debug!("cannot cap the segments of {name}: {e}");
        }
    }
    for route in plan.extra_routes() {
        add_route(name, route)?;
    }
    Ok(Device { device, offload })
}

/// Runs `ip ARGS`; an error carries its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Routes a peer's subnet into the device. iproute2 is the one tool every Linux server has; a
/// netlink client would be one more thing to trust for four lines of work. `add`, never
/// `replace`: a route the host already has (its own LAN, say) must not be taken over and then
/// vanish with the device.
pub(crate) fn add_route(device: &str, route: IpNet) -> Result<()> {
    route_command("add", device, route).with_context(|| {
        format!(
            "cannot route {route} (routes of a peer) into {device} \
             (does this host already have a route for {route}?)"
        )
    })
}

/// Removes a peer's subnet route from the device (a reload that dropped it).
pub(crate) fn delete_route(device: &str, route: IpNet) -> Result<()> {
    route_command("del", device, route)
        .with_context(|| format!("cannot remove the route {route} from {device}"))
}

/// `ip -4|-6 route add|del ROUTE dev DEVICE`.
fn route_command(verb: &str, device: &str, route: IpNet) -> Result<()> {
    let family = if matches!(route, IpNet::V4(_)) {
        "-4"
    } else {
        "-6"
    };
    ip(&[family, "route", verb, &route.to_string(), "dev", device])
}
