//! `k0slab validate`: render the lab, then `vagrant validate` its Vagrantfile.

use crate::error::Result;
use crate::inputs::Flags;
use crate::workflow::context::Context;
use crate::workflow::render;
use crate::workflow::resolve::plan_lab;

pub fn run(ctx: &Context<'_>, flags: &Flags) -> Result<()> {
    let planned = plan_lab(ctx, flags)?;
    render::write_lab(ctx, &planned)?;
    let out = ctx.vagrant()?.validate_cmd().output(ctx.env, &ctx.out)?;
    ctx.out.result(out.trim());
    Ok(())
}
