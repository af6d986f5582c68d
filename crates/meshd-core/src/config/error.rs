//! Config errors: every one carries the file, the position and the key at fault.

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
