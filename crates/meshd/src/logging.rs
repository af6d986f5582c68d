//! Logging: one line per event on stderr. On a terminal or in a file, with a timestamp and
//! the level; under systemd (`JOURNAL_STREAM` set), without the timestamp (the journal stamps
//! every line) and with the level as a `<N>` syslog priority prefix, which journald reads
//! (`SyslogLevelPrefix=`, on by default), so `journalctl -u meshd -p warning` works.

use std::fmt;
use std::io::IsTerminal;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The syslog priority of a level: err, warning, info, debug.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Prefixes each line of the inner format with its `<N>` priority.
struct Journal<F>(F);

impl<S, N, F> FormatEvent<S, N> for Journal<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

pub(crate) fn init() {
    // boringtun logs its timer decisions without saying which peer they concern; meshd logs
    // what matters itself. MESHD_LOG=info,boringtun=debug brings them back.
    let filter = EnvFilter::try_from_env("MESHD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,boringtun=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if journal() {
        let line = format::Format::default()
            .without_time()
            .with_target(false)
            .with_level(false);
        builder.with_ansi(false).event_format(Journal(line)).init();
    } else {
        builder.init();
    }
}

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` names its device and inode
/// (systemd.exec(5)); a shell that merely inherited the variable has another stderr.
fn journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(named) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = named.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let stderr = std::io::stderr().as_fd().try_clone_to_owned();
    let meta = stderr.and_then(|fd| std::fs::File::from(fd).metadata());
    meta.is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The error that ends the process, on stderr. A config report is already one
/// `file:line:column: key: message` per line and is printed as it is; a single message gets
/// `meshd: ` in front. In the journal each line is an entry of priority err.
pub(crate) fn fatal(message: &str) {
    let journal = journal();
    let multi = message.contains('\n');
    for line in message.lines() {
        match (journal, multi) {
            (true, _) => eprintln!("<3>{line}"),
            (false, true) => eprintln!("{line}"),
            (false, false) => eprintln!("meshd: {line}"),
        }
    }
}

/// A message as one log line: the lines of a multi-line one (a config report) joined by
/// `; `, so that one event stays one line (one journal entry).
pub(crate) fn one_line(message: &str) -> String {
    message.lines().collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(
            [
                Level::ERROR,
                Level::WARN,
                Level::INFO,
                Level::DEBUG,
                Level::TRACE
            ]
            .map(priority),
            [3, 4, 6, 7, 7]
        );
    }

    #[test]
    fn a_report_becomes_one_line() {
        assert_eq!(one_line("a:1: x\nb:2: y\n"), "a:1: x; b:2: y");
        assert_eq!(one_line("plain"), "plain");
    }
}
