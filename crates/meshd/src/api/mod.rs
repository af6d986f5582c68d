//! Read-only views of the running node: the snapshot they all share, and the protocols
//! that show it (meshd's control socket, the WireGuard UAPI, Prometheus metrics).

pub(crate) mod snapshot;
