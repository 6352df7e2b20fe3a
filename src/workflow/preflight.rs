//! The checks before anything boots: the tools and their versions, the host's resources, the
//! subnet bootpd serves, and that no VM or address the lab would take belongs to another.

use crate::error::{Error, InputError, Result};
use crate::lab::record::LabRecord;
use crate::lab::record::Planned;
use crate::network::{self, leases, NetworkMode};
use crate::tools::host;
use crate::tools::k0sctl::K0sctl;
use crate::tools::softnet;
use crate::tools::vagrant::MachineState;
use crate::tools::Tool;
use crate::workflow::context::Context;

/// Why Tart cannot give VMs nested virtualization on this host (none: it can): the chip
/// (`brand`, from [`host::cpu_brand`]), macOS and `tart --version`'s text, as
/// [`crate::versions::nested_problems`] judges them.
pub fn nested_problems(
    brand: Option<&str>,
    macos: Option<crate::versions::Version>,
    tart_version: Option<&str>,
) -> Vec<String> {
    let tart = tart_version.and_then(|text| {
        // A build from source is a recent one (see `tools::check_version`).
        if text.trim() == crate::tools::TART_SOURCE_BUILD {
            return Some(crate::versions::TART_FOR_NESTED);
        }
        crate::tools::parse_version(text)
    });
    crate::versions::nested_problems(brand, macos, tart)
}

pub fn prerequisites(ctx: &Context<'_>, planned: &Planned) -> Result<()> {
    ctx.tools
        .require(&[Tool::Tart, Tool::Vagrant, Tool::K0sctl, Tool::Kubectl])?;
    let vagrant = ctx.vagrant()?;
    let (k0sctl, tart) = (ctx.tools.get(Tool::K0sctl)?, ctx.tools.get(Tool::Tart)?);
    // Every tool is asked at once: each answer is a process start (a real Vagrant's takes a
    // second or two), and none depends on another. They are judged in a fixed order after.
    let nested = planned.topology.nodes.iter().any(|n| n.nested);
    let (vagrant_version, k0sctl_version, plugins, host, brand) = std::thread::scope(|s| {
        let vagrant_version = s.spawn(|| vagrant.version());
        let k0sctl_version = s.spawn(|| K0sctl::version(k0sctl, ctx.env, &ctx.out));
        let plugins = s.spawn(|| vagrant.plugins());
        // The chip only matters to nested machines (`sysctl`, see `nested_problems`).
        let brand = nested.then(|| s.spawn(|| host::cpu_brand(ctx.env, &ctx.out)));
        let host = crate::versions::HostAnswers::ask(ctx.env, &ctx.out, tart);
        let joined = "asking a tool for its version does not panic";
        (
            vagrant_version.join().expect(joined),
            k0sctl_version.join().expect(joined),
            plugins.join().expect(joined),
            host,
            brand.and_then(|b| b.join().expect(joined)),
        )
    });
    crate::tools::check_version(Tool::Vagrant, &vagrant_version?)?;
    crate::tools::check_version(Tool::K0sctl, &k0sctl_version?)?;
    let plugins = plugins?;
    if !crate::tools::vagrant::has_plugin(&plugins) {
        return Err(Error::ToolMissing {
            tool: "vagrant-tart",
            reason: "Vagrant has no vagrant-tart plugin".into(),
            hint: "vagrant plugin install vagrant-tart",
        });
    }
    // Nested virtualization, judged from the same answers (before `check` takes them).
    let nested_problems = if nested {
        nested_problems(
            brand.as_deref(),
            host.macos.as_ref().and_then(|m| m.as_ref().ok().copied()),
            host.tart.as_deref().ok(),
        )
    } else {
        Vec::new()
    };
    crate::versions::check(ctx.env, &ctx.out, host, &plugins, &planned.topology.network)?;
    if planned.topology.network == NetworkMode::Softnet {
        softnet::check(ctx.env, &ctx.out).map_err(|problem| Error::ToolMissing {
            tool: "softnet",
            reason: problem,
            hint: softnet::SETUP_HINT,
        })?;
    }
    if !nested_problems.is_empty() {
        return Err(Error::Step(format!(
            "{}=workers: Tart cannot give these VMs nested virtualization here: {}. Leave {} \
             unset (the lab runs, but KubeVirt has no /dev/kvm for workload VMs).",
            crate::inputs::Key::Nested.env_name(),
            nested_problems.join("; "),
            crate::inputs::Key::Nested.env_name()
        )));
    }
    let cpus = host::cpus();
    if let Some(n) = planned.topology.nodes.iter().find(|n| n.cpus > cpus) {
        return Err(InputError::Rule(format!(
            "{} would get {} CPUs but this host has {cpus}; vagrant-tart refuses more CPUs than \
             the host has (lower cpu_control / cpu_worker)",
            n.name, n.cpus
        ))
        .into());
    }
    if let Some(mb) = host::memory_mb() {
        let planned_mb = planned.topology.total_memory_mb();
        if planned_mb > mb {
            ctx.out.warn(&format!(
                "the VMs get {planned_mb} MB of memory together, more than this host's {mb} MB; \
                 expect swapping or failed boots"
            ));
        }
    }
    Ok(())
}

/// Refuses, before anything is written, a lab subnet that bootpd does not serve on this host:
/// bootpd would delete every planned address's entry at the VM's first request
/// ([`network::bootpd_plist`]). Nothing to check when bootpd has no configuration yet (it is
/// checked again, as root, when the addresses are assigned).
pub fn served_subnet(ctx: &Context<'_>, planned: &Planned) -> Result<()> {
    let t = &planned.topology;
    if !t.network.served_by_bootpd() {
        return Ok(());
    }
    let files = network::dhcp::Files::from_env(ctx.env);
    let Some(served) = files.served() else {
        return Ok(());
    };
    let Some(range) = network::bootpd_plist::serving(&served, t.subnet) else {
        return Err(InputError::Rule(format!(
            "{}={} but bootpd on this host serves {} ({}): it would delete the lab's addresses \
             at the VMs' first request. Unset {} to follow the served subnet, or set it to that \
             subnet",
            crate::inputs::Key::Subnet.env_name(),
            t.subnet,
            network::dhcp::shown_served(&served),
            files.plist.display(),
            crate::inputs::Key::Subnet.env_name(),
        ))
        .into());
    };
    if let Some(n) = t.nodes.iter().find(|n| !range.keeps(n.address)) {
        return Err(InputError::Rule(format!(
            "{} would get {}, outside the range bootpd serves, {range} ({})",
            n.name,
            n.address,
            files.plist.display()
        ))
        .into());
    }
    Ok(())
}

/// Stops before anything boots when a machine could not come up as planned: a Tart VM with a
/// lab VM's name that Vagrant does not track (vagrant-tart would skip the clone, boot that VM
/// and then wait for SSH until its boot timeout, letiemble/vagrant-tart
/// `lib/vagrant-tart/action/create_instance.rb` and `provider.rb`), or another machine that
/// holds a planned address now (bootpd would not notice the clash, bootp `dhcpd.c` line 760).
/// `listed` is what `tart list` printed.
pub fn preflight(
    ctx: &Context<'_>,
    record: &LabRecord,
    states: &std::collections::BTreeMap<String, MachineState>,
    listed: &[crate::tools::tart::TartVm],
) -> Result<()> {
    let existing: Vec<&str> = listed.iter().map(|vm| vm.name.as_str()).collect();
    let registry = crate::lab::registry::load(ctx.env)?;
    let here = crate::lab::registry::canonical(ctx.dir.absolute());
    let mut foreign = Vec::new();
    let mut untracked = Vec::new();
    for node in &record.nodes {
        let vm = record.vm_name(node);
        if !existing.contains(&vm.as_str()) {
            continue;
        }
        let tracked = !matches!(
            states.get(&node.name),
            None | Some(MachineState::NotCreated)
        );
        match registry.owner(&vm) {
            Some(owner) if owner.lab_dir != here => foreign.push(format!(
                "{vm} belongs to lab {} in {}",
                owner.lab,
                owner.lab_dir.display()
            )),
            // Vagrant tracks it here: this lab's (also from before k0slab kept a record).
            _ if tracked => {}
            Some(_) => untracked.push(vm),
            None => foreign.push(format!("{vm} was not created by k0slab for this lab")),
        }
    }
    if !foreign.is_empty() {
        return Err(InputError::Rule(format!(
            "Tart VM names are global on this host, and VMs this lab would create exist \
             already:\n  {}\nk0slab does not use or delete VMs that are not this lab's. Give \
             this lab another name ({}=…), or remove that lab first",
            foreign.join("\n  "),
            crate::inputs::Key::Name.env_name()
        ))
        .into());
    }
    if !untracked.is_empty() {
        return Err(InputError::Rule(format!(
            "Tart VM(s) {} of this lab exist but Vagrant does not track them in {}: \
             vagrant-tart would boot them and wait for SSH until it times out. `k0slab destroy` \
             deletes them",
            untracked.join(", "),
            ctx.dir.shown().display()
        ))
        .into());
    }
    if record.inputs.network.served_by_bootpd() {
        let paths = network::dhcp::Files::from_env(ctx.env);
        // This lab's own VMs, from earlier runs, may hold any address.
        let ours: Vec<network::Mac> = record
            .assigned
            .values()
            .copied()
            .chain(record.nodes.iter().filter_map(|n| {
                crate::tools::tart::mac_of(ctx.env, &record.vm_name(n), str::parse).ok()
            }))
            .collect();
        let now = leases::now();
        let taken: Vec<String> = leases::read(&paths.leases)
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.active_at(now) && !l.mac.is_some_and(|m| ours.contains(&m)))
            .filter_map(|l| {
                let node = record.nodes.iter().find(|n| n.address == l.address)?;
                Some(format!(
                    "{} (planned for {}) is leased to {:?}",
                    l.address, node.name, l.name
                ))
            })
            .collect();
        if !taken.is_empty() {
            return Err(InputError::Rule(format!(
                "planned addresses are in use on this host's network ({}):\n  {}\nStop that \
                 machine or choose another K0SLAB_SUBNET",
                paths.leases.display(),
                taken.join("\n  ")
            ))
            .into());
        }
    }
    Ok(())
}
