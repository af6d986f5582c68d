//! meshd: the binary. CLI, logging and the exit-code contract; the daemon lives in `run`.

mod bounded;
mod check;
mod cli;
mod firewall;
mod keyfile;
mod keys;
mod load;
mod logging;
mod run;
mod status;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init();
    let result = match &cli.command {
        cli::Command::Run(args) => run::run(args),
        cli::Command::Check(args) => check::check(args),
        cli::Command::Firewall(args) => firewall::firewall(args),
        cli::Command::Peers(args) => status::peers(args),
        cli::Command::Whois(args) => status::whois(args),
        cli::Command::Reload(args) => status::reload(args),
        cli::Command::Genkey => keys::genkey(),
        cli::Command::Pubkey => keys::pubkey(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::fatal(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
