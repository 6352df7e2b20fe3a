//! `k0slab image load | ls`: images from the host into the nodes' containerd, and what was
//! loaded ([`crate::workflow::image`]).

use crate::error::Result;
use crate::output::OutputFormat;
use crate::workflow::context::Context;
pub use crate::workflow::image::{LoadOptions, Source};

pub fn load(ctx: &Context<'_>, o: &LoadOptions) -> Result<()> {
    crate::workflow::image::load(ctx, o)
}

pub fn ls(ctx: &Context<'_>, format: OutputFormat) -> Result<()> {
    crate::workflow::image::ls(ctx, format)
}
