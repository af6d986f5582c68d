//! Data thread placement (`interface.quiet_cpu`): while traffic is light the data path's
//! thread keeps to one CPU (the first meshd may run on, or the one named), so that a lone
//! packet wakes it on a vCPU that is awake; a transfer gives it back every CPU; `off` never
//! pins it; a CPU meshd may not run on is refused with a warning, and the tunnel works.

use meshd_e2e::cpu::{allowed_in, data_thread, own_cpus};
use meshd_e2e::probe::ping_replies;
use meshd_e2e::setup::wait_until;
use meshd_e2e::topo::{overlay_cidr, pair, two_node_mesh};
use meshd_e2e::{host_of, require_root, Meshd, TcpTransfer, TransferOpts};
use std::net::SocketAddr;
use std::time::Duration;

/// The CPUs meshd `pid`'s data-path thread may run on now.
fn data_thread_cpus(pid: u32) -> String {
    let task = data_thread(pid);
    let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
    allowed_in(&status)
        .unwrap_or_else(|| panic!("no Cpus_allowed_list for meshd {pid}'s data thread"))
}

fn first_cpu(list: &str) -> String {
    list.split([',', '-'])
        .next()
        .unwrap_or_default()
        .to_string()
}

fn light_traffic(ns: &meshd_e2e::Netns, to: std::net::IpAddr) {
    // 30 pings 20 ms apart: a few wake-ups per window, well below the threshold.
    assert!(
        ping_replies(ns, to, 30, "0.02") > 0,
        "pings to {to} through the tunnel failed"
    );
}

#[test]
fn light_traffic_keeps_the_data_thread_to_one_cpu_and_a_transfer_spreads_it() {
    if !require_root() {
        return;
    }
    let all = own_cpus();
    let (a, b) = pair(false);
    let files = two_node_mesh(&a, &b).write();
    let ma = Meshd::start(&a.ns, &files, "a");
    let mb = Meshd::start(&b.ns, &files, "b");
    let (oa, ob) = (
        host_of(&overlay_cidr(1, false)),
        host_of(&overlay_cidr(2, false)),
    );
    a.ns.assert_reaches(ob);
    if first_cpu(&all) == all {
        // One CPU only: nothing to choose, and placement stays off.
        light_traffic(&a.ns, ob);
        assert_eq!(data_thread_cpus(ma.pid()), all);
        assert!(!ma.log().contains("data thread placement"), "{}", ma.log());
        let (sa, sb) = (ma.stop(), mb.stop());
        sa.assert_clean();
        sb.assert_clean();
        return;
    }
    let one = first_cpu(&all);
    assert!(
        ma.log().contains(&format!(
            "data thread placement: CPU {one} while traffic is light"
        )),
        "{}",
        ma.log()
    );
    light_traffic(&a.ns, ob);
    assert_eq!(data_thread_cpus(ma.pid()), one, "a, after pings");
    assert_eq!(data_thread_cpus(mb.pid()), one, "b, after pings");

    // A transfer: both ends get every CPU back while it runs.
    let dst = SocketAddr::new(ob, 5001);
    let t = TcpTransfer::start(
        b.ns.name(),
        a.ns.name(),
        dst,
        TransferOpts::bytes(2_000_000_000),
    )
    .expect("start the transfer");
    let (mut spread_a, mut spread_b) = (false, false);
    wait_until(Duration::from_secs(60), || {
        spread_a |= data_thread_cpus(ma.pid()) == all;
        spread_b |= data_thread_cpus(mb.pid()) == all;
        (spread_a && spread_b) || t.received() >= 2_000_000_000
    });
    let report = t
        .wait(Duration::from_secs(120))
        .expect("transfer through the tunnel");
    assert!(report.is_intact(2_000_000_000), "{report:?}");
    assert!(
        spread_a && spread_b,
        "during a {:.0} Mbit/s transfer: a spread {spread_a}, b spread {spread_b}",
        report.mbit_per_s()
    );

    // Light again: back to the one CPU, both ways.
    light_traffic(&b.ns, oa);
    assert_eq!(data_thread_cpus(ma.pid()), one, "a, after the transfer");
    assert_eq!(data_thread_cpus(mb.pid()), one, "b, after the transfer");
    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
}

#[test]
fn quiet_cpu_names_the_cpu_or_turns_placement_off() {
    if !require_root() {
        return;
    }
    let all = own_cpus();
    let last = all
        .rsplit([',', '-'])
        .next()
        .unwrap_or_default()
        .to_string();
    let (a, b) = pair(false);
    let mut mesh = two_node_mesh(&a, &b);
    // a is told the last CPU it may use, b is told never to pin.
    let files_a = {
        mesh.quiet_cpu = Some(last.clone());
        mesh.write()
    };
    let files_b = {
        mesh.quiet_cpu = Some("off".into());
        mesh.write()
    };
    let ma = Meshd::start(&a.ns, &files_a, "a");
    let mb = Meshd::start(&b.ns, &files_b, "b");
    let ob = host_of(&overlay_cidr(2, false));
    a.ns.assert_reaches(ob);
    light_traffic(&a.ns, ob);
    if first_cpu(&all) != all {
        assert_eq!(data_thread_cpus(ma.pid()), last, "a, quiet_cpu: {last}");
    }
    assert_eq!(data_thread_cpus(mb.pid()), all, "b, quiet_cpu: off");
    assert!(!mb.log().contains("data thread placement"), "{}", mb.log());
    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
}

#[test]
fn a_cpu_meshd_may_not_use_is_refused_with_a_warning_and_the_tunnel_works() {
    if !require_root() {
        return;
    }
    let all = own_cpus();
    let (a, b) = pair(false);
    let mut mesh = two_node_mesh(&a, &b);
    mesh.quiet_cpu = Some("1023".into());
    let files = mesh.write();
    let ma = Meshd::start(&a.ns, &files, "a");
    let mb = Meshd::start(&b.ns, &files, "b");
    let ob = host_of(&overlay_cidr(2, false));
    a.ns.assert_reaches(ob);
    light_traffic(&a.ns, ob);
    assert!(
        ma.log()
            .contains("data thread placement off: CPU 1023 is not one meshd may run on"),
        "{}",
        ma.log()
    );
    assert_eq!(data_thread_cpus(ma.pid()), all);
    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
}
