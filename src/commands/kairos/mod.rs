//! `k0slab kairos install | verify | uninstall | lint`: the Kairos Cluster API providers on the lab.
//! Shared here: the lab's kubeconfig, which every kairos command talks to.

mod install;
mod lint;
mod verify;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use install::{install, uninstall, InstallOptions};
pub use lint::{lint, LintOptions};
pub use verify::{verify, VerifyOptions};

use crate::error::{Error, Result};
use crate::kairos::components::Component;
use crate::lab::files::KAIROS_INSTALLED as INSTALLED;
use crate::tools::kubectl::Kubectl;
use crate::tools::Tool;
use crate::workflow::context::Context;

#[derive(Debug, Serialize, Deserialize)]
struct Installed {
    components: Vec<InstalledComponent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct InstalledComponent {
    component: Component,
    /// The manifest as applied, inside `lab/kairos/`.
    file: String,
}

fn kubectl<'a>(ctx: &'a Context<'_>, kubeconfig: &'a Path) -> Result<Kubectl<'a>> {
    Ok(Kubectl {
        path: ctx.tools.get(Tool::Kubectl)?,
        kubeconfig,
        env: ctx.env,
        out: &ctx.out,
    })
}

/// The lab's kubeconfig, which every kairos command talks to.
fn lab_kubeconfig(ctx: &Context<'_>) -> Result<PathBuf> {
    let record = ctx.record()?;
    let path = ctx.dir.join(crate::lab::files::KUBECONFIG);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Step(format!(
            "lab {} has no kubeconfig yet: run `k0slab up` first",
            record.name()
        )))
    }
}
