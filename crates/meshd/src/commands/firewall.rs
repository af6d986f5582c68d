//! `meshd firewall`: show the table this node installs, or remove it.

use crate::cli::FirewallArgs;
use crate::load;
use anyhow::{Context, Result};
use meshd_firewall::{nft, ruleset};

pub(crate) fn firewall(args: &FirewallArgs) -> Result<()> {
    if args.remove {
        let removed = nft::remove().context("cannot remove the firewall")?;
        if removed {
            eprintln!("removed table inet meshd (interface {})", args.interface);
        } else {
            eprintln!("no table inet meshd on this host: nothing to remove");
        }
        return Ok(());
    }
    let (plan, _) = load::load_plan(&args.node, false)?;
    let rules = ruleset::ruleset(&plan);
    if args.json {
        println!("{}", ruleset::to_json(&rules));
    } else {
        let text = nft::render(&rules).context("cannot render the ruleset with nft")?;
        print!("{text}");
    }
    Ok(())
}
