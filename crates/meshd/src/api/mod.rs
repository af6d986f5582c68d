//! Read-only views of the running node: the snapshot they all share, and the protocols
//! that show it (meshd's control socket, the WireGuard UAPI, Prometheus metrics over HTTP,
//! the `meshd peers` table). All pure: the daemon's I/O edges in `run` move the bytes.

pub(crate) mod control;
pub(crate) mod framing;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod snapshot;
pub(crate) mod table;
pub(crate) mod uapi;
