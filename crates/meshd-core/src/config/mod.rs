//! `mesh.yaml`: parsing with positions, validation, and the typed model.
//!
//! A pipeline, whose modules import one another one way only (no cycle):
//! - `load`: the text to a YAML tree with positions, within limits;
//! - `walk` (with `fields`, `yaml` and `values`): the tree to a draft, each field checked alone;
//! - `validate`: the checks across fields and nodes;
//! - `draft`: a draft without errors to the `MeshConfig` of `model`;
//! - `error`: the one list of errors every stage reports into, in file order at the end.

mod draft;
mod error;
mod fields;
mod load;
mod model;
mod validate;
mod values;
mod walk;
mod yaml;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, ConfigErrors, MAX_ERRORS};
pub use load::{MAX_CONFIG_BYTES, MAX_ENTRIES, MAX_MAPPINGS, MAX_YAML_VALUES};
pub use model::*;

use error::Errors;

/// Parses and validates a whole mesh config. `file` names the source in error messages.
/// Returns every error found, not just the first.
pub fn parse(file: &str, text: &str) -> Result<MeshConfig, ConfigErrors> {
    let mut errs = Errors::new(file);
    let root = match load::load(text) {
        Ok(root) => root,
        Err((pos, key, message)) => {
            errs.push(pos, key, message);
            return Err(errs.finish());
        }
    };
    let draft = walk::walk(&root, &mut errs);
    yaml::drop_tree(root);
    validate::validate(&draft, &mut errs);
    if !errs.is_empty() {
        return Err(errs.finish());
    }
    match draft::build(draft) {
        Some(config) => Ok(config),
        None => {
            // Every missing piece has already been reported, so this cannot happen; but never
            // hand out a half-built config.
            errs.push(
                Pos::default(),
                "",
                "the configuration is incomplete".to_string(),
            );
            Err(errs.finish())
        }
    }
}
