//! Rendering: the topology turned into the lab's files, as pure data. Writing them to disk is
//! [`crate::lab::dir`]'s job.

mod haproxy;
mod k0sctl;
mod vagrantfile;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::inputs::Inputs;
use crate::lab::record::{self, LabRecord, Secrets};
use crate::network::Mac;
use crate::topology::{EndpointKind, Topology};

pub use haproxy::FILE_NAME as HAPROXY_CFG;
pub use k0sctl::{K0sctlConfig, FILE_NAME as K0SCTL_YAML};
pub use vagrantfile::FILE_NAME as VAGRANTFILE;

/// The lab's private SSH key and its public half, inside the lab directory.
pub const PRIVATE_KEY: &str = "id_ed25519";
pub const PUBLIC_KEY: &str = "id_ed25519.pub";
/// The user every lab VM is reached as (cirruslabs images: admin/admin).
pub const SSH_USER: &str = "admin";
pub const SSH_PASSWORD: &str = "admin";

/// The lab's own known_hosts file, which k0sctl's SSH library (rig) creates and appends to
/// when `SSH_KNOWN_HOSTS` names it (k0sproject/rig `protocol/ssh/hostkey/callbacks.go`).
pub const KNOWN_HOSTS: &str = "known_hosts";

/// Read and write for the owner only: secrets and keys.
pub const MODE_PRIVATE: u32 = 0o600;
/// Readable by everyone: files without secrets.
pub const MODE_PUBLIC: u32 = 0o644;

/// One file of the lab directory, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub name: &'static str,
    pub contents: String,
    pub mode: u32,
}

/// What rendering needs besides the topology.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// The absolute lab directory (k0sctl's `keyPath` points into it).
    pub lab_dir: &'a Path,
    /// The lab's public key in OpenSSH format.
    pub public_key: &'a str,
    pub secrets: &'a Secrets,
    /// Kubeconfigs the lab was merged into, carried over from the existing `lab.json`.
    pub merged_into: &'a [PathBuf],
    /// The MACs the lab's addresses are assigned to, carried over from the existing `lab.json`.
    pub assigned: &'a BTreeMap<String, Mac>,
    /// Machines Vagrant must reach at another address than the one `tart ip` reports: only
    /// while `up` moves them to their planned address.
    pub ssh_hosts: &'a BTreeMap<String, Ipv4Addr>,
    /// The lab directory's `.gitignore` as k0slab wrote it, if k0slab wrote it (`destroy`
    /// removes it then, and only then).
    pub gitignore: Option<&'a str>,
}

impl RenderContext<'_> {
    fn private_key_path(&self) -> PathBuf {
        self.lab_dir.join(PRIVATE_KEY)
    }
}

/// Every file of the lab except the key pair, `lab.json` last.
pub fn render_lab(
    inputs: &Inputs,
    topology: &Topology,
    ctx: &RenderContext<'_>,
) -> Result<Vec<RenderedFile>> {
    check_public_key(ctx.public_key)?;
    let mut files = vec![RenderedFile {
        name: VAGRANTFILE,
        contents: vagrantfile::render(topology, ctx)?,
        mode: MODE_PUBLIC,
    }];
    files.push(RenderedFile {
        name: K0SCTL_YAML,
        contents: k0sctl::render(topology, ctx)?,
        mode: MODE_PRIVATE,
    });
    if topology.endpoint.kind == EndpointKind::Haproxy {
        files.push(RenderedFile {
            name: HAPROXY_CFG,
            contents: haproxy::render(topology)?,
            mode: MODE_PUBLIC,
        });
    }
    let mut written: Vec<String> = files.iter().map(|f| f.name.to_string()).collect();
    written.extend([PRIVATE_KEY.to_string(), PUBLIC_KEY.to_string()]);
    // Written by k0sctl (through rig) on k0slab's behalf: SSH_KNOWN_HOSTS points here.
    written.push(KNOWN_HOSTS.to_string());
    written.push(record::FILE_NAME.to_string());
    let mut hashes: BTreeMap<String, String> = files
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                crate::fsutil::digest(f.contents.as_bytes()),
            )
        })
        .collect();
    if let Some(gitignore) = ctx.gitignore {
        written.push(crate::lab::dir::GITIGNORE.to_string());
        hashes.insert(
            crate::lab::dir::GITIGNORE.to_string(),
            crate::fsutil::digest(gitignore.as_bytes()),
        );
    }
    let record = LabRecord {
        schema: record::SCHEMA,
        k0slab_version: crate::VERSION.to_string(),
        inputs: inputs.clone(),
        nodes: topology.nodes.clone(),
        endpoint: topology.endpoint,
        secrets: ctx.secrets.clone(),
        files: written,
        written: hashes,
        merged_into: ctx.merged_into.to_vec(),
        assigned: ctx.assigned.clone(),
    };
    let mut json = serde_json::to_string_pretty(&record).map_err(|e| Error::Render {
        name: record::FILE_NAME.into(),
        reason: e.to_string(),
    })?;
    json.push('\n');
    files.push(RenderedFile {
        name: record::FILE_NAME,
        contents: json,
        mode: MODE_PRIVATE,
    });
    Ok(files)
}

/// The public key is pasted into a shell script: allow only what an OpenSSH key line holds.
fn check_public_key(key: &str) -> Result<()> {
    let ok = key.starts_with("ssh-ed25519 ")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=@.-_ ".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Render {
            name: VAGRANTFILE.into(),
            reason: format!("the lab's public key is not an ssh-ed25519 key line: {key:?}"),
        })
    }
}

/// The generation comment of YAML and text files.
fn header(topology: &Topology) -> String {
    format!(
        "Generated by k0slab {} for lab {}. Do not edit: run `k0slab render`.",
        crate::VERSION,
        topology.name
    )
}
