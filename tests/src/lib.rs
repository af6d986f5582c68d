//! meshd's end-to-end test harness.
//!
//! Everything runs inside network namespaces the tests create (`mdt-<pid>x<n>`), linked by veth
//! pairs or through a bridge in a "switch" namespace, with addresses from the documentation
//! ranges only (192.0.2.0/24, 198.51.100.0/24, 10.100.0.0/16, 2001:db8::/32). Nothing touches
//! the machine's own namespace: no address, route or firewall rule outside the test namespaces.
//! Every resource has a drop guard (namespaces deleted, processes killed by PID) that runs even
//! when a test panics.
//!
//! - [`netns`]: namespaces, veth pairs, switches, ping.
//! - [`process`]: background processes with a log file, stopped by PID.
//! - [`mesh`]: keys, `mesh.yaml`, meshd nodes.
//! - [`wggo`]: wireguard-go peers.
//! - [`transfer`]: TCP transfers with a checksum and UDP probes, from threads inside namespaces.
//! - [`nft`]: packet counters inside a namespace.
//! - [`pmtu`]: forged path MTU errors (ICMP, ICMPv6) and the path MTU a namespace learnt.
//! - [`pulse`]: numbered UDP datagrams at a steady pace, timed on arrival (outages, recovery).
//! - [`probe`]: TCP listeners and single connect attempts (did a SYN-ACK come back?), ping counts.
//! - [`scrape`]: a running meshd's metrics endpoint and Unix sockets.
//! - [`attack`]: a WireGuard attacker (garbage, initiations, cookies) and
//!   the `meshd-attacker` binary in a namespace.
//!
//! # Running
//!
//! `scripts/test.sh` runs everything (as root). By hand, as root:
//!
//! ```text
//! cargo build --release -p meshd
//! cargo test --profile release-tests -p meshd-e2e               # all scenarios
//! cargo test --profile release-tests -p meshd-e2e --test roaming -- --nocapture
//! ```
//!
//! - The meshd binary is `$MESHD_BIN`, else `target/release/meshd`, else `target/debug/meshd`.
//! - `MESHD_LOG=debug` raises the nodes' log level; a failing test prints the tail of every
//!   daemon's log.
//! - `MDT_KEEP=1` keeps the temp dirs (`/tmp/mdt-*`: configs, keys, logs) for a look afterwards.
//! - Without root the tests print `skipping: needs root` and pass, unless `CI` is set, where
//!   they fail.
//! - `harness_selftest` needs no meshd: it proves the harness on wireguard-go pairs;
//!   `attacker_selftest` neither: it proves `meshd-attacker` on wireguard-go.

pub mod attack;
pub mod command;
pub mod cpu;
pub mod mesh;
pub mod netns;
pub mod nft;
pub mod pmtu;
pub mod probe;
pub mod process;
pub mod pulse;
pub mod scrape;
pub mod setup;
pub mod storm;
pub mod text;
pub mod topo;
pub mod transfer;
pub mod wggo;

pub use mesh::{Key, MeshFiles, MeshSpec, Meshd, MeshdOpts, MeshdStopped};
pub use netns::{host_of, ip, veth, Netns, Switch};
pub use setup::{meshd_bin, require_root, TempDir};
pub use transfer::{assert_tcp_transfer, udp_send, TcpTransfer, TransferOpts, UdpCollector};
pub use wggo::WgGo;

/// Megabytes, for transfer sizes.
pub const MB: u64 = 1_000_000;
