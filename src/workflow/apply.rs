//! The apply step: `k0sctl apply`, then the lab's kubeconfig from what it wrote.

use std::fs;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::kubeconfig;
use crate::lab::files::APPLIED_MARKER;
use crate::lab::files::{K0SCTL_YAML, MODE_PRIVATE};
use crate::lab::record::LabRecord;
use crate::progress::Progress;
use crate::tools::k0sctl::K0sctl;
use crate::workflow::context::Context;

/// `k0sctl apply`, which also writes the admin kubeconfig into `kubeconfig_out`.
fn apply(
    ctx: &Context<'_>,
    progress: &Progress,
    k0sctl: &K0sctl<'_>,
    restore_from: Option<&std::path::Path>,
    kubeconfig_out: (&std::path::Path, &str),
) -> Result<()> {
    let spinner = progress.spinner("k0sctl");
    spinner.message("k0sctl apply");
    match k0sctl.apply(restore_from, Some(kubeconfig_out), |phase| {
        spinner.message(phase)
    }) {
        Ok(()) => {
            spinner.done("k0sctl apply finished");
            let applied =
                fs::read(&k0sctl.config).map_err(|e| Error::io("reading", &k0sctl.config, e))?;
            write_atomic(&ctx.dir.join(APPLIED_MARKER), &applied, MODE_PRIVATE)?;
            Ok(())
        }
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Err(e) => {
            spinner.failed("k0sctl apply failed");
            Err(Error::Step(format!(
                "step k0sctl apply failed: {e}\nFix the cause and run `k0slab up` again: the \
                 machines are kept and k0sctl apply runs again."
            )))
        }
    }
}

/// Whether k0sctl.yaml is exactly what was last applied.
pub fn already_applied(ctx: &Context<'_>) -> bool {
    match (
        fs::read(ctx.dir.join(APPLIED_MARKER)),
        fs::read(ctx.dir.join(K0SCTL_YAML)),
    ) {
        (Ok(a), Ok(b)) => a == b && ctx.dir.join(crate::lab::files::KUBECONFIG).is_file(),
        _ => false,
    }
}

/// `k0sctl apply`, then the lab's kubeconfig from what the apply wrote (or, when k0sctl could
/// not write it, which it only warns about, from `k0sctl kubeconfig`).
pub fn apply_and_write_kubeconfig(
    ctx: &Context<'_>,
    progress: &Progress,
    k0sctl: &K0sctl<'_>,
    record: &LabRecord,
    restore_from: Option<&std::path::Path>,
) -> Result<()> {
    let url = record.endpoint.url();
    // Empty, 0600 and in the lab directory; removed when dropped, whatever happens.
    let out = tempfile::Builder::new()
        .prefix(".kubeconfig-from-apply-")
        .tempfile_in(ctx.dir.absolute())
        .map_err(|e| Error::io("creating a file in", ctx.dir.absolute(), e))?;
    apply(ctx, progress, k0sctl, restore_from, (out.path(), &url))?;
    let raw = fs::read_to_string(out.path()).map_err(|e| Error::io("reading", out.path(), e))?;
    let raw = if raw.trim().is_empty() {
        ctx.out
            .detail("k0sctl apply wrote no kubeconfig: asking `k0sctl kubeconfig`");
        k0sctl.kubeconfig(&url)?
    } else {
        raw
    };
    let normalized = kubeconfig::normalize(&raw, record.name())?;
    write_atomic(
        &ctx.dir.join(crate::lab::files::KUBECONFIG),
        normalized.as_bytes(),
        MODE_PRIVATE,
    )?;
    Ok(())
}
