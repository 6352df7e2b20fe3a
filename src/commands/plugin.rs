//! `k0slab install-plugin`: installs the vagrant-tart plugin unless Vagrant has it.

use crate::error::Result;
use crate::tools::vagrant::{has_plugin, PLUGIN};
use crate::workflow::context::Context;

pub fn run(ctx: &Context<'_>) -> Result<()> {
    let vagrant = ctx.vagrant()?;
    if has_plugin(&vagrant.plugins()?) {
        ctx.out.info(&format!("{PLUGIN} is already installed"));
        return Ok(());
    }
    vagrant
        .plugin_install_cmd(PLUGIN)
        .stream(ctx.env, &ctx.out, |line| ctx.out.info(line))?;
    ctx.out.info(&format!("installed {PLUGIN}"));
    Ok(())
}
