//! meshd's host firewall: one nftables table, `inet meshd`, default drop.
//!
//! - [`policy`]: what the mesh policy lets in, as plain tuples (pure, unit-tested per shape).
//! - [`ruleset`]: the whole table as the nftables crate's schema (pure): one transaction that
//!   replaces table `inet meshd` and touches nothing else.
//! - [`nft`]: applying, verifying, removing and rendering it with the `nft` tool.

pub mod nft;
pub mod policy;
pub mod ruleset;

pub use nftables::schema::Nftables;
pub use ruleset::{ruleset, TABLE};
