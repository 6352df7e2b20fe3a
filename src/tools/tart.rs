//! Every call of Tart: pulling the image once before the VMs boot, and finding lab VMs that
//! Vagrant no longer knows about.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::tools::process::Cmd;

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

/// Tart's home: `TART_HOME`, else `~/.tart` (cirruslabs/tart `Sources/tart/Config.swift`
/// lines 11-17).
pub fn home(env: &Environment) -> PathBuf {
    env.get("TART_HOME").filter(|h| !h.is_empty()).map_or_else(
        || PathBuf::from(env.get("HOME").unwrap_or("/")).join(".tart"),
        PathBuf::from,
    )
}

/// The MAC address of Tart VM `vm`: key `macAddress` of `<TART_HOME>/vms/<vm>/config.json`
/// (cirruslabs/tart `Sources/tart/VMConfig.swift` lines 25 and 156, `VMStorageLocal.swift`
/// lines 7-11). Read after the VM has started: `tart run` gives a VM a new MAC when a running
/// VM already has its MAC (`Sources/tart/Commands/Run.swift` lines 376-384). Parsed by `parse`
/// (the caller's MAC type); a value it refuses is reported as an unreadable configuration.
pub fn mac_of<M>(
    env: &Environment,
    vm: &str,
    parse: impl FnOnce(&str) -> std::result::Result<M, String>,
) -> Result<M> {
    let path = home(env).join("vms").join(vm).join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Unreadable {
        path: path.clone(),
        what: "a Tart VM configuration",
        reason: e.to_string(),
    })?;
    let mac = config
        .get("macAddress")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Error::Unreadable {
            path: path.clone(),
            what: "a Tart VM configuration",
            reason: "no macAddress".into(),
        })?;
    parse(mac).map_err(|reason| Error::Unreadable {
        path,
        what: "a Tart VM configuration",
        reason,
    })
}

/// Whether `image` is among the OCI images of `listed` (what `tart list` printed).
pub fn listed_image(listed: &[TartVm], image: &str) -> bool {
    listed
        .iter()
        .any(|vm| vm.source.eq_ignore_ascii_case("oci") && vm.name == image)
}

impl Tart<'_> {
    /// `tart ip VM`: the address Tart's `dhcp` resolver finds in bootpd's leases, if any.
    pub fn ip(&self, vm: &str) -> Result<String> {
        Cmd::new(self.path, format!("asking Tart for {vm}'s address"))
            .args(["ip", vm])
            .output(self.env, self.out)
            .map(|s| s.trim().to_string())
    }

    pub fn stop_cmd(&self, vm: &str) -> Cmd {
        Cmd::new(self.path, format!("stopping Tart VM {vm}")).args(["stop", vm])
    }

    pub fn list(&self) -> Result<Vec<TartVm>> {
        let text = Cmd::new(self.path, "listing Tart VMs and images")
            .args(["list", "--format", "json"])
            .output(self.env, self.out)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Step(format!("`tart list --format json` printed no VM list: {e}")))
    }

    /// Whether `image` is in Tart's OCI cache.
    pub fn has_image(&self, image: &str) -> Result<bool> {
        Ok(listed_image(&self.list()?, image))
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
