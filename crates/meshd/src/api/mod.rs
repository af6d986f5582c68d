//! Read-only views of the running node: the snapshot they all share, and the protocols
//! that show it (meshd's control socket, the WireGuard UAPI, Prometheus metrics over HTTP,
//! the `meshd peers` table). All pure: the daemon's servers move the bytes.

pub mod control;
pub mod framing;
pub mod http;
pub mod metrics;
pub mod snapshot;
pub mod table;
#[cfg(test)]
mod test_support;
pub mod uapi;
