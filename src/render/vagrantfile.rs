//! The Vagrantfile: one literal block per machine for the vagrant-tart provider.

use serde::Serialize;

use super::context::{RenderContext, SSH_PASSWORD, SSH_USER};
use crate::error::Result;
use crate::templates;
use crate::topology::{NodeKind, Topology};

/// Where the file provisioner puts haproxy.cfg on the load balancer before it is installed.
const UPLOADED_HAPROXY_CFG: &str = "/tmp/k0slab-haproxy.cfg";

#[derive(Serialize)]
struct Host<'a> {
    name: &'a str,
    address: String,
}

#[derive(Serialize)]
struct GuestSetup<'a> {
    hosts: Vec<Host<'a>>,
    public_key: &'a str,
    user: &'a str,
}

#[derive(Serialize)]
struct Machine<'a> {
    name: &'a str,
    vm_name: String,
    image: &'a str,
    cpus: u32,
    memory_mb: u32,
    disk_gb: u32,
    address: String,
    prefix: String,
    load_balancer: bool,
    /// `tart run`'s extra arguments for this machine: the network's, and `--nested` where
    /// KubeVirt runs workload VMs (vagrant-tart `config.rb` lines 46-47 and 154-155: an
    /// array passed as is, `util/driver.rb` lines 116-134; a machine's value replaces a
    /// top-level one, Vagrant's config merge, so each machine says all of it).
    run_args: Vec<String>,
    /// The address Vagrant reaches the VM at while k0slab moves it (its current lease).
    ssh_host: Option<String>,
}

#[derive(Serialize)]
struct Vagrantfile<'a> {
    version: &'a str,
    lab_name: &'a str,
    ssh_user: &'a str,
    ssh_password: &'a str,
    guest_setup: String,
    load_balancer_setup: Option<String>,
    haproxy_cfg: &'a str,
    uploaded_config: &'a str,
    network: String,
    ip_resolver: &'static str,
    address_source: &'static str,
    machines: Vec<Machine<'a>>,
}

pub fn render(topology: &Topology, ctx: &RenderContext<'_>) -> Result<String> {
    let guest_setup = templates::render(
        templates::GUEST_SETUP,
        &GuestSetup {
            hosts: topology
                .nodes
                .iter()
                .map(|n| Host {
                    name: &n.name,
                    address: n.address.to_string(),
                })
                .collect(),
            public_key: ctx.public_key,
            user: SSH_USER,
        },
    )?;
    let has_load_balancer = topology
        .nodes
        .iter()
        .any(|n| n.kind == NodeKind::LoadBalancer);
    let load_balancer_setup = if has_load_balancer {
        Some(templates::render(
            templates::LOAD_BALANCER_SETUP,
            &serde_json::json!({ "uploaded_config": UPLOADED_HAPROXY_CFG }),
        )?)
    } else {
        None
    };
    let prefix = topology.subnet.prefix_len().to_string();
    let machines = topology
        .nodes
        .iter()
        .map(|n| Machine {
            name: &n.name,
            vm_name: topology.vm_name(n),
            image: &topology.image,
            cpus: n.cpus,
            memory_mb: n.memory_mb,
            disk_gb: n.disk_gb,
            address: n.address.to_string(),
            prefix: prefix.clone(),
            load_balancer: n.kind == NodeKind::LoadBalancer,
            run_args: topology
                .network
                .tart_run_args()
                .into_iter()
                .chain(
                    n.nested
                        .then(|| crate::topology::NESTED_RUN_ARG.to_string()),
                )
                .collect(),
            // While up moves a machine: the address it still has. On a bridged LAN, Tart finds
            // no lease to report: Vagrant is told the static address once it is assigned.
            ssh_host: ctx
                .ssh_hosts
                .get(&n.name)
                .copied()
                .or_else(|| {
                    (!topology.network.served_by_bootpd() && ctx.assigned.contains_key(&n.name))
                        .then_some(n.address)
                })
                .map(|a| a.to_string()),
        })
        .collect();
    templates::render(
        templates::VAGRANTFILE,
        &Vagrantfile {
            version: crate::environment::VERSION,
            lab_name: topology.name.as_str(),
            ssh_user: SSH_USER,
            ssh_password: SSH_PASSWORD,
            guest_setup,
            load_balancer_setup,
            haproxy_cfg: ctx.haproxy_cfg,
            uploaded_config: UPLOADED_HAPROXY_CFG,
            network: topology.network.to_string(),
            // Tart's `dhcp` resolver reads the host's bootpd leases, where k0slab assigns the
            // addresses; on a bridged LAN another DHCP server leases them, so `arp`
            // (cirruslabs/tart Sources/tart/Commands/IP.swift; vagrant-tart config.rb allows
            // dhcp and arp).
            ip_resolver: if topology.network.served_by_bootpd() {
                "dhcp"
            } else {
                "arp"
            },
            address_source: if topology.network.served_by_bootpd() {
                "dhcp"
            } else {
                "static"
            },
            machines,
        },
    )
}
