//! The busy-poll (`interface.busy_poll`) runs only while traffic is light. A transfer paced
//! by a link shaped to 1 Gbit/s brings its datagrams further apart than a long busy-poll
//! lasts; if the data threads spun between them, they would use several times the CPU they
//! use without a busy-poll. Here the longest one allowed (1000 µs) costs about nothing.

use meshd_e2e::cpu::{data_thread, thread_cpu};
use meshd_e2e::topo::{overlay_cidr, pair, two_node_mesh, Host};
use meshd_e2e::{host_of, require_root, Meshd, TcpTransfer, TransferOpts};
use std::net::SocketAddr;
use std::time::Duration;

const BYTES: u64 = 200_000_000;

/// Both veth ends at 1 Gbit/s, as the bench's shaped link.
fn shape(h: &Host) {
    h.ns.exec_ok(&[
        "tc", "qdisc", "replace", "dev", &h.dev, "root", "tbf", "rate", "1gbit", "burst", "256kb",
        "latency", "10ms",
    ]);
}

/// The CPU time both data threads use over one paced transfer with `busy_poll` µs; with the
/// throughput, for the messages.
fn paced_transfer_cpu(a: &Host, b: &Host, busy_poll: u32) -> (Duration, f64) {
    let mut mesh = two_node_mesh(a, b);
    mesh.busy_poll = Some(busy_poll);
    let files = mesh.write();
    let ma = Meshd::start(&a.ns, &files, "a");
    let mb = Meshd::start(&b.ns, &files, "b");
    let ob = host_of(&overlay_cidr(2, false));
    a.ns.assert_reaches(ob);
    let (ta, tb) = (data_thread(ma.pid()), data_thread(mb.pid()));
    let before = thread_cpu(&ta) + thread_cpu(&tb);
    let t = TcpTransfer::start(
        b.ns.name(),
        a.ns.name(),
        SocketAddr::new(ob, 5001),
        TransferOpts::bytes(BYTES),
    )
    .expect("start the transfer");
    let report = t
        .wait(Duration::from_secs(120))
        .expect("transfer through the tunnel");
    let used = thread_cpu(&ta) + thread_cpu(&tb) - before;
    assert!(report.is_intact(BYTES), "busy_poll {busy_poll}: {report:?}");
    let (sa, sb) = (ma.stop(), mb.stop());
    sa.assert_clean();
    sb.assert_clean();
    (used, report.mbit_per_s())
}

#[test]
fn a_paced_transfer_costs_no_more_cpu_with_the_longest_busy_poll_than_with_none() {
    if !require_root() {
        return;
    }
    let (a, b) = pair(false);
    shape(&a);
    shape(&b);
    // Alternating, so that a slow spell of the machine does not fall on one side only.
    let mut runs = Vec::new();
    for busy_poll in [0, 1000, 0, 1000] {
        runs.push((busy_poll, paced_transfer_cpu(&a, &b, busy_poll)));
    }
    let total = |want: u32| -> Duration {
        runs.iter()
            .filter(|(bp, _)| *bp == want)
            .map(|(_, (cpu, _))| *cpu)
            .sum()
    };
    let (none, longest) = (total(0), total(1000));
    eprintln!("busy_poll 1000 µs {longest:?}, busy_poll 0 {none:?}; runs: {runs:?}");
    // Spinning between the datagrams would make it 3 to 5 times as much; measured here, the
    // two are within a few per cent. The slack is for a noisy machine.
    assert!(
        longest.as_secs_f64() <= 1.5 * none.as_secs_f64() + 0.2,
        "data threads' CPU over two paced transfers of {BYTES} bytes: busy_poll 1000 µs {longest:?}, \
         busy_poll 0 {none:?}; runs (busy_poll, (cpu, Mbit/s)): {runs:?}"
    );
}
