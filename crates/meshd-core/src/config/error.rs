//! Config errors: every one carries the file, the position and the key at fault.
//!
//! - [`Errors`] collects them as the stages find them; key paths and values are written into
//!   messages with the helpers here.

use super::model::Pos;
use std::fmt;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub pos: Pos,
    /// The key at fault as a path, e.g. `nodes[1].address` or `policy[0].allow[2]`.
    pub key: String,
    /// One sentence, without the position or the key.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.pos.line, self.pos.column, self.key, self.message
        )
    }
}

/// The problems found in one config file, in file order: the first [`MAX_ERRORS`] found, and
/// how many more there were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>, pub usize);

/// The most errors kept for one file: a broken file of millions of values must not take
/// gigabytes of messages.
pub const MAX_ERRORS: usize = 100;

impl ConfigErrors {
    /// Every error found, the ones not kept included.
    pub fn total(&self) -> usize {
        self.0.len() + self.1
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if self.1 > 0 {
            write!(
                f,
                "\n... and {} more error{} (only the first {MAX_ERRORS} found are shown)",
                self.1,
                if self.1 == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The errors found so far in one file.
pub(super) struct Errors {
    file: String,
    list: Vec<ConfigError>,
    /// Errors found past the first [`MAX_ERRORS`], counted only.
    not_kept: usize,
}

impl Errors {
    pub(super) fn new(file: &str) -> Self {
        Self {
            file: file.to_string(),
            list: Vec::new(),
            not_kept: 0,
        }
    }

    pub(super) fn push(&mut self, pos: Pos, key: impl Into<String>, message: impl Into<String>) {
        if self.list.len() >= MAX_ERRORS {
            self.not_kept += 1;
            return;
        }
        self.list.push(ConfigError {
            file: self.file.clone(),
            pos,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All errors, in file order (stable: errors at the same place keep the order found).
    pub(super) fn finish(mut self) -> ConfigErrors {
        self.list.sort_by_key(|e| (e.pos.line, e.pos.column));
        ConfigErrors(self.list, self.not_kept)
    }
}

/// The key path of `key` inside `path`: `nodes[1].address`.
pub(super) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The key path of element `i` of the list at `path`: `nodes[1]`.
pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The most characters of a value written back in a message.
const MAX_SHOWN: usize = 80;

/// A value written back in an error message, cut when very long.
pub(super) fn shorten(s: &str) -> String {
    if s.chars().count() > MAX_SHOWN {
        let cut: String = s.chars().take(MAX_SHOWN).collect();
        format!("{cut}...")
    } else {
        s.to_string()
    }
}

/// `s` quoted and escaped, for error messages: `"10.100.0.2/24"`.
pub(super) fn q(s: &str) -> String {
    format!("{:?}", shorten(s))
}

/// `s` escaped without quotes, for names inside backticks.
pub(super) fn esc(s: &str) -> String {
    shorten(s).escape_debug().to_string()
}
