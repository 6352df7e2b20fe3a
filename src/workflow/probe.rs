//! `k0slab doctor --network`: measures on this host what its network allows, with two
//! throwaway VMs from the lab image, under each network mode, and compares each observation
//! with what the tools' sources say should happen (the reason is in every row).
//!
//! The probe is a small lab of its own in `~/.k0slab/network-probe/` (two machines at the top
//! of the lab subnet), made and destroyed with the lab's own code: rendering, `vagrant up`,
//! address assignment and `destroy`. Its report is kept in `~/.k0slab/network-probe.json`;
//! `plan`/`up` read it to decide whether `K0SLAB_ENDPOINT=cplb` on `nat` deserves a warning.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::assign;
use super::render;
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::inputs::{EndpointMode, Inputs, LabName, DISK_GB};
use crate::lab::dir::LabDir;
use crate::lab::record::LabRecord;
use crate::lab::record::Planned;
use crate::network::guest::{addresses_in, ADDRESS_QUERY};
use crate::network::probe::{
    add_address, delete_address, guest_ping, report_path, take_vip, vxlan_down, vxlan_up, Check,
    Measurement, Report, VXLAN_INNER, VXLAN_PORT, VXLAN_VNI,
};
use crate::network::NetworkMode;
use crate::output::{first_line, Output, Verbosity};
use crate::progress::Progress;
use crate::roles::Role;
use crate::tools::process::Cmd;
use crate::tools::vagrant::Vagrant;
use crate::topology::{Endpoint, EndpointKind, Node, NodeKind, Topology};
use crate::workflow::context::Context;
use crate::workflow::machines::on_created_machines;

/// The probe's lab name (its Tart VMs are `k0slab-probe-probe-a` and `-b`).
pub const LAB_NAME: &str = "k0slab-probe";
const MACHINES: [&str; 2] = ["probe-a", "probe-b"];

/// How long the probe's guests get to take their assigned address, unless
/// `K0SLAB_ADDRESS_TIMEOUT` says otherwise (a lab's machines get 3 minutes). A fresh probe VM
/// asks again at once; a DHCP client without an answer retransmits after about 4, 8, 16 and 32
/// seconds (RFC 2131 section 4.1), so in a minute bootpd had four chances to answer.
const ADDRESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long one question to a probe guest over `vagrant ssh` may take.
const GUEST_ANSWER: std::time::Duration = std::time::Duration::from_secs(20);

fn save(env: &Environment, report: &Report) -> Result<()> {
    let path = report_path(env);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let mut json = serde_json::to_string_pretty(report).expect("report serialises");
    json.push('\n');
    write_atomic(&path, json.as_bytes(), crate::lab::files::MODE_PUBLIC).map(|_| ())
}

// --- the probe's lab -------------------------------------------------------------------------

/// Four host addresses at the top of `subnet` that the lab does not plan for: two VMs, the
/// extra address and the VIP.
fn probe_addresses(topology: &Topology) -> Result<[Ipv4Addr; 4]> {
    let base = u32::from(topology.subnet.network());
    let used: Vec<Ipv4Addr> = topology
        .nodes
        .iter()
        .map(|n| n.address)
        .chain([topology.endpoint.address])
        .collect();
    let free: Vec<Ipv4Addr> = (200..=254)
        .rev()
        .map(|h| Ipv4Addr::from(base + h))
        .filter(|a| !used.contains(a))
        .take(4)
        .collect();
    free.try_into().map_err(|_| {
        Error::Step(format!(
            "no four free addresses between .200 and .254 of {} for the probe",
            topology.subnet
        ))
    })
}

fn probe_plan(lab: &Planned, addresses: &[Ipv4Addr; 4], mode: &NetworkMode) -> Planned {
    let name = LabName::try_from(LAB_NAME.to_string()).expect("a valid lab name");
    let inputs = Inputs {
        name: name.clone(),
        control_plane_count: 0,
        worker_count: 2,
        memory_control: lab.inputs.memory_control,
        memory_worker: 1024,
        cpu_control: 1,
        cpu_worker: 1,
        disk_size: *DISK_GB.start(),
        subnet: lab.inputs.subnet,
        network: mode.clone(),
        endpoint: EndpointMode::None,
        endpoint_ip: None,
        image: lab.inputs.image.clone(),
        provider: lab.inputs.provider,
        k0s_version: None,
        controller_workloads: false,
        nested: crate::inputs::Nested::None,
    };
    let nodes: Vec<Node> = MACHINES
        .iter()
        .zip(addresses)
        .map(|(name, address)| Node {
            name: (*name).to_string(),
            kind: NodeKind::Worker,
            role: Some(Role::Worker),
            address: *address,
            cpus: 1,
            memory_mb: 1024,
            disk_gb: inputs.disk_size,
            no_taints: false,
            nested: false,
        })
        .collect();
    Planned {
        topology: Topology {
            name,
            subnet: inputs.subnet,
            network: mode.clone(),
            endpoint: Endpoint {
                kind: EndpointKind::None,
                address: addresses[0],
            },
            image: inputs.image.clone(),
            k0s_version: None,
            nodes,
            warnings: Vec::new(),
        },
        inputs,
        changes: Vec::new(),
        record: None,
    }
}

/// The modes to measure: a bridged interface when the lab uses one (first: once an address
/// is assigned, a bridged lab reaches its VMs at the planned addresses), softnet when it is
/// set up, and nat.
fn modes(ctx: &Context<'_>, lab: &NetworkMode) -> (Vec<NetworkMode>, Option<String>) {
    let mut modes = Vec::new();
    if let NetworkMode::Bridged(_) = lab {
        modes.push(lab.clone());
    }
    let mut skipped = None;
    match crate::tools::softnet::check(ctx.env, &ctx.out) {
        Ok(_) => modes.push(NetworkMode::Softnet),
        Err(problem) => skipped = Some(problem),
    }
    modes.push(NetworkMode::Nat);
    (modes, skipped)
}

struct Probe<'a> {
    ctx: Context<'a>,
    progress: Progress,
}

impl Probe<'_> {
    fn vagrant(&self) -> Result<Vagrant<'_>> {
        self.ctx.vagrant()
    }

    fn on(&self, machine: &str, command: &str) -> std::result::Result<String, String> {
        self.vagrant()
            .map_err(|e| e.to_string())?
            .ssh_output_within(machine, command, GUEST_ANSWER)
            .map_err(|e| first_line(&e.to_string()))
    }

    fn reaches(&self, from: &str, address: Ipv4Addr) -> bool {
        self.on(from, &guest_ping(address)).is_ok()
    }

    /// The host's `ping`: one echo request, exit 0 on a reply (apple-oss-distributions/
    /// network_cmds `ping.tproj/ping.c` lines 345-352 `-c`, 561-570 `-t` seconds, 1636-1639).
    fn host_reaches(&self, address: Ipv4Addr) -> Option<bool> {
        let ping = crate::tools::on_path(self.ctx.env, "ping")?;
        Some(
            Cmd::new(&ping, format!("pinging {address} from this host"))
                .args(["-c", "1", "-t", "2"])
                .arg(address.to_string())
                .output(self.ctx.env, &self.ctx.out)
                .is_ok(),
        )
    }

    /// Why `machine` is not at `planned` after the assignment, from where its guest answers:
    /// at the planned address after all, at the lease it had before (`earlier`), or nowhere,
    /// which means its DHCP client is without a lease: bootpd did not answer it.
    fn why_not_at(
        &self,
        lab: &Planned,
        addresses: &[Ipv4Addr; 4],
        mode: &NetworkMode,
        machine: &str,
        planned: Ipv4Addr,
        earlier: Option<Ipv4Addr>,
    ) -> Option<String> {
        let ask = || {
            self.vagrant()
                .ok()?
                .ssh_output_within(machine, ADDRESS_QUERY, GUEST_ANSWER)
                .ok()
                .map(|o| crate::network::guest::guest_in(&o))
        };
        if let Some((host, at)) = ask() {
            if host == machine && crate::network::guest::only_planned(&at, planned, None) {
                return None;
            }
        }
        if let Some(earlier) = earlier.filter(|e| *e != planned) {
            let mut plan = probe_plan(lab, addresses, mode);
            plan.record = self.ctx.dir.read_record().ok().flatten();
            let assigned = plan
                .record
                .as_ref()
                .map(|r| r.assigned.clone())
                .unwrap_or_default();
            let at = BTreeMap::from([(machine.to_string(), earlier)]);
            if render::write_lab_with(&self.ctx, &plan, &assigned, &at).is_ok() {
                let seen = ask();
                let _ = render::write_lab_with(&self.ctx, &plan, &assigned, &BTreeMap::new());
                if let Some((_, at)) = seen.filter(|(host, _)| host == machine) {
                    return Some(format!(
                        "{machine} still has {} instead of {planned}: bootpd answered its DHCP \
                         request with its earlier lease, or its DHCP client did not ask again",
                        at.iter()
                            .map(|a| a.address.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        Some(format!(
            "bootpd did not answer {machine}: within {}s of k0slab assigning it {planned} its \
             guest answers neither there{} (its DHCP client has no lease)",
            self.address_timeout().as_secs(),
            earlier.map_or_else(String::new, |e| format!(" nor at its earlier {e}"))
        ))
    }

    /// How long the probe waits for a guest to take its assigned address.
    fn address_timeout(&self) -> std::time::Duration {
        crate::inputs::duration_var(self.ctx.env, "K0SLAB_ADDRESS_TIMEOUT", ADDRESS_TIMEOUT)
            .unwrap_or(ADDRESS_TIMEOUT)
    }

    fn lease(&self, machine: &str) -> std::result::Result<Ipv4Addr, String> {
        let output = self.on(machine, ADDRESS_QUERY)?;
        addresses_in(&output)
            .first()
            .copied()
            .ok_or_else(|| format!("{machine} has no IPv4 address"))
    }

    /// Writes the probe's files for `mode` and boots both VMs.
    fn boot(&self, lab: &Planned, addresses: &[Ipv4Addr; 4], mode: &NetworkMode) -> Result<()> {
        let mut planned = probe_plan(lab, addresses, mode);
        planned.record = self.ctx.dir.read_record()?;
        let assigned = planned
            .record
            .as_ref()
            .map(|r| r.assigned.clone())
            .unwrap_or_default();
        render::write_lab_with(&self.ctx, &planned, &assigned, &BTreeMap::new())?;
        crate::lab::registry::claim(
            self.ctx.env,
            self.ctx.dir.absolute(),
            LAB_NAME,
            &MACHINES.map(|m| crate::topology::vm_name(LAB_NAME, m)),
        )?;
        let nodes: Vec<&Node> = planned.topology.nodes.iter().collect();
        super::boot::machines_up(
            &self.ctx,
            &self.progress,
            &nodes,
            &BTreeMap::new(),
            &|_| false,
            "Run `k0slab doctor --network` again: it removes what the probe left first.",
        )
        .map(|_| ())
    }

    fn halt(&self, record: &LabRecord) -> Result<()> {
        on_created_machines(
            &self.ctx,
            record,
            "vagrant halt",
            ("stopping", "stopped"),
            |vagrant, machine| vagrant.halt_cmd(machine),
            "Run `k0slab doctor --network` again: it removes what the probe left first.",
        )
    }

    /// Every check on the leases the VMs have now.
    fn measure(
        &self,
        mode: &NetworkMode,
        addresses: &[Ipv4Addr; 4],
        prefix: u8,
    ) -> Vec<Measurement> {
        let [a, b] = MACHINES;
        let (la, lb) = match (self.lease(a), self.lease(b)) {
            (Ok(la), Ok(lb)) => (la, lb),
            (Err(e), _) | (_, Err(e)) => {
                return [
                    Check::VmToVm,
                    Check::Vxlan,
                    Check::ExtraFromVm,
                    Check::ExtraFromHost,
                    Check::VipMoved,
                ]
                .into_iter()
                .map(|c| Measurement::new(mode, c, None, format!("no lease to measure on: {e}")))
                .collect();
            }
        };
        let mut found = Vec::new();

        let (ab, ba) = (self.reaches(a, lb), self.reaches(b, la));
        found.push(Measurement::new(
            mode,
            Check::VmToVm,
            Some(ab && ba),
            format!("{a} {la} → {b} {lb}: {}; back: {}", reply(ab), reply(ba)),
        ));

        let tunnel = self
            .on(a, &vxlan_up(la, lb, VXLAN_INNER[0]))
            .and_then(|_| self.on(b, &vxlan_up(lb, la, VXLAN_INNER[1])))
            .map(|_| self.reaches(a, VXLAN_INNER[1]));
        for machine in MACHINES {
            let _ = self.on(machine, &vxlan_down());
        }
        found.push(match tunnel {
            Err(e) => Measurement::new(
                mode,
                Check::Vxlan,
                None,
                format!("setting the tunnel up failed: {e}"),
            ),
            Ok(through) => Measurement::new(
                mode,
                Check::Vxlan,
                Some(through),
                format!(
                    "VNI {VXLAN_VNI}, UDP {VXLAN_PORT}; {} → {}: {}",
                    VXLAN_INNER[0],
                    VXLAN_INNER[1],
                    reply(through)
                ),
            ),
        });

        let [_, _, extra, vip] = *addresses;
        match self.on(a, &add_address(extra, prefix)) {
            Err(e) => {
                let detail = format!("adding {extra} on {a} failed: {e}");
                found.push(Measurement::new(
                    mode,
                    Check::ExtraFromVm,
                    None,
                    detail.clone(),
                ));
                found.push(Measurement::new(mode, Check::ExtraFromHost, None, detail));
            }
            Ok(_) => {
                let from_vm = self.reaches(b, extra);
                found.push(Measurement::new(
                    mode,
                    Check::ExtraFromVm,
                    Some(from_vm),
                    format!("{extra} beside {a}'s lease, from {b}: {}", reply(from_vm)),
                ));
                let from_host = self.host_reaches(extra);
                found.push(Measurement::new(
                    mode,
                    Check::ExtraFromHost,
                    from_host,
                    from_host.map_or_else(
                        || "this host has no ping on PATH".to_string(),
                        |r| format!("{extra} from this host: {}", reply(r)),
                    ),
                ));
                let _ = self.on(a, &delete_address(extra, prefix));
            }
        }

        let moved = self
            .on(a, &take_vip(vip))
            .and_then(|_| self.on(a, &delete_address(vip, 32)))
            .and_then(|_| self.on(b, &take_vip(vip)));
        found.push(match moved {
            Err(e) => Measurement::new(
                mode,
                Check::VipMoved,
                None,
                format!("moving {vip} failed: {e}"),
            ),
            Ok(_) => {
                let from_host = self.host_reaches(vip);
                let from_a = self.reaches(a, vip);
                let _ = self.on(b, &delete_address(vip, 32));
                Measurement::new(
                    mode,
                    Check::VipMoved,
                    Some(from_host.unwrap_or(false) && from_a),
                    format!(
                        "{vip} moved {a} → {b}; from this host: {}, from {a}: {}",
                        from_host.map_or("no ping on PATH", reply),
                        reply(from_a)
                    ),
                )
            }
        });
        found
    }
}

fn reply(got: bool) -> &'static str {
    if got {
        "reply"
    } else {
        "no reply"
    }
}

/// Runs the probe for the lab `lab` was planned from; saves and returns the report. Whatever
/// happens, the probe's VMs and files are removed again.
pub fn run(ctx: &Context<'_>, lab: &Planned) -> Result<Report> {
    let dir = crate::tools::host::k0slab_home(ctx.env).join("network-probe");
    // The probe's own wait for the assigned addresses (see ADDRESS_TIMEOUT).
    let env = if ctx.env.get("K0SLAB_ADDRESS_TIMEOUT").is_some() {
        ctx.env.clone()
    } else {
        Environment::from_pairs(
            ctx.env
                .vars()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(std::iter::once((
                    "K0SLAB_ADDRESS_TIMEOUT".to_string(),
                    format!("{}s", ADDRESS_TIMEOUT.as_secs()),
                ))),
        )
    };
    let probe = Probe {
        ctx: Context {
            env: &env,
            out: ctx.out.clone(),
            dir: LabDir::new(dir)?,
            tools: ctx.tools.clone(),
        },
        progress: Progress::new(&ctx.out),
    };
    let _lock =
        crate::lab::lock::acquire(ctx.env, probe.ctx.dir.absolute(), "k0slab doctor --network")?;
    if probe.ctx.dir.read_record()?.is_some() {
        ctx.out
            .info("an earlier probe was interrupted: removing its VMs first");
        super::destroy::run(&probe.ctx)?;
    }
    let addresses = probe_addresses(&lab.topology)?;
    let (modes, softnet_problem) = modes(ctx, &lab.topology.network);
    let mut measurements = Vec::new();
    if let Some(problem) = &softnet_problem {
        ctx.out.warn(&format!(
            "not measuring softnet: {problem}. Set it up once with: {}",
            crate::tools::softnet::SETUP_HINT
        ));
        measurements.extend([Check::VmToVm, Check::Vxlan].map(|c| {
            Measurement::new(
                &NetworkMode::Softnet,
                c,
                None,
                format!("Softnet is not set up: {problem}"),
            )
        }));
    }
    let outcome = (|| -> Result<()> {
        super::boot::pull_image(&probe.ctx, &probe.progress, &lab.inputs.image, None)?;
        let prefix = lab.inputs.subnet.prefix_len();
        let mut reserved = false;
        for mode in &modes {
            if let Some(record) = probe.ctx.dir.read_record()? {
                probe.halt(&record)?;
            }
            ctx.out.progress(&format!("probing network {mode}"));
            probe.boot(lab, &addresses, mode)?;
            measurements.extend(probe.measure(mode, &addresses, prefix));
            if mode.served_by_bootpd() && !reserved {
                reserved = true;
                let record = probe.ctx.record()?;
                let earlier = MACHINES.map(|m| probe.lease(m).ok());
                // Its failures are said below, of the probe's guests: a lab's advice (`k0slab
                // halt`, `up`) does not fit VMs the probe deletes.
                let assigning = Context {
                    env: probe.ctx.env,
                    out: probe.ctx.out.clone().problems_as_details(),
                    dir: probe.ctx.dir.clone(),
                    tools: probe.ctx.tools.clone(),
                };
                let observed = assign::planned_addresses(&assigning, &probe.progress, &record);
                let detail = match &observed {
                    Ok(_) => format!(
                        "{} and {} took {} and {}",
                        MACHINES[0], MACHINES[1], addresses[0], addresses[1]
                    ),
                    // Said of the probe's guests, not of a lab's: no `k0slab halt`/`up` advice,
                    // the probe deletes its VMs.
                    Err(e) => {
                        let why: Vec<String> = (0..2)
                            .filter_map(|i| {
                                probe.why_not_at(
                                    lab,
                                    &addresses,
                                    mode,
                                    MACHINES[i],
                                    addresses[i],
                                    earlier[i],
                                )
                            })
                            .collect();
                        probe.ctx.out.detail(&e.to_string());
                        if why.is_empty() {
                            first_line(&e.to_string())
                        } else {
                            why.join("; ")
                        }
                    }
                };
                measurements.push(Measurement::new(
                    mode,
                    Check::ReservedAddress,
                    Some(observed.is_ok()),
                    detail,
                ));
            }
        }
        Ok(())
    })();
    let cleanup = super::destroy::run(&Context {
        env: ctx.env,
        out: Output::new(Verbosity::Quiet),
        dir: probe.ctx.dir.clone(),
        tools: ctx.tools.clone(),
    });
    let report = Report {
        k0slab_version: crate::environment::VERSION.to_string(),
        measured_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        image: lab.inputs.image.clone(),
        measurements,
    };
    if !report.measurements.is_empty() {
        save(ctx.env, &report)?;
    }
    outcome?;
    cleanup.map_err(|e| {
        Error::Step(format!(
            "the probe measured, but removing its VMs failed: {e}\nRun `k0slab doctor --network` \
             again, or remove them with `k0slab --dir {} destroy`",
            probe.ctx.dir.shown().display()
        ))
    })?;
    Ok(report)
}
