//! k0sctl.yaml, serialised from typed structs (valid YAML by construction).

use serde::Serialize;

use super::context::{header, RenderContext, SSH_USER};
use crate::error::{Error, Result};
use crate::topology::{EndpointKind, Node, Topology};

pub const API_VERSION: &str = "k0sctl.k0sproject.io/v1beta1";
const K0S_API_VERSION: &str = "k0s.k0sproject.io/v1beta1";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct K0sctlConfig {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: ClusterSpec,
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct ClusterSpec {
    pub hosts: Vec<Host>,
    pub k0s: K0s,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Host {
    pub role: &'static str,
    pub hostname: String,
    pub ssh: Ssh,
    pub private_address: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub install_flags: Vec<String>,
    pub upload_binary: bool,
    /// A k0s binary on this host, which k0sctl uploads to the host; it comes before
    /// `uploadBinary` (k0sctl `pkg/apis/k0sctl.k0sproject.io/v1beta1/cluster/
    /// binary_providers.go` lines 11-35, `binprovider/local_file.go` lines 26-33).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k0s_binary_path: Option<String>,
    /// Files k0sctl uploads before k0s is installed (`cluster/uploadfile.go` lines 22-36;
    /// the upload phase runs before `InstallBinaries`, `action/apply.go` lines 68-70).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<UploadFile>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_taints: bool,
}

/// One of a host's `files`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadFile {
    pub name: &'static str,
    pub src: String,
    pub dst_dir: &'static str,
    /// A string with its leading 0: k0sctl reads "600" as owner-less access and refuses it
    /// (`cluster/uploadfile.go` lines 49-89).
    pub perm: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ssh {
    pub address: String,
    pub user: &'static str,
    pub port: u16,
    pub key_path: String,
}

#[derive(Debug, Serialize)]
pub struct K0s {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub config: K0sConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct K0sConfig {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: K0sSpec,
}

#[derive(Debug, Serialize)]
pub struct K0sSpec {
    pub api: Api,
    pub network: Network,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Images>,
    pub telemetry: Telemetry,
}

/// k0s' system images (`pkg/apis/k0s/v1beta1/images.go` lines 70-104): with the airgap
/// bundle imported, `IfNotPresent` (k0s' default, said here so the choice is visible) runs
/// the imported images and pulls nothing.
#[derive(Debug, Serialize)]
pub struct Images {
    pub default_pull_policy: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Api {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
    pub sans: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub provider: &'static str,
    pub calico: Calico,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane_load_balancing: Option<ControlPlaneLoadBalancing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_local_load_balancing: Option<NodeLocalLoadBalancing>,
}

/// Calico in VXLAN mode: pod traffic between nodes is tunnelled, so every packet on the wire
/// carries node addresses (the VMs' own leases) only. k0s' default provider, kube-router,
/// routes pods directly inside one subnet (its `--overlay-type=subnet` default), which puts pod
/// addresses on the wire, and Softnet drops those (cirruslabs/softnet lib/proxy/vm.rs). k0s'
/// Calico defaults to vxlan (k0sproject/k0s pkg/apis/k0s/v1beta1/calico.go); k0slab says so.
#[derive(Debug, Serialize)]
pub struct Calico {
    pub mode: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ControlPlaneLoadBalancing {
    pub enabled: bool,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub keepalived: Keepalived,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Keepalived {
    pub vrrp_instances: Vec<VrrpInstance>,
}

#[derive(Debug, Serialize)]
pub struct VrrpInstance {
    #[serde(rename = "virtualIPs")]
    pub virtual_ips: Vec<String>,
    #[serde(rename = "authPass")]
    pub auth_pass: String,
    /// Must be unique on the network: derived from the VIP so that two labs with different
    /// VIPs never share one (k0s' default, 51, would).
    #[serde(rename = "virtualRouterID")]
    pub virtual_router_id: u8,
}

#[derive(Debug, Serialize)]
pub struct NodeLocalLoadBalancing {
    pub enabled: bool,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Telemetry {
    pub enabled: bool,
}

fn host(node: &Node, ctx: &RenderContext<'_>) -> Option<Host> {
    let role = node.role?;
    let address = node.address.to_string();
    let mut install_flags = if role.runs_kubelet() {
        // Without it the kubelet registers the DHCP address instead of the static one.
        vec![format!("--kubelet-extra-args=--node-ip={address}")]
    } else {
        Vec::new()
    };
    if node.nested {
        // KubeVirt's kubelet root (see topology::KUBELET_ROOT_DIR). As an install flag, which
        // every k0sctl passes on; k0sctl v0.25.0+ moves it into its `kubeletRootDir` field
        // itself (k0sctl `cluster/host.go` lines 209-215 and 495-505).
        install_flags.push(format!(
            "--kubelet-root-dir={}",
            crate::topology::KUBELET_ROOT_DIR
        ));
    }
    Some(Host {
        role: role.as_str(),
        hostname: node.name.clone(),
        ssh: Ssh {
            address: address.clone(),
            user: SSH_USER,
            port: 22,
            key_path: ctx.private_key.display().to_string(),
        },
        private_address: address,
        install_flags,
        upload_binary: ctx.k0s_files.is_none(),
        k0s_binary_path: ctx.k0s_files.map(|f| f.binary.display().to_string()),
        // k0s imports bundles only where its worker runs containerd (k0s
        // `cmd/worker/worker.go` lines 269-271): a pure controller has none (its docs,
        // `docs/airgap-install.md` lines 104-106: "Controller nodes don't use it").
        files: match ctx.k0s_files {
            Some(f) if role.runs_kubelet() => vec![UploadFile {
                name: "k0s-airgap-bundle",
                src: f.bundle.display().to_string(),
                dst_dir: crate::release::BUNDLE_DIR,
                perm: "0644",
            }],
            _ => Vec::new(),
        },
        no_taints: node.no_taints,
    })
}

/// VRRP router IDs are 1..=255; the VIP's last octet is unique among labs on one network.
fn virtual_router_id(topology: &Topology) -> u8 {
    match topology.endpoint.address.octets()[3] {
        0 => 1,
        n => n,
    }
}

pub fn build(topology: &Topology, ctx: &RenderContext<'_>) -> K0sctlConfig {
    let endpoint = topology.endpoint;
    let cplb = endpoint.kind == EndpointKind::Cplb;
    let network = Network {
        provider: "calico",
        calico: Calico { mode: "vxlan" },
        control_plane_load_balancing: cplb.then(|| ControlPlaneLoadBalancing {
            enabled: true,
            kind: "Keepalived",
            keepalived: Keepalived {
                vrrp_instances: vec![VrrpInstance {
                    virtual_ips: vec![format!(
                        "{}/{}",
                        endpoint.address,
                        topology.subnet.prefix_len()
                    )],
                    auth_pass: ctx.vrrp_auth_pass.to_string(),
                    virtual_router_id: virtual_router_id(topology),
                }],
            },
        }),
        node_local_load_balancing: cplb.then_some(NodeLocalLoadBalancing {
            enabled: true,
            kind: "EnvoyProxy",
        }),
    };
    K0sctlConfig {
        api_version: API_VERSION,
        kind: "Cluster",
        metadata: Metadata {
            name: topology.name.to_string(),
        },
        spec: ClusterSpec {
            hosts: topology.nodes.iter().filter_map(|n| host(n, ctx)).collect(),
            k0s: K0s {
                version: topology
                    .k0s_version
                    .as_ref()
                    .map(|v| v.as_str().to_string()),
                config: K0sConfig {
                    api_version: K0S_API_VERSION,
                    kind: "ClusterConfig",
                    metadata: Metadata {
                        name: topology.name.to_string(),
                    },
                    spec: K0sSpec {
                        api: Api {
                            external_address: (endpoint.kind == EndpointKind::Haproxy)
                                .then(|| endpoint.address.to_string()),
                            sans: vec![endpoint.address.to_string()],
                        },
                        network,
                        images: ctx.k0s_files.map(|_| Images {
                            default_pull_policy: "IfNotPresent",
                        }),
                        telemetry: Telemetry { enabled: false },
                    },
                },
            },
        },
    }
}

pub fn render(topology: &Topology, ctx: &RenderContext<'_>) -> Result<String> {
    let yaml = serde_yaml_ng::to_string(&build(topology, ctx)).map_err(|e| Error::Render {
        name: "the k0sctl configuration".into(),
        reason: e.to_string(),
    })?;
    Ok(format!("# {}\n{yaml}", header(topology)))
}
