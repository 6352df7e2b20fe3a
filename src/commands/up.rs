//! `k0slab up`: the lab brought up and proven healthy, step by step in [`crate::workflow::up`].

use std::time::Duration;

use crate::error::Result;
use crate::inputs::Flags;
use crate::workflow::context::Context;
use crate::workflow::up::{self, UpOptions};

pub fn run(ctx: &Context<'_>, flags: &Flags, dry_run: bool, wait: Duration) -> Result<()> {
    up::run(
        ctx,
        flags,
        &UpOptions {
            dry_run,
            restore_from: None,
            wait,
            summary: true,
        },
    )
}
