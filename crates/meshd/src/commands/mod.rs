//! The subcommands other than `meshd run`: each does its job and exits.

pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod firewall;
pub(crate) mod keys;
