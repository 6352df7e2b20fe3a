//! `k0slab kairos uninstall`: removes what `kairos install` installed, and nothing else.

use crate::error::Result;
use crate::workflow::context::Context;

pub fn run(ctx: &Context<'_>) -> Result<()> {
    crate::workflow::kairos::install::uninstall(ctx)
}
