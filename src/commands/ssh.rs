//! `k0slab ssh NODE [-- CMD…]`: a shell (or one command) on a lab machine, through Vagrant.

use crate::error::{Error, InputError, Result};
use crate::tools::process::shell_quote;
use crate::workflow::context::Context;

pub fn run(ctx: &Context<'_>, node: &str, command: &[String]) -> Result<()> {
    let record = ctx.record()?;
    if record.node(node).is_none() {
        let names: Vec<&str> = record.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(InputError::Rule(format!(
            "lab {} has no machine {node:?}; its machines are: {}",
            record.name(),
            names.join(", ")
        ))
        .into());
    }
    let joined = (!command.is_empty()).then(|| {
        command
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let code = ctx
        .vagrant()?
        .ssh_cmd(node, joined.as_deref())
        .interactive(ctx.env, &ctx.out)?;
    if code == 0 {
        Ok(())
    } else {
        Err(Error::Exit(u8::try_from(code).unwrap_or(1)))
    }
}
