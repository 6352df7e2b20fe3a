//! `k0slab kubeconfig [--merge]`: the path of the lab's kubeconfig, or the lab's context
//! merged into the user's kubeconfig (backup first, atomic, every other entry kept).

use super::Context;
use crate::error::{Error, Result};
use crate::kubeconfig;

pub fn run(ctx: &Context<'_>, merge: bool) -> Result<()> {
    let mut record = ctx.record()?;
    let path = ctx.dir.join(kubeconfig::FILE_NAME);
    let lab_kubeconfig = std::fs::read_to_string(&path).map_err(|_| {
        Error::Step(format!(
            "lab {} has no kubeconfig yet ({}): run `k0slab up` first",
            record.name(),
            ctx.dir.shown().join(kubeconfig::FILE_NAME).display()
        ))
    })?;
    if !merge {
        ctx.out.result(&path.display().to_string());
        return Ok(());
    }
    let target = kubeconfig::user_kubeconfig(ctx.env).ok_or_else(|| {
        Error::Step("neither KUBECONFIG nor HOME is set: no kubeconfig to merge into".into())
    })?;
    let name = record.name().to_string();
    let edited = kubeconfig::edit(&target, |existing| {
        kubeconfig::merge(existing, &lab_kubeconfig, &name)
    })?;
    if !record.merged_into.contains(&target) {
        record.merged_into.push(target.clone());
        ctx.dir.write_record(&record)?;
    }
    ctx.out.result(&format!(
        "merged context {name} into {}{}; current context: {name}",
        target.display(),
        edited
            .backup
            .map(|b| format!(" (backup: {})", b.display()))
            .unwrap_or_default()
    ));
    Ok(())
}
