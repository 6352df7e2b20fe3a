//! `k0slab halt`: stops every machine of the lab (`k0slab up` starts them again).

use crate::error::Result;
use crate::workflow::context::Context;
use crate::workflow::halt::halt;

pub fn run(ctx: &Context<'_>) -> Result<()> {
    let record = ctx.record()?;
    halt(ctx, &record, "Run `k0slab halt` again.")?;
    ctx.out.info(&format!(
        "halted lab {}; `k0slab up` resumes it",
        record.name()
    ));
    Ok(())
}
