//! meshd's library half: what the binary and the fuzz targets share.
//!
//! - [`api`]: the read-only protocols (control socket, UAPI, metrics over HTTP, the peers
//!   table), pure functions over a snapshot of the running node.

pub mod api;
