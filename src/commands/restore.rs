//! `k0slab restore FILE`: a fresh lab brought up from a backup (see [`crate::workflow::backup`]).

use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::inputs::Flags;
use crate::workflow::context::Context;

pub fn run(ctx: &Context<'_>, flags: &Flags, file: &Path, wait: Duration) -> Result<()> {
    crate::workflow::backup::restore(ctx, flags, file, wait)
}
