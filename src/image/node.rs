//! The nodes' side of `image load`: k0s' own containerd client, reached over SSH with the
//! lab's key and addresses, the way k0sctl reaches the hosts.
//!
//! - `k0s ctr` is containerd's `ctr` with the address `/run/k0s/containerd.sock` and the
//!   namespace `k8s.io` (the kubelet's) as defaults (k0sproject/k0s `cmd/ctr/ctr.go` lines
//!   19-56); run as root, since a non-root k0s looks for another socket
//!   (`pkg/config/cfgvars.go` lines 135-140). k0sctl installs k0s as `/usr/local/bin/k0s`
//!   (k0sproject/k0sctl `configurer/linux.go` line 35).
//! - `ctr images import -` reads the archive from stdin (containerd v2.3.4
//!   `cmd/ctr/commands/images/import.go` lines 179-180).
//! - `ctr images ls` prints `REF TYPE DIGEST SIZE PLATFORMS LABELS` (`images.go` lines 98,
//!   132-138); DIGEST is the manifest's, not Docker's image ID, so k0slab labels what it
//!   imports with the host's ID ([`super::ID_LABEL`]).
//! - SSH as rig's OpenSSH client does it (k0sproject/rig v2.1.1 `protocol/openssh/
//!   connection.go` lines 118-128, 295-298): batch mode, the lab's `known_hosts`, new host keys
//!   accepted, changed ones refused (`hostkey/callbacks.go` lines 161-200).

use std::path::PathBuf;

use serde::Serialize;

use super::ID_LABEL;
use crate::render::SSH_USER;
use crate::tools::process::{shell_quote, Cmd};
use crate::topology::Node;

const K0S: &str = "/usr/local/bin/k0s";

/// How the lab's machines are reached: the OpenSSH client, the lab's key and its known_hosts.
#[derive(Debug, Clone)]
pub struct SshClient {
    pub program: PathBuf,
    pub private_key: PathBuf,
    pub known_hosts: PathBuf,
}

/// `ssh … admin@<node address> -- <remote>`, with the lab's key and known_hosts.
pub fn ssh(ssh: &SshClient, node: &Node, remote: &str, what: &str) -> Cmd {
    Cmd::new(&ssh.program, format!("{what} on {}", node.name))
        .args(["-i"])
        .arg(&ssh.private_key)
        .args(["-p", "22", "-o"])
        .arg(format!("UserKnownHostsFile={}", ssh.known_hosts.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg(format!("{SSH_USER}@{}", node.address))
        .arg("--")
        .arg(remote)
}

pub fn import_command() -> String {
    format!("sudo {K0S} ctr images import -")
}

pub fn list_command() -> String {
    format!("sudo {K0S} ctr images ls")
}

pub fn label_command(name: &str, id: &str) -> String {
    format!(
        "sudo {K0S} ctr images label {} {}",
        shell_quote(name),
        shell_quote(&format!("{ID_LABEL}={id}"))
    )
}

/// One row of `ctr images ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeImage {
    pub name: String,
    pub digest: String,
    pub size: String,
    /// The host ID k0slab labelled it with, if k0slab loaded it.
    pub loaded_id: Option<String>,
}

/// Parses `ctr images ls` output. SIZE may hold a space (`1.0 GiB`), so the columns are
/// taken from both ends.
pub fn parse_list(text: &str) -> Vec<NodeImage> {
    text.lines()
        .filter(|l| !l.starts_with("REF ") && !l.trim().is_empty())
        .filter_map(|line| {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            if tokens.len() < 6 {
                return None;
            }
            let labels = tokens[tokens.len() - 1];
            let loaded_id = labels.split(',').find_map(|kv| {
                kv.strip_prefix(ID_LABEL)
                    .and_then(|v| v.strip_prefix('='))
                    .map(str::to_string)
            });
            Some(NodeImage {
                name: tokens[0].to_string(),
                digest: tokens[2].to_string(),
                size: tokens[3..tokens.len() - 2].join(" "),
                loaded_id,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctr_images_ls_rows_with_and_without_labels() {
        let text = "REF                          TYPE                                       DIGEST    SIZE     PLATFORMS   LABELS\n\
                    docker.io/library/myapp:dev  application/vnd.oci.image.manifest.v1+json sha256:aa 1.0 GiB  linux/arm64 k0slab.image-id=sha256:11,x=y\n\
                    registry.k8s.io/pause:3.9    application/vnd.oci.image.index.v1+json    sha256:bb 311.6 KiB linux/arm64 io.cri-containerd.pinned=pinned\n";
        let rows = parse_list(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "docker.io/library/myapp:dev");
        assert_eq!(rows[0].size, "1.0 GiB");
        assert_eq!(rows[0].loaded_id.as_deref(), Some("sha256:11"));
        assert_eq!(rows[1].loaded_id, None);
    }
}
