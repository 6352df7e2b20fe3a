//! `k0slab kairos verify`: a workload cluster applied and followed to its milestones
//! ([`crate::workflow::kairos::verify`]).

use crate::error::Result;
use crate::workflow::context::Context;
pub use crate::workflow::kairos::verify::VerifyOptions;

pub fn run(ctx: &Context<'_>, o: &VerifyOptions) -> Result<()> {
    crate::workflow::kairos::verify::verify(ctx, o)
}
