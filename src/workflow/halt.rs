//! The halt step: every machine of the lab that exists stopped (`up` starts them again).

use super::context::Context;
use super::machines::on_created_machines;
use crate::error::Result;
use crate::lab::record::LabRecord;

/// Stops every created machine of `record`; `resume_hint` ends the message of a failure.
pub fn halt(ctx: &Context<'_>, record: &LabRecord, resume_hint: &str) -> Result<()> {
    on_created_machines(
        ctx,
        record,
        "vagrant halt",
        ("halting", "halted"),
        |vagrant, machine| vagrant.halt_cmd(machine),
        resume_hint,
    )
}
