//! `k0slab render`: write the lab files.

use crate::error::Result;
use crate::inputs::Flags;
use crate::workflow::context::Context;
use crate::workflow::render::write_lab;
use crate::workflow::resolve::plan_lab;

pub fn run(ctx: &Context<'_>, flags: &Flags) -> Result<()> {
    let mut planned = plan_lab(ctx, flags)?;
    // Pinned when it can be looked up (or taken from the cache); else k0sctl.yaml leaves the
    // release to k0sctl, and `up` pins it.
    if let Err(e) = crate::workflow::cache::pin(ctx, &mut planned) {
        ctx.out.warn(&format!(
            "{}; k0sctl.yaml leaves the k0s release to k0sctl until `k0slab up` pins one",
            crate::output::first_line(&e.to_string())
        ));
    }
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
