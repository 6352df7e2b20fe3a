//! `k0slab render`: write the lab files.

use crate::error::Result;
use crate::inputs::Flags;
use crate::workflow::context::Context;
use crate::workflow::render::write_lab;
use crate::workflow::resolve::plan_lab;

pub fn run(ctx: &Context<'_>, flags: &Flags) -> Result<()> {
    let planned = plan_lab(ctx, flags)?;
    for w in &planned.topology.warnings {
        ctx.out.warn(w);
    }
    let report = write_lab(ctx, &planned)?;
    for (name, written) in &report {
        ctx.out.info(&format!(
            "{:<9} {}",
            written.as_str(),
            ctx.dir.shown().join(name).display()
        ));
    }
    ctx.out.info(&format!(
        "rendered lab {} ({} machines, endpoint {})",
        planned.topology.name,
        planned.topology.nodes.len(),
        planned.topology.endpoint.url()
    ));
    Ok(())
}
