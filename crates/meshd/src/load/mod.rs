//! Loading the config and finding this node in it: shared by `run` and `check`.

pub(crate) mod bounded;
pub(crate) mod keyfile;

use crate::cli::NodeArgs;
use anyhow::{anyhow, Context, Result};
use meshd_core::config::{self, MeshConfig};
use meshd_core::key::PrivateKey;
use meshd_core::plan::{Identity, NodePlan};

/// Reads and validates the config; all errors, one per line, in one error. A path that is not a
/// regular file, or a file over [`config::MAX_CONFIG_BYTES`], is refused before parsing.
pub(crate) fn load_config(args: &NodeArgs) -> Result<MeshConfig> {
    let path = &args.config;
    let text = bounded::read_file(path, config::MAX_CONFIG_BYTES as u64)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    config::parse(&path.display().to_string(), &text).map_err(|errors| {
        let n = errors.total();
        anyhow!(
            "{errors}\n{} is invalid: {n} error{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        )
    })
}

/// The config, this node's plan and, when a key was given or found, the key.
pub(crate) fn load_plan(
    args: &NodeArgs,
    key_required: bool,
) -> Result<(NodePlan, Option<PrivateKey>)> {
    let key_path = keyfile::key_path(args.private_key.as_deref());
    let key = if key_required || args.private_key.is_some() || args.node.is_none() {
        let key = keyfile::read_private_key(&key_path);
        if args.private_key.is_none() && !key_required {
            Some(key.context("give --private-key FILE or --node NAME")?)
        } else {
            Some(key?)
        }
    } else {
        None
    };
    let config = load_config(args)?;
    let identity = match &key {
        Some(k) => Identity::Key {
            public_key: k.public_key(),
            name: args.node.clone(),
        },
        None => Identity::Name(args.node.clone().unwrap_or_default()),
    };
    let plan =
        NodePlan::new(&config, &identity).map_err(|e| anyhow!("{}: {e}", args.config.display()))?;
    for warning in config.warnings() {
        tracing::warn!("{}: {warning}", args.config.display());
    }
    Ok((plan, key))
}
