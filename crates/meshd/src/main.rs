//! meshd: the binary. CLI, logging and the exit-code contract.
//!
//! - `commands`: the subcommands that do their job and exit.
//! - `daemon`: `meshd run`, the control plane on tokio.
//! - `dataplane`: the daemon's packet threads, no tokio.
//! - `load`: reading the key and the mesh file, for all of them.

mod cli;
mod commands;
mod daemon;
mod dataplane;
mod load;
mod logging;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init();
    let result = match &cli.command {
        cli::Command::Run(args) => daemon::run(args),
        cli::Command::Check(args) => commands::check::check(args),
        cli::Command::Firewall(args) => commands::firewall::firewall(args),
        cli::Command::Peers(args) => commands::client::peers(args),
        cli::Command::Whois(args) => commands::client::whois(args),
        cli::Command::Reload(args) => commands::client::reload(args),
        cli::Command::Genkey => commands::keys::genkey(),
        cli::Command::Pubkey => commands::keys::pubkey(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::fatal(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
