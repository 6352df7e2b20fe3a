//! `lab.json`: the record of a lab. After `render`, every other command works from it, not
//! from the current environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::files::{self, LAB_JSON};
use crate::error::{Error, Result};
use crate::fsutil::digest;
use crate::inputs::{Change, Inputs};
use crate::lab::files::{GITIGNORE, MODE_PRIVATE, MODE_PUBLIC};
use crate::network::Mac;
use crate::render::Rendered;
use crate::topology::{self, Endpoint, Node, Topology};

/// Bumped when the layout of `lab.json` changes incompatibly.
pub const SCHEMA: u32 = 1;

/// A lab resolved from the inputs and the existing `lab.json`.
pub struct Planned {
    pub inputs: Inputs,
    pub topology: Topology,
    /// Explicit inputs that differ from the existing lab.
    pub changes: Vec<Change>,
    pub record: Option<LabRecord>,
}

/// One file of the lab directory as k0slab writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabFile {
    pub name: &'static str,
    pub contents: String,
    pub mode: u32,
}

/// What `lab.json` keeps besides the topology and the rendered files.
#[derive(Debug, Clone)]
pub struct Kept<'a> {
    pub secrets: &'a Secrets,
    /// Kubeconfigs the lab was merged into, carried over from the existing `lab.json`.
    pub merged_into: &'a [PathBuf],
    /// The MACs the lab's addresses are assigned to.
    pub assigned: &'a BTreeMap<String, Mac>,
    /// The lab directory's `.gitignore` as k0slab wrote it, if k0slab wrote it (`destroy`
    /// removes it then, and only then).
    pub gitignore: Option<&'a str>,
}

/// The rendered files under their names and modes, and `lab.json` last, which lists them
/// (with the key pair, `known_hosts` and `.gitignore` k0slab writes beside them) and their
/// digests.
pub fn lab_files(
    inputs: &Inputs,
    topology: &Topology,
    rendered: Rendered,
    kept: &Kept<'_>,
) -> Result<Vec<LabFile>> {
    let mut out = vec![
        LabFile {
            name: files::VAGRANTFILE,
            contents: rendered.vagrantfile,
            mode: MODE_PUBLIC,
        },
        LabFile {
            name: files::K0SCTL_YAML,
            contents: rendered.k0sctl_yaml,
            mode: MODE_PRIVATE,
        },
    ];
    if let Some(cfg) = rendered.haproxy_cfg {
        out.push(LabFile {
            name: files::HAPROXY_CFG,
            contents: cfg,
            mode: MODE_PUBLIC,
        });
    }
    let mut written: Vec<String> = out.iter().map(|f| f.name.to_string()).collect();
    written.extend([
        files::PRIVATE_KEY.to_string(),
        files::PUBLIC_KEY.to_string(),
    ]);
    // Written by k0sctl (through rig) on k0slab's behalf: SSH_KNOWN_HOSTS points here.
    written.push(files::KNOWN_HOSTS.to_string());
    written.push(LAB_JSON.to_string());
    let mut hashes: BTreeMap<String, String> = out
        .iter()
        .map(|f| (f.name.to_string(), digest(f.contents.as_bytes())))
        .collect();
    if let Some(gitignore) = kept.gitignore {
        written.push(GITIGNORE.to_string());
        hashes.insert(GITIGNORE.to_string(), digest(gitignore.as_bytes()));
    }
    let record = LabRecord {
        schema: SCHEMA,
        k0slab_version: crate::environment::VERSION.to_string(),
        inputs: inputs.clone(),
        nodes: topology.nodes.clone(),
        endpoint: topology.endpoint,
        secrets: kept.secrets.clone(),
        files: written,
        written: hashes,
        merged_into: kept.merged_into.to_vec(),
        assigned: kept.assigned.clone(),
    };
    let mut json = serde_json::to_string_pretty(&record).map_err(|e| Error::Render {
        name: LAB_JSON.into(),
        reason: e.to_string(),
    })?;
    json.push('\n');
    out.push(LabFile {
        name: LAB_JSON,
        contents: json,
        mode: MODE_PRIVATE,
    });
    Ok(out)
}

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
    pub fn planned(&self) -> Planned {
        Planned {
            inputs: self.inputs.clone(),
            topology: self.topology(),
            changes: Vec::new(),
            record: Some(self.clone()),
        }
    }
}
