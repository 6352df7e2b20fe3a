//! `k0slab kubeconfig [--merge]`: the path of the lab's kubeconfig, or the lab's context
//! merged into the user's kubeconfig (backup first, atomic, every other entry kept, entries
//! k0slab did not write refused; see the doc of `crate::kubeconfig`).

use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::workflow::context::Context;

pub fn run(ctx: &Context<'_>, merge: bool) -> Result<()> {
    let mut record = ctx.record()?;
    let path = ctx.dir.join(crate::lab::files::KUBECONFIG);
    let lab_kubeconfig = std::fs::read_to_string(&path).map_err(|_| {
        Error::Step(format!(
            "lab {} has no kubeconfig yet ({}): run `k0slab up` first",
            record.name(),
            ctx.dir
                .shown()
                .join(crate::lab::files::KUBECONFIG)
                .display()
        ))
    })?;
    if !merge {
        ctx.out.result(&path.display().to_string());
        return Ok(());
    }
    let target = kubeconfig::merge_target(ctx.env, &path)?;
    if let Some(first) = &target.instead_of {
        ctx.out.info(&format!(
            "KUBECONFIG names the lab's own kubeconfig ({}): merging into {} instead",
            first.display(),
            target.path.display()
        ));
    }
    let name = record.name().to_string();
    let dir = kubeconfig::canonical_dir(ctx.dir.absolute());
    let lab = kubeconfig::Lab {
        name: &name,
        dir: &dir,
        kubeconfig: &lab_kubeconfig,
    };
    let edited = kubeconfig::edit_private(&target.path, |existing| {
        kubeconfig::merge(existing, &lab, &target.path)
    })?;
    if !record.merged_into.contains(&target.path) {
        record.merged_into.push(target.path.clone());
        ctx.dir.write_record(&record)?;
    }
    let through = if edited.written == target.path {
        String::new()
    } else {
        format!(" (a link to {})", edited.written.display())
    };
    if let Some(before) = edited.mode_before {
        ctx.out.info(&format!(
            "{} now has mode {:04o} (was {before:04o}): it holds the lab's admin key",
            edited.written.display(),
            edited.mode
        ));
    }
    ctx.out.result(&format!(
        "merged context {name} into {}{through}{}; current context: {name}",
        target.path.display(),
        edited
            .backup
            .map(|b| format!(" (backup: {})", b.display()))
            .unwrap_or_default()
    ));
    Ok(())
}
