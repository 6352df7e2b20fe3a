//! `k0slab destroy`: the lab's machines and the files k0slab wrote removed, nothing else
//! ([`crate::workflow::destroy`]).

use crate::error::Result;
use crate::workflow::context::Context;

pub fn run(ctx: &Context<'_>) -> Result<()> {
    crate::workflow::destroy::run(ctx)
}
