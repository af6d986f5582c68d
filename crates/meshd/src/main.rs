//! meshd: the binary. CLI, logging and the exit-code contract; the daemon lives in `run`.

mod api;
mod check;
mod cli;
mod firewall;
mod keyfile;
mod keys;
mod load;
mod run;
mod status;

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn init_logging() {
    // boringtun logs its timer decisions without saying which peer they concern; meshd logs
    // what matters itself. MESHD_LOG=info,boringtun=debug brings them back.
    let filter = EnvFilter::try_from_env("MESHD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,boringtun=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // The journal stamps every line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
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
            let message = format!("{e:#}");
            // A config report is already one `file:line:column: key: message` per line.
            if message.contains('\n') {
                eprintln!("{message}");
            } else {
                eprintln!("meshd: {message}");
            }
            ExitCode::FAILURE
        }
    }
}
