//! The topology: every machine of a lab with its role, address and resources, and the API
//! endpoint. Built from [`Inputs`] by a pure function; everything downstream (plan output,
//! rendered files, orchestration) reads this value.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::addresses::{self, Allocation};
use crate::error::InputError;
use crate::inputs::{EndpointMode, Inputs, K0sVersion, Key, LabName, Nested};
use crate::network::mode::ExtraAddresses;
use crate::network::NetworkMode;
use crate::roles::{self, Role};

/// Resources of the HAProxy VM.
pub const LOAD_BALANCER_CPUS: u32 = 1;
pub const LOAD_BALANCER_MEMORY_MB: u32 = 1024;
/// The Vagrant machine name of the HAProxy VM.
pub const LOAD_BALANCER_NAME: &str = "load-balancer";
/// The Kubernetes API port.
pub const API_PORT: u16 = 6443;
/// The oldest k0s release whose control-plane load balancing the lab can use (see `resolve`).
pub const CPLB_SINCE: (u32, u32, u32) = (1, 32, 0);

/// Tart's flag for nested virtualization: from Tart 2.20.0 (cirruslabs/tart commit 9c879b3,
/// `Sources/tart/Commands/Run.swift` lines 177-178), refused below macOS 15 and on chips
/// before the M3 (lines 316-322), for Linux guests only (`Platform/Darwin.swift` lines 61-64).
pub const NESTED_RUN_ARG: &str = "--nested";

/// The kubelet root KubeVirt hard-codes (kubevirt/kubevirt `pkg/util/util.go` line 27, and
/// its device plugins' socket, `device-manager/deviceplugin/v1beta1/constants.go` lines
/// 30-32); k0s' own default is `/var/lib/k0s/kubelet` (k0s `pkg/config/cfgvars.go` lines
/// 127-128), so nested workers run k0s with `--kubelet-root-dir` (k0s `pkg/config/cli.go`
/// line 253, first in v1.32.1+k0s.0).
pub const KUBELET_ROOT_DIR: &str = "/var/lib/kubelet";
pub const KUBELET_ROOT_DIR_SINCE: (u32, u32, u32) = (1, 32, 1);

/// What a worker that hosts KubeVirt workload VMs needs at least: the Kairos provider's e2e
/// gives a workload VM 2 CPUs and 4 GiB, a 40 GiB root disk and a 17024 MiB installer volume
/// (kairos-io/cluster-api-provider-kairos c300236 `internal/kubevirtenv/
/// kairos_image_install.go` lines 43 and 172-202), both on the node's local-path storage;
/// the node keeps about 4 GiB for k0s, KubeVirt's handler and the launcher's overhead, and
/// about 20 GB for its OS and images; the VM's 2 vCPUs share the worker's CPUs.
pub const NESTED_MIN_CPUS: u32 = 2;
pub const NESTED_MIN_MEMORY_MB: u32 = 8192;
pub const NESTED_MIN_DISK_GB: u32 = 80;

/// What a machine is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    Controller,
    Worker,
    /// The HAProxy VM in `haproxy` endpoint mode; not part of the k0s cluster.
    LoadBalancer,
}

/// One machine of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Vagrant machine name and guest hostname, e.g. `control-plane-1`.
    pub name: String,
    pub kind: NodeKind,
    /// The k0sctl role; `None` for the load balancer.
    pub role: Option<Role>,
    /// The static address configured inside the guest.
    pub address: Ipv4Addr,
    pub cpus: u32,
    pub memory_mb: u32,
    pub disk_gb: u32,
    /// k0sctl `noTaints` (only ever true with `controller+worker`).
    pub no_taints: bool,
    /// Nested virtualization (`K0SLAB_NESTED`): `tart run --nested`, for KubeVirt's
    /// workload VMs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nested: bool,
}

impl Node {
    /// Whether the node runs a kubelet and is therefore a Kubernetes Node.
    pub fn runs_kubelet(&self) -> bool {
        self.role.is_some_and(Role::runs_kubelet)
    }

    /// Whether ordinary workloads are scheduled on the node.
    pub fn runs_workloads(&self) -> bool {
        match self.role {
            Some(Role::ControllerWorker) => self.no_taints,
            Some(Role::Single | Role::Worker) => true,
            Some(Role::Controller) | None => false,
        }
    }

    pub fn is_controller(&self) -> bool {
        self.role.is_some_and(Role::is_controller)
    }
}

/// How the API endpoint is provided, once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    /// The API at control-plane-1's own address.
    None,
    /// A keepalived VIP managed by k0s on the controllers, with node-local load balancing.
    Cplb,
    /// A HAProxy VM in front of every controller.
    Haproxy,
}

impl fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointKind::None => "none",
            EndpointKind::Cplb => "cplb",
            EndpointKind::Haproxy => "haproxy",
        })
    }
}

/// The stable address clients use for the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub kind: EndpointKind,
    pub address: Ipv4Addr,
}

impl Endpoint {
    /// `https://<address>:6443`.
    pub fn url(&self) -> String {
        format!("https://{}:{API_PORT}", self.address)
    }

    /// A short description for people.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            EndpointKind::None => "control-plane-1's own address, no HA endpoint",
            EndpointKind::Cplb => {
                "keepalived VIP on the controllers, node-local load balancing inside"
            }
            EndpointKind::Haproxy => "HAProxy on VM load-balancer in front of every controller",
        }
    }
}

/// The Tart VM name of machine `node` of lab `lab`: `<lab>-<node>`.
pub fn vm_name(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// The warning for an even number of controllers (every even count, never an error): etcd
/// keeps quorum while a majority of its members is up, so `n` members survive `(n - 1) / 2`
/// failed members, and an even count survives no more than the odd count below it.
pub fn even_etcd_warning(controllers: u32) -> Option<String> {
    if controllers == 0 || !controllers.is_multiple_of(2) {
        return None;
    }
    let count = |n: u32, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    Some(format!(
        "{controllers} controllers form an etcd cluster of {controllers} members, which survives \
         {}, no more than {} would; prefer 3 or 5{}",
        count((controllers - 1) / 2, "failed member"),
        count(controllers - 1, "member"),
        if controllers == 2 {
            " (2 members lose quorum when one fails)"
        } else {
            ""
        }
    ))
}

/// A fully resolved lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub name: LabName,
    pub subnet: Ipv4Net,
    pub network: NetworkMode,
    pub endpoint: Endpoint,
    pub image: String,
    pub k0s_version: Option<K0sVersion>,
    /// Controllers first, then workers, then the load balancer if any.
    pub nodes: Vec<Node>,
    /// Things that are allowed but worth saying (e.g. an even etcd member count).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The addresses a lab resolves on: its own (kept) and those other labs hold.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// By machine name (and [`ENDPOINT_KEY`] for the endpoint): addresses to keep.
    pub kept: std::collections::BTreeMap<String, std::net::Ipv4Addr>,
    /// Addresses other labs on this host hold, with who holds them.
    pub held: std::collections::BTreeMap<std::net::Ipv4Addr, String>,
}

/// The key of the endpoint's address in [`Hosts::kept`].
pub const ENDPOINT_KEY: &str = "(endpoint)";

impl Hosts {
    /// The addresses a recorded lab keeps: its machines' and its endpoint's.
    pub fn kept_from(
        nodes: &[Node],
        endpoint: &Endpoint,
    ) -> std::collections::BTreeMap<String, std::net::Ipv4Addr> {
        let mut kept: std::collections::BTreeMap<_, _> =
            nodes.iter().map(|n| (n.name.clone(), n.address)).collect();
        if endpoint.kind != EndpointKind::None {
            kept.insert(ENDPOINT_KEY.to_string(), endpoint.address);
        }
        kept
    }
}

impl Topology {
    /// Applies the topology rules to `inputs`. Pure: no I/O.
    pub fn resolve(inputs: &Inputs) -> Result<Topology, InputError> {
        Self::resolve_on(inputs, &Hosts::default())
    }

    /// [`Topology::resolve`] on a host where other labs hold addresses: each machine keeps the
    /// address `hosts.kept` names for it (the lab's own, from `lab.json`); any other gets the
    /// first host number from the PRD's (.10 controllers, .20 workers, .100 the endpoint) that
    /// no other lab holds. With nothing held, the PRD's numbers exactly. Pure: no I/O.
    pub fn resolve_on(inputs: &Inputs, hosts: &Hosts) -> Result<Topology, InputError> {
        let controllers = inputs.control_plane_count;
        let workers = inputs.worker_count;
        let mut warnings = Vec::new();

        if !inputs.controller_workloads && workers == 0 {
            return Err(InputError::Rule(format!(
                "{}=false with {}=0 leaves no node that runs workloads: add workers or let \
                 controllers run workloads",
                Key::ControllerWorkloads.env_name(),
                Key::WorkerCount.env_name()
            )));
        }

        let kind = match inputs.endpoint {
            EndpointMode::Auto if controllers == 1 => EndpointKind::None,
            // A VIP is an address beside a VM's lease, which Softnet drops and macOS filters
            // (see `network`): the stable endpoint is a VM of its own, as in k0s' HA guide.
            EndpointMode::Auto => EndpointKind::Haproxy,
            EndpointMode::None => EndpointKind::None,
            EndpointMode::Cplb => EndpointKind::Cplb,
            EndpointMode::Haproxy => EndpointKind::Haproxy,
        };
        if kind != EndpointKind::None && controllers < 2 {
            return Err(InputError::Rule(format!(
                "{}={} needs at least 2 controllers ({}={controllers}); use auto or none",
                Key::Endpoint.env_name(),
                inputs.endpoint,
                Key::ControlPlaneCount.env_name()
            )));
        }
        if kind == EndpointKind::Cplb {
            // The lab's CPLB has no virtualServers ("not supported with controller + worker",
            // k0sproject/k0s docs/cplb.md line 28 at v1.32.1+k0s.0), so what balances the API is
            // k0s' userspace reverse proxy: `UserSpaceProxyPort` in pkg/apis/k0s/v1beta1/cplb.go
            // (line 77 at v1.32.1+k0s.0), from commit 3b3a1757c3, first tagged v1.32.1-rc.0
            // (there is no v1.32.0; no v1.31 tag up to v1.31.14+k0s.0 has the field). CPLB in
            // v1.30 and v1.31 is keepalived alone: it moves the VIP and balances nothing.
            if let Some(v) = inputs
                .k0s_version
                .as_ref()
                .filter(|v| !v.at_least(CPLB_SINCE.0, CPLB_SINCE.1, CPLB_SINCE.2))
            {
                return Err(too_old_for_cplb(v));
            }
        }
        if inputs.nested == Nested::Workers {
            nested_rules(inputs)?;
        }
        if kind == EndpointKind::Cplb && inputs.network.extra_addresses() == ExtraAddresses::Dropped
        {
            return Err(InputError::Rule(format!(
                "{}=cplb does not work with {}={}: keepalived's VIP is an address beside the \
                 VM's own DHCP lease, and Softnet drops every packet from such an address \
                 (cirruslabs/softnet lib/proxy/vm.rs). Use {}=haproxy (a load-balancer VM), or \
                 {}=bridged:<interface>",
                Key::Endpoint.env_name(),
                Key::Network.env_name(),
                inputs.network,
                Key::Endpoint.env_name(),
                Key::Network.env_name()
            )));
        }
        if let Some(warning) = even_etcd_warning(controllers) {
            warnings.push(warning);
        }
        if kind == EndpointKind::None && controllers > 1 {
            warnings.push(format!(
                "{}=none with {controllers} controllers: clients reach the API only through \
                 control-plane-1",
                Key::Endpoint.env_name()
            ));
        }

        let mut alloc = Allocation::new(inputs.subnet);
        for (address, holder) in &hosts.held {
            alloc.hold(*address, holder);
        }
        let place = |alloc: &mut Allocation, name: &str, first: u32| match hosts.kept.get(name) {
            Some(a) if inputs.subnet.contains(a) => alloc.claim(*a, name),
            _ if hosts.held.is_empty() => alloc.claim_host(first, name),
            _ => alloc.claim_first_free(first, name),
        };
        let mut nodes = Vec::with_capacity((controllers + workers + 1) as usize);
        for i in 1..=controllers {
            let name = format!("control-plane-{i}");
            let address = place(&mut alloc, &name, addresses::FIRST_CONTROLLER_HOST + i - 1)?;
            let r = roles::controller_role(i, controllers, workers, inputs.controller_workloads);
            nodes.push(Node {
                name,
                kind: NodeKind::Controller,
                role: Some(r.role),
                address,
                cpus: inputs.cpu_control,
                memory_mb: inputs.memory_control,
                disk_gb: inputs.disk_size,
                no_taints: r.no_taints,
                nested: false,
            });
        }
        for i in 1..=workers {
            let name = format!("worker-{i}");
            let address = place(&mut alloc, &name, addresses::FIRST_WORKER_HOST + i - 1)?;
            nodes.push(Node {
                name,
                kind: NodeKind::Worker,
                role: Some(Role::Worker),
                address,
                cpus: inputs.cpu_worker,
                memory_mb: inputs.memory_worker,
                disk_gb: inputs.disk_size,
                no_taints: false,
                nested: inputs.nested == Nested::Workers,
            });
        }

        let endpoint_owner = format!("the API endpoint ({})", Key::EndpointIp.env_name());
        let address = match kind {
            EndpointKind::None => {
                if inputs.endpoint_ip.is_some() {
                    warnings.push(format!(
                        "{} is ignored: with endpoint mode none the API is at control-plane-1",
                        Key::EndpointIp.env_name()
                    ));
                }
                nodes[0].address
            }
            EndpointKind::Cplb | EndpointKind::Haproxy => match inputs.endpoint_ip {
                Some(ip) => alloc.claim(ip, &endpoint_owner)?,
                None => match hosts.kept.get(ENDPOINT_KEY) {
                    Some(a) if inputs.subnet.contains(a) => alloc.claim(*a, &endpoint_owner)?,
                    _ if hosts.held.is_empty() => {
                        alloc.claim_host(addresses::DEFAULT_ENDPOINT_HOST, &endpoint_owner)?
                    }
                    _ => {
                        alloc.claim_first_free(addresses::DEFAULT_ENDPOINT_HOST, &endpoint_owner)?
                    }
                },
            },
        };
        if kind == EndpointKind::Haproxy {
            nodes.push(Node {
                name: LOAD_BALANCER_NAME.into(),
                kind: NodeKind::LoadBalancer,
                role: None,
                address,
                cpus: LOAD_BALANCER_CPUS,
                memory_mb: LOAD_BALANCER_MEMORY_MB,
                disk_gb: inputs.disk_size,
                no_taints: false,
                nested: false,
            });
        }

        Ok(Topology {
            name: inputs.name.clone(),
            subnet: inputs.subnet,
            network: inputs.network.clone(),
            endpoint: Endpoint { kind, address },
            image: inputs.image.clone(),
            k0s_version: inputs.k0s_version.clone(),
            nodes,
            warnings,
        })
    }

    /// The nodes k0sctl installs (every node but the load balancer).
    pub fn cluster_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.role.is_some())
    }

    pub fn controllers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_controller())
    }

    /// The name of the VM on the host (Tart VM names are global: prefixed with the lab name).
    pub fn vm_name(&self, node: &Node) -> String {
        vm_name(self.name.as_str(), &node.name)
    }

    /// Memory of all VMs together, MB.
    pub fn total_memory_mb(&self) -> u64 {
        self.nodes.iter().map(|n| u64::from(n.memory_mb)).sum()
    }
}

impl Topology {
    /// The machine named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The machines, one row each.
    pub fn table(&self) -> String {
        let rows = self
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.name.clone(),
                    n.role.map_or_else(|| "haproxy".into(), |r| r.to_string()),
                    n.address.to_string(),
                    n.cpus.to_string(),
                    format!("{} MB", n.memory_mb),
                    format!("{} GB", n.disk_gb),
                    if n.runs_workloads() { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        crate::output::table(
            &[
                "name",
                "role",
                "address",
                "cpus",
                "memory",
                "disk",
                "workloads",
            ],
            rows,
            &[3, 4, 5],
        )
    }
}

/// `K0SLAB_NESTED=workers`: workers there are, big enough for a workload VM, on a k0s that
/// can move the kubelet's root.
fn nested_rules(inputs: &Inputs) -> Result<(), InputError> {
    let nested = format!("{}=workers", Key::Nested.env_name());
    if inputs.worker_count == 0 {
        return Err(InputError::Rule(format!(
            "{nested} needs workers ({} is 0): KubeVirt's workload VMs run on them",
            Key::WorkerCount.env_name()
        )));
    }
    for (key, have, need, unit) in [
        (Key::CpuWorker, inputs.cpu_worker, NESTED_MIN_CPUS, ""),
        (
            Key::MemoryWorker,
            inputs.memory_worker,
            NESTED_MIN_MEMORY_MB,
            " MB",
        ),
        (Key::DiskSize, inputs.disk_size, NESTED_MIN_DISK_GB, " GB"),
    ] {
        if have < need {
            return Err(InputError::Rule(format!(
                "{nested} needs {}={need}{unit} or more (it is {have}): a Kairos workload VM \
                 takes 2 CPUs, 4 GiB and a 40 GiB disk plus a 17 GiB installer volume on its \
                 worker, which keeps 4 GiB and 20 GB for itself",
                key.env_name()
            )));
        }
    }
    if let Some(v) = &inputs.k0s_version {
        kubelet_root_dir_rule(v)?;
    }
    Ok(())
}

fn kubelet_root_dir_rule(v: &K0sVersion) -> Result<(), InputError> {
    let (a, b, c) = KUBELET_ROOT_DIR_SINCE;
    if v.at_least(a, b, c) {
        return Ok(());
    }
    Err(InputError::Rule(format!(
        "{}={} is too old for {}=workers: KubeVirt needs the kubelet at {KUBELET_ROOT_DIR}, \
         which k0s' --kubelet-root-dir sets from v1.32.1+k0s.0; leave {} empty for the newest \
         stable release",
        Key::K0sVersion.env_name(),
        v.as_str(),
        Key::Nested.env_name(),
        Key::K0sVersion.env_name()
    )))
}

fn too_old_for_cplb(v: &K0sVersion) -> InputError {
    InputError::Rule(format!(
        "{}={} is too old for {}=cplb: control-plane load balancing needs k0s v1.32 or newer \
         (e.g. v1.33.4+k0s.0), or leave {} empty for the newest stable release; or use {}=haproxy",
        Key::K0sVersion.env_name(),
        v.as_str(),
        Key::Endpoint.env_name(),
        Key::K0sVersion.env_name(),
        Key::Endpoint.env_name()
    ))
}

/// Whether k0s `version` can run `topology` (CPLB needs v1.32, see [`Topology::resolve_on`]):
/// for a release pinned after the topology was resolved.
pub fn check_k0s_version(topology: &Topology, version: &K0sVersion) -> Result<(), InputError> {
    if topology.endpoint.kind == EndpointKind::Cplb
        && !version.at_least(CPLB_SINCE.0, CPLB_SINCE.1, CPLB_SINCE.2)
    {
        return Err(too_old_for_cplb(version));
    }
    if topology.nodes.iter().any(|n| n.nested) {
        kubelet_root_dir_rule(version)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::Environment;
    use crate::inputs::{resolve, Flags};

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        resolve(
            &Flags::default(),
            &Environment::from_pairs(pairs.iter().copied()),
            None,
            &LabName::try_from("k0slab".to_string()).unwrap(),
        )
        .unwrap()
        .inputs
    }

    fn topo(pairs: &[(&str, &str)]) -> Result<Topology, InputError> {
        Topology::resolve(&inputs(pairs))
    }

    fn summary(t: &Topology) -> Vec<(String, String, String, bool)> {
        t.nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.role.map_or("-".into(), |r| r.to_string()),
                    n.address.to_string(),
                    n.no_taints,
                )
            })
            .collect()
    }

    fn row(name: &str, role: &str, ip: &str, nt: bool) -> (String, String, String, bool) {
        (name.into(), role.into(), ip.into(), nt)
    }

    #[test]
    fn default_is_one_controller_worker_and_one_worker() {
        let t = topo(&[]).unwrap();
        assert_eq!(
            summary(&t),
            vec![
                row(
                    "control-plane-1",
                    "controller+worker",
                    "192.168.64.10",
                    true
                ),
                row("worker-1", "worker", "192.168.64.20", false),
            ]
        );
        assert_eq!(t.endpoint.kind, EndpointKind::None);
        assert_eq!(t.endpoint.address.to_string(), "192.168.64.10");
        assert!(t.warnings.is_empty());
    }

    #[test]
    fn one_plus_zero_is_single() {
        let t = topo(&[("worker_count", "0")]).unwrap();
        assert_eq!(
            summary(&t),
            vec![row("control-plane-1", "single", "192.168.64.10", false)]
        );
        assert!(t.nodes[0].runs_workloads());
        assert!(t.nodes[0].runs_kubelet());
    }

    #[test]
    fn three_plus_two_is_ha_behind_a_load_balancer_vm() {
        let t = topo(&[("control_plane_count", "3"), ("worker_count", "2")]).unwrap();
        assert_eq!(
            summary(&t),
            vec![
                row(
                    "control-plane-1",
                    "controller+worker",
                    "192.168.64.10",
                    true
                ),
                row("control-plane-2", "controller", "192.168.64.11", false),
                row("control-plane-3", "controller", "192.168.64.12", false),
                row("worker-1", "worker", "192.168.64.20", false),
                row("worker-2", "worker", "192.168.64.21", false),
                row("load-balancer", "-", "192.168.64.100", false),
            ]
        );
        assert_eq!(t.endpoint.kind, EndpointKind::Haproxy);
        assert_eq!(t.endpoint.url(), "https://192.168.64.100:6443");
        assert!(t.warnings.is_empty());
        assert!(!t.nodes[1].runs_kubelet());
        let lb = t.nodes.last().unwrap();
        assert_eq!(
            (lb.name.as_str(), lb.address.to_string()),
            ("load-balancer", "192.168.64.100".into())
        );
    }

    #[test]
    fn every_controller_count_gets_consecutive_addresses_and_the_right_share() {
        for n in 1..=10u32 {
            let t = topo(&[
                ("control_plane_count", &n.to_string()),
                ("worker_count", "1"),
            ])
            .unwrap();
            let ctrl: Vec<&Node> = t.controllers().collect();
            assert_eq!(ctrl.len() as u32, n);
            for (i, c) in ctrl.iter().enumerate() {
                assert_eq!(c.address.octets()[3] as usize, 10 + i);
            }
            let workload_ctrl = ctrl.iter().filter(|c| c.runs_workloads()).count() as u32;
            let expected = if n <= 2 { n } else { (n / 3).max(1) };
            assert_eq!(workload_ctrl, expected, "{n} controllers");
            let warned = t.warnings.iter().any(|w| w.contains("etcd"));
            assert_eq!(warned, n % 2 == 0, "{n} controllers");
        }
    }

    #[test]
    fn every_even_controller_count_is_warned_with_what_it_survives() {
        for n in [1, 3, 5, 7, 9] {
            assert_eq!(even_etcd_warning(n), None, "{n}");
        }
        assert_eq!(
            even_etcd_warning(2).unwrap(),
            "2 controllers form an etcd cluster of 2 members, which survives 0 failed members, \
             no more than 1 member would; prefer 3 or 5 (2 members lose quorum when one fails)"
        );
        assert_eq!(
            even_etcd_warning(4).unwrap(),
            "4 controllers form an etcd cluster of 4 members, which survives 1 failed member, \
             no more than 3 members would; prefer 3 or 5"
        );
        for (n, survives) in [(6, 2), (8, 3), (10, 4)] {
            let w = even_etcd_warning(n).unwrap();
            assert!(
                w.contains(&format!(
                    "survives {survives} failed members, no more than {}",
                    n - 1
                )),
                "{w}"
            );
            assert!(!w.contains("lose quorum"), "{w}");
        }
    }

    #[test]
    fn eighty_workers_fill_20_to_99_and_the_vip_stays_at_100() {
        let t = topo(&[("control_plane_count", "10"), ("worker_count", "80")]).unwrap();
        let last = t
            .nodes
            .iter()
            .rfind(|n| n.kind == NodeKind::Worker)
            .unwrap();
        assert_eq!(last.name, "worker-80");
        assert_eq!(last.address.to_string(), "192.168.64.99");
        assert_eq!(t.endpoint.address.to_string(), "192.168.64.100");
        assert_eq!(
            t.nodes.len(),
            91,
            "80 workers, 10 controllers, the load balancer"
        );
        let zero = topo(&[("control_plane_count", "3"), ("worker_count", "0")]).unwrap();
        assert_eq!(zero.cluster_nodes().count(), 3);
    }

    #[test]
    fn eleven_controllers_collide_with_worker_1() {
        let mut i = inputs(&[("worker_count", "1")]);
        i.control_plane_count = 11;
        let err = Topology::resolve(&i).unwrap_err();
        assert_eq!(
            err.to_string(),
            "worker-1 would get 192.168.64.20, which is already control-plane-11's address"
        );
    }

    #[test]
    fn haproxy_adds_a_load_balancer_at_the_endpoint() {
        let t = topo(&[
            ("control_plane_count", "3"),
            ("worker_count", "2"),
            ("K0SLAB_ENDPOINT", "haproxy"),
        ])
        .unwrap();
        let lb = t.nodes.last().unwrap();
        assert_eq!(lb.name, "load-balancer");
        assert_eq!(lb.kind, NodeKind::LoadBalancer);
        assert_eq!(lb.role, None);
        assert_eq!(lb.address.to_string(), "192.168.64.100");
        assert_eq!(t.cluster_nodes().count(), 5);
    }

    #[test]
    fn endpoint_rules() {
        let err = topo(&[("K0SLAB_ENDPOINT", "cplb")]).unwrap_err();
        assert!(
            err.to_string().contains("needs at least 2 controllers"),
            "{err}"
        );
        let err = topo(&[("K0SLAB_ENDPOINT", "haproxy")]).unwrap_err();
        assert!(err.to_string().contains("K0SLAB_ENDPOINT=haproxy"), "{err}");

        let t = topo(&[
            ("control_plane_count", "2"),
            ("K0SLAB_ENDPOINT_IP", "192.168.64.50"),
        ])
        .unwrap();
        assert_eq!(t.endpoint.kind, EndpointKind::Haproxy);
        assert_eq!(t.endpoint.address.to_string(), "192.168.64.50");

        for (ip, expect) in [
            ("192.168.64.20", "worker-1's address"),
            ("192.168.64.10", "control-plane-1's address"),
            ("192.168.64.1", "gateway"),
            ("10.0.0.5", "outside the lab subnet"),
            ("192.168.64.255", "broadcast"),
        ] {
            let err =
                topo(&[("control_plane_count", "3"), ("K0SLAB_ENDPOINT_IP", ip)]).unwrap_err();
            assert!(err.to_string().contains(expect), "{ip}: {err}");
            assert!(
                err.to_string().contains("K0SLAB_ENDPOINT_IP"),
                "{ip}: {err}"
            );
        }

        let t = topo(&[("control_plane_count", "3"), ("K0SLAB_ENDPOINT", "none")]).unwrap();
        assert_eq!(t.endpoint.address.to_string(), "192.168.64.10");
        assert!(t.warnings.iter().any(|w| w.contains("only through")));
    }

    #[test]
    fn cplb_needs_k0s_1_32() {
        let cplb = [
            ("control_plane_count", "3"),
            ("K0SLAB_ENDPOINT", "cplb"),
            ("K0SLAB_NETWORK", "bridged:en0"),
        ];
        for old in ["v1.29.9+k0s.0", "v1.30.0+k0s.0", "v1.31.14+k0s.0"] {
            let err = topo(&[cplb[0], cplb[1], cplb[2], ("K0S_VERSION", old)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("K0S_VERSION={old}")), "{text}");
            assert!(text.contains("v1.32 or newer"), "{text}");
        }
        for new in ["v1.32.1-rc.0+k0s.0", "v1.32.1+k0s.0", "v1.34.1+k0s.0"] {
            assert!(
                topo(&[cplb[0], cplb[1], cplb[2], ("K0S_VERSION", new)]).is_ok(),
                "{new}"
            );
        }
        assert!(
            topo(&cplb).is_ok(),
            "unpinned: k0sctl takes the newest stable release"
        );
        assert!(
            topo(&[
                ("control_plane_count", "3"),
                ("K0S_VERSION", "v1.29.9+k0s.0"),
            ])
            .is_ok(),
            "the default endpoint (haproxy) has no minimum"
        );
    }

    #[test]
    fn cplb_is_refused_on_softnet_and_allowed_elsewhere() {
        for network in [None, Some("softnet")] {
            let mut env = vec![("control_plane_count", "3"), ("K0SLAB_ENDPOINT", "cplb")];
            env.extend(network.map(|n| ("K0SLAB_NETWORK", n)));
            let err = topo(&env).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("K0SLAB_ENDPOINT=cplb does not work with K0SLAB_NETWORK=softnet"),
                "{text}"
            );
            assert!(text.contains("Softnet drops"), "{text}");
        }
        for network in ["nat", "bridged:en0"] {
            let t = topo(&[
                ("control_plane_count", "3"),
                ("K0SLAB_ENDPOINT", "cplb"),
                ("K0SLAB_NETWORK", network),
            ])
            .unwrap();
            assert_eq!(t.endpoint.kind, EndpointKind::Cplb, "{network}");
        }
    }

    #[test]
    fn controller_workloads_false() {
        let t = topo(&[
            ("control_plane_count", "2"),
            ("K0SLAB_CONTROLLER_WORKLOADS", "false"),
        ])
        .unwrap();
        assert!(t
            .controllers()
            .all(|c| c.role == Some(Role::Controller) && !c.no_taints));
        let err = topo(&[
            ("worker_count", "0"),
            ("K0SLAB_CONTROLLER_WORKLOADS", "false"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("no node that runs workloads"),
            "{err}"
        );
    }

    #[test]
    fn other_subnets_keep_the_host_numbers() {
        let t = topo(&[
            ("K0SLAB_SUBNET", "10.1.0.0/16"),
            ("control_plane_count", "3"),
        ])
        .unwrap();
        assert_eq!(t.nodes[0].address.to_string(), "10.1.0.10");
        assert_eq!(t.endpoint.address.to_string(), "10.1.0.100");
    }

    #[test]
    fn resources_are_per_class() {
        let t = topo(&[
            ("memory_control", "3000"),
            ("cpu_worker", "5"),
            ("disk_size", "40"),
        ])
        .unwrap();
        assert_eq!((t.nodes[0].memory_mb, t.nodes[0].cpus), (3000, 2));
        assert_eq!((t.nodes[1].memory_mb, t.nodes[1].cpus), (4096, 5));
        assert!(t.nodes.iter().all(|n| n.disk_gb == 40));
        assert_eq!(t.total_memory_mb(), 3000 + 4096);
        assert_eq!(t.vm_name(&t.nodes[1]), "k0slab-worker-1");
    }
}
