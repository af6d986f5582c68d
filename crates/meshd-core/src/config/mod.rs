//! `mesh.yaml`: parsing with positions, validation, and the typed model.

mod error;
mod load;
mod model;
mod parse;
mod validate;
mod values;
mod yaml;

pub use error::{ConfigError, ConfigErrors, MAX_ERRORS};
pub use load::{MAX_CONFIG_BYTES, MAX_ENTRIES, MAX_MAPPINGS, MAX_YAML_VALUES};
pub use model::*;

/// Parses and validates a whole mesh config. `file` names the source in error messages.
/// Returns every error found, not just the first.
pub fn parse(file: &str, text: &str) -> Result<MeshConfig, ConfigErrors> {
    parse::parse(file, text)
}
