//! Every call of Tart: pulling the image once before the VMs boot, and finding lab VMs that
//! Vagrant no longer knows about.

use std::path::Path;

use serde::Deserialize;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::process::Cmd;

pub struct Tart<'a> {
    pub path: &'a Path,
    pub env: &'a Environment,
    pub out: &'a Output,
}

/// One entry of `tart list --format json`.
#[derive(Debug, Clone, Deserialize)]
pub struct TartVm {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Source", default)]
    pub source: String,
    #[serde(rename = "State", default)]
    pub state: String,
}

impl Tart<'_> {
    pub fn list(&self) -> Result<Vec<TartVm>> {
        let text = Cmd::new(self.path, "listing Tart VMs and images")
            .args(["list", "--format", "json"])
            .output(self.env, self.out)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Step(format!("`tart list --format json` printed no VM list: {e}")))
    }

    /// Whether `image` is in Tart's OCI cache.
    pub fn has_image(&self, image: &str) -> Result<bool> {
        Ok(self
            .list()?
            .iter()
            .any(|vm| vm.source.eq_ignore_ascii_case("oci") && vm.name == image))
    }

    pub fn pull_cmd(&self, image: &str) -> Cmd {
        Cmd::new(self.path, format!("pulling {image}")).args(["pull", image])
    }

    pub fn delete_cmd(&self, vm: &str) -> Cmd {
        Cmd::new(self.path, format!("deleting Tart VM {vm}")).args(["delete", vm])
    }

    pub fn version(&self) -> Result<String> {
        Cmd::new(self.path, "asking Tart for its version")
            .arg("--version")
            .output(self.env, self.out)
    }
}
