//! The TUN device: created with the node's overlay address (which routes the mesh prefix into
//! it) and the routes of every peer's subnets. The device is not persistent: it disappears
//! with the process, however the process ends.

use anyhow::{bail, Context, Result};
use ipnet::IpNet;
use meshd_core::plan::NodePlan;
use std::process::Command;
use tun_rs::{AsyncDevice, DeviceBuilder};

pub(crate) fn create(plan: &NodePlan) -> Result<AsyncDevice> {
    let name = &plan.interface.name;
    let address = plan.me.address;
    let builder = DeviceBuilder::new().name(name).mtu(plan.interface.mtu);
    let builder = match address {
        IpNet::V4(a) => builder.ipv4(a.addr(), a.prefix_len(), None),
        IpNet::V6(a) => builder.ipv6(a.addr(), a.prefix_len()),
    };
    let device = builder.build_async().with_context(|| {
        format!("cannot create TUN device {name} (needs CAP_NET_ADMIN and /dev/net/tun)")
    })?;
    for route in plan.extra_routes() {
        add_route(name, route)?;
    }
    Ok(device)
}

/// Routes a peer's subnet into the device. iproute2 is the one tool every Linux server has; a
/// netlink client would be one more thing to trust for four lines of work. `add`, never
/// `replace`: a route the host already has (its own LAN, say) must not be taken over and then
/// vanish with the device.
fn add_route(device: &str, route: IpNet) -> Result<()> {
    let family = if matches!(route, IpNet::V4(_)) {
        "-4"
    } else {
        "-6"
    };
    let out = Command::new("ip")
        .args([family, "route", "add", &route.to_string(), "dev", device])
        .output()
        .context("cannot run `ip` to add routes (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "cannot route {route} (routes of a peer) into {device}: {} \
             (does this host already have a route for {route}?)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
