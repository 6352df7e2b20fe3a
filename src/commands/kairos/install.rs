//! `k0slab kairos install`: cert-manager, Cluster API, an infrastructure provider and the
//! Kairos providers on the lab ([`crate::workflow::kairos::install`]).

use crate::error::Result;
use crate::workflow::context::Context;
pub use crate::workflow::kairos::install::InstallOptions;

pub fn run(ctx: &Context<'_>, o: &InstallOptions) -> Result<()> {
    crate::workflow::kairos::install::install(ctx, o)
}
