//! `k0slab halt`: stops every machine of the lab (`k0slab up` starts them again).

use super::{machine_failures, per_machine, Context};
use crate::error::Result;
use crate::progress::Progress;
use crate::topology::Node;
use crate::vagrant::MachineState;

pub fn run(ctx: &Context<'_>) -> Result<()> {
    let record = ctx.record()?;
    let vagrant = ctx.vagrant()?;
    // vagrant-tart refuses to halt a machine that was never created: skip those.
    let states = vagrant.status()?;
    let progress = Progress::new(&ctx.out);
    let nodes: Vec<&Node> = record.nodes.iter().collect();
    let results = per_machine(ctx, &progress, &nodes, |node, bar| {
        if matches!(
            states.get(&node.name),
            None | Some(MachineState::NotCreated)
        ) {
            bar.done("not created");
            return Ok(());
        }
        bar.message("halting");
        let r = vagrant.halt_cmd(&node.name).output(ctx.env, &ctx.out);
        match &r {
            Ok(_) => bar.done("halted"),
            Err(_) => bar.failed("halt failed"),
        }
        r.map(|_| ())
    });
    machine_failures(ctx, "vagrant halt", results, "Run `k0slab halt` again.")?;
    ctx.out.info(&format!(
        "halted lab {}; `k0slab up` resumes it",
        record.name()
    ));
    Ok(())
}
