//! The command line.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "meshd",
    version,
    about = "A userspace WireGuard mesh daemon for Linux servers"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the node in the foreground: tunnel up, then serve until SIGTERM.
    Run(NodeArgs),
    /// Validate the config and print this node's peers and rules (exit 0 valid, 1 invalid).
    Check(CheckArgs),
    /// Print the nftables table this node installs (nft syntax); applies nothing to the host.
    Firewall(FirewallArgs),
    /// Status of the running daemon: one row per peer (name, address, endpoint, handshake,
    /// transfer, state, keepalive).
    Peers(PeersArgs),
    /// Which node an overlay address belongs to (name, public key).
    Whois(WhoisArgs),
    /// Make the running daemon re-read mesh.yaml (as SIGHUP does) and print what changed;
    /// exit 1, with the reason, if it refused the new config (it then runs on unchanged).
    Reload(ReloadArgs),
    /// Print a new private key (same format as `wg genkey`).
    Genkey,
    /// Read a private key on stdin and print its public key (same format as `wg pubkey`).
    Pubkey,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct NodeArgs {
    /// The mesh config shared by every node.
    #[arg(long, default_value = "/etc/meshd/mesh.yaml")]
    pub(crate) config: PathBuf,
    /// This node's private key [default: $CREDENTIALS_DIRECTORY/private.key, then
    /// /etc/meshd/private.key].
    #[arg(long)]
    pub(crate) private_key: Option<PathBuf>,
    /// Assert (run) or choose (check, without a key) which node this is.
    #[arg(long)]
    pub(crate) node: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct FirewallArgs {
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Print the nft JSON transaction (what `nft -j -f -` takes) instead of nft syntax.
    #[arg(long, conflicts_with = "remove")]
    pub(crate) json: bool,
    /// Remove meshd's table `inet meshd` from this host (for uninstalling).
    #[arg(long)]
    pub(crate) remove: bool,
    /// With --remove: the mesh interface the table belongs to (there is one table per host).
    #[arg(long, default_value = "meshd0", requires = "remove")]
    pub(crate) interface: String,
}

#[derive(Debug, Args)]
pub(crate) struct PeersArgs {
    /// The mesh interface of the daemon to ask.
    #[arg(long, default_value = "meshd0")]
    pub(crate) interface: String,
    /// Print the reply as JSON (schema: docs/control-protocol.md).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) node: NodeArgs,
    /// Print only errors (for scripts, e.g. `meshd check --quiet && systemctl reload meshd`).
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    /// The mesh interface of the daemon to reload.
    #[arg(long, default_value = "meshd0")]
    pub(crate) interface: String,
}

#[derive(Debug, Args)]
pub(crate) struct WhoisArgs {
    /// An overlay address, e.g. 10.100.0.3.
    pub(crate) address: std::net::IpAddr,
    /// The mesh interface of the daemon to ask.
    #[arg(long, default_value = "meshd0")]
    pub(crate) interface: String,
    /// Print the reply as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}
