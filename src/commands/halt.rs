//! `k0slab halt`: stops every machine of the lab (`k0slab up` starts them again).

use crate::error::Result;
use crate::workflow::context::Context;
use crate::workflow::machines::on_created_machines;

pub fn run(ctx: &Context<'_>) -> Result<()> {
    let record = ctx.record()?;
    on_created_machines(
        ctx,
        &record,
        "vagrant halt",
        ("halting", "halted"),
        |vagrant, machine| vagrant.halt_cmd(machine),
        "Run `k0slab halt` again.",
    )?;
    ctx.out.info(&format!(
        "halted lab {}; `k0slab up` resumes it",
        record.name()
    ));
    Ok(())
}
