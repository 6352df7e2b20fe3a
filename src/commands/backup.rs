//! `k0slab backup`: k0sctl's backup of the cluster into `<lab>/backups/`.

use std::fs;

use crate::error::Result;
use crate::lab::files::BACKUPS;
use crate::workflow::backup::take;
use crate::workflow::context::Context;

pub fn backup(ctx: &Context<'_>) -> Result<()> {
    let record = ctx.record()?;
    let file = take(ctx, &record)?;
    let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    ctx.out.result(&format!(
        "{} ({})",
        ctx.dir
            .shown()
            .join(BACKUPS)
            .join(file.file_name().expect("a file name"))
            .display(),
        crate::output::bytes(size)
    ));
    Ok(())
}
