//! The Kairos Cluster API providers on the lab: [`install`] (and uninstall) and [`verify`].
//! Shared here: what `install` recorded, and the lab's kubeconfig, which both talk to.

pub mod install;
pub mod verify;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kairos::components::Component;
use crate::tools::kubectl::Kubectl;
use crate::tools::Tool;
use crate::workflow::context::Context;

#[derive(Debug, Serialize, Deserialize)]
pub struct Installed {
    pub components: Vec<InstalledComponent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstalledComponent {
    pub component: Component,
    /// The manifest as applied, inside `lab/kairos/`.
    pub file: String,
}

pub fn kubectl<'a>(ctx: &'a Context<'_>, kubeconfig: &'a Path) -> Result<Kubectl<'a>> {
    Ok(Kubectl {
        path: ctx.tools.get(Tool::Kubectl)?,
        kubeconfig,
        env: ctx.env,
        out: &ctx.out,
    })
}

/// The lab's kubeconfig, which every kairos command talks to.
pub fn lab_kubeconfig(ctx: &Context<'_>) -> Result<PathBuf> {
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
