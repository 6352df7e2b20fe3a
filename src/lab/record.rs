//! `lab.json`: the record of a lab. After `render`, every other command works from it, not
//! from the current environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::inputs::Inputs;
use crate::network::Mac;
use crate::topology::{self, Endpoint, Node, Topology};

/// The file name inside the lab directory.
pub const FILE_NAME: &str = "lab.json";
/// k0slab's copy of `lab.json`, written with it (both or neither): when `lab.json` is gone or
/// damaged, `destroy` still knows the lab's machines and the files k0slab wrote by it.
pub const COPY_NAME: &str = ".lab.json.copy";
/// Bumped when the layout of `lab.json` changes incompatibly.
pub const SCHEMA: u32 = 1;

/// Values generated once per lab and kept for its lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secrets {
    /// keepalived VRRP password for the CPLB VIP (at most 8 characters, keepalived's limit).
    pub vrrp_auth_pass: String,
}

/// What `lab.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabRecord {
    pub schema: u32,
    /// The k0slab version that wrote the file.
    pub k0slab_version: String,
    /// The inputs the lab was made from.
    pub inputs: Inputs,
    /// The machines as planned: what `destroy` removes.
    pub nodes: Vec<Node>,
    pub endpoint: Endpoint,
    pub secrets: Secrets,
    /// The files k0slab wrote into the lab directory (and may remove again).
    pub files: Vec<String>,
    /// The SHA-256 of what k0slab last wrote, by file name: a file whose content differs was
    /// changed by someone else since, and is neither overwritten nor removed. (Labs from
    /// before it have none: their `files` are trusted.)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub written: BTreeMap<String, String>,
    /// User kubeconfigs the lab's context was merged into (`kubeconfig --merge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_into: Vec<PathBuf>,
    /// The MAC each machine's planned address is assigned to in bootpd's leases (`up`), by
    /// machine name; `destroy` releases them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub assigned: BTreeMap<String, Mac>,
}

impl LabRecord {
    pub fn name(&self) -> &str {
        self.inputs.name.as_str()
    }

    /// The Tart VM name of `node`.
    pub fn vm_name(&self, node: &Node) -> String {
        topology::vm_name(self.name(), &node.name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The lab as recorded: its machines and endpoint as they were planned, not resolved
    /// again from the inputs (the network probe's machines are no topology of the inputs).
    pub fn topology(&self) -> Topology {
        Topology {
            name: self.inputs.name.clone(),
            subnet: self.inputs.subnet,
            network: self.inputs.network.clone(),
            endpoint: self.endpoint,
            image: self.inputs.image.clone(),
            k0s_version: self.inputs.k0s_version.clone(),
            nodes: self.nodes.clone(),
            warnings: Vec::new(),
        }
    }

    /// Whether the file `name` in the lab directory, with content `current` (`None`: missing),
    /// is as k0slab wrote it. `None` when k0slab does not know what it wrote.
    pub fn unchanged(&self, name: &str, current: &[u8]) -> Option<bool> {
        self.written
            .get(name)
            .map(|d| *d == crate::fsutil::digest(current))
    }

    /// The record as a plan with no changes: for rendering the lab's files again.
    pub fn planned(&self) -> crate::commands::Planned {
        crate::commands::Planned {
            inputs: self.inputs.clone(),
            topology: self.topology(),
            changes: Vec::new(),
            record: Some(self.clone()),
        }
    }
}
