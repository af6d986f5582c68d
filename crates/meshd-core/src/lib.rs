//! meshd's core: everything that can be decided without touching a socket, a device or a clock.
//!
//! - [`config`]: `mesh.yaml` parsed with positions, validated, typed.
//! - [`plan`]: what one node of the mesh must do (its peers, their AllowedIPs, its routes).
//! - [`diff`]: what a reload changes between two plans.
//! - [`trie`]: longest-prefix match over AllowedIPs, for cryptokey routing.
//! - [`node`]: the WireGuard node as a state machine around boringtun's `Tunn`: fed with
//!   packets from the TUN device and datagrams from the network, it says what to send where.
//! - [`counters`]: drop reasons and per-peer traffic counters, for metrics and status.

pub mod config;
pub mod counters;
pub mod diff;
pub mod key;
pub mod node;
pub mod packet;
pub mod plan;
pub mod trie;
