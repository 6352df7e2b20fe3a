//! `k0slab up`: prerequisites → render → every machine up in parallel → k0sctl apply →
//! kubeconfig → health. Idempotent: running machines are left alone, and a lab that is
//! already applied and healthy is not applied again. A failed run resumes where it stopped.

use std::fs;
use std::time::{Duration, Instant};

use super::{plan, render};
use crate::error::{Error, InputError, Result};
use crate::fsutil::write_atomic;
use crate::health::Check;
use crate::inputs::Flags;
use crate::kubeconfig;
use crate::lab::files::APPLIED_MARKER;
use crate::lab::files::{K0SCTL_YAML, MODE_PRIVATE};
use crate::lab::record::LabRecord;
use crate::lab::record::Planned;
use crate::network::{self, leases, NetworkMode};
use crate::progress::{format_duration, Progress};
use crate::tools::host;
use crate::tools::k0sctl::K0sctl;
use crate::tools::process::{check_interrupted, shell_quote};
use crate::tools::softnet;
use crate::tools::tart::Tart;
use crate::tools::vagrant::MachineState;
use crate::tools::Tool;
use crate::topology::{Node, NodeKind};
use crate::workflow::context::Context;
use crate::workflow::machines::machine_failures;
use crate::workflow::machines::per_machine;
use crate::workflow::resolve::describe_changes;
use crate::workflow::resolve::plan_lab;

const RESUME_HINT: &str = "Fix the cause and run `k0slab up` again: machines that are up are kept.";

/// Options of `up`.
pub struct UpOptions {
    pub dry_run: bool,
    /// A `k0sctl backup` to restore the cluster from (`k0slab restore`).
    pub restore_from: Option<std::path::PathBuf>,
    /// Print the plan table and the health summary (not when another command runs `up`).
    pub summary: bool,
    /// How long to wait for the lab to become healthy at the end.
    pub wait: Duration,
}

fn prerequisites(ctx: &Context<'_>, planned: &Planned) -> Result<()> {
    ctx.tools
        .require(&[Tool::Tart, Tool::Vagrant, Tool::K0sctl, Tool::Kubectl])?;
    let vagrant = ctx.vagrant()?;
    let (k0sctl, tart) = (ctx.tools.get(Tool::K0sctl)?, ctx.tools.get(Tool::Tart)?);
    // Every tool is asked at once: each answer is a process start (a real Vagrant's takes a
    // second or two), and none depends on another. They are judged in a fixed order after.
    let (vagrant_version, k0sctl_version, plugins, host) = std::thread::scope(|s| {
        let vagrant_version = s.spawn(|| vagrant.version());
        let k0sctl_version = s.spawn(|| K0sctl::version(k0sctl, ctx.env, &ctx.out));
        let plugins = s.spawn(|| vagrant.plugins());
        let host = crate::versions::HostAnswers::ask(ctx.env, &ctx.out, tart);
        let joined = "asking a tool for its version does not panic";
        (
            vagrant_version.join().expect(joined),
            k0sctl_version.join().expect(joined),
            plugins.join().expect(joined),
            host,
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
    crate::versions::check(ctx.env, &ctx.out, host, &plugins, &planned.topology.network)?;
    if planned.topology.network == NetworkMode::Softnet {
        softnet::check(ctx.env, &ctx.out).map_err(|problem| Error::ToolMissing {
            tool: "softnet",
            reason: problem,
            hint: softnet::SETUP_HINT,
        })?;
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
fn served_subnet(ctx: &Context<'_>, planned: &Planned) -> Result<()> {
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

fn dry_run(ctx: &Context<'_>, planned: &Planned) -> Result<()> {
    let t = &planned.topology;
    let dir = ctx.dir.shown().display().to_string();
    let mut lines = vec![
        "Dry run: nothing is written or started. `k0slab up` would:".to_string(),
        format!(
            "  write {dir}/Vagrantfile, {dir}/k0sctl.yaml, {dir}/lab.json{} and the lab's SSH key",
            if t.nodes.iter().any(|n| n.kind == NodeKind::LoadBalancer) {
                format!(", {dir}/haproxy.cfg")
            } else {
                String::new()
            }
        ),
    ];
    // Missing tools are shown by name; the commands are the ones a real run builds.
    let path = |tool: Tool| {
        ctx.tools.get(tool).map_or_else(
            |_| std::path::PathBuf::from(tool.name()),
            |p| p.to_path_buf(),
        )
    };
    let (tart_path, vagrant_path, k0sctl_path) =
        (path(Tool::Tart), path(Tool::Vagrant), path(Tool::K0sctl));
    let tart = Tart {
        path: &tart_path,
        env: ctx.env,
        out: &ctx.out,
    };
    let vagrant = crate::tools::vagrant::Vagrant {
        path: &vagrant_path,
        lab_dir: ctx.dir.absolute(),
        env: ctx.env,
        out: &ctx.out,
    };
    let config = ctx.dir.join(K0SCTL_YAML);
    let k0sctl = K0sctl {
        path: &k0sctl_path,
        config: &config,
        known_hosts: &ctx.dir.join(crate::lab::files::KNOWN_HOSTS),
        env: ctx.env,
        out: &ctx.out,
    };
    lines.push(format!(
        "  {}    (unless the image is cached)",
        tart.pull_cmd(&t.image).command_line()
    ));
    lines.push(format!(
        "  in parallel, in {dir}/ (machines already running are skipped):"
    ));
    for n in &t.nodes {
        lines.push(format!("    {}", vagrant.up_cmd(&n.name).command_line()));
    }
    if t.network.served_by_bootpd() {
        let paths = network::dhcp::Files::from_env(ctx.env);
        lines.push(format!(
            "  read each VM's MAC from {}/vms/<VM>/config.json, then as root (sudo, after saying \
             why): assign each planned address to its VM's MAC in {}, reserve it in {}, and send \
             a running bootpd SIGHUP",
            crate::tools::tart::home(ctx.env).display(),
            paths.leases.display(),
            paths.bootptab.display()
        ));
        lines.push(
            "  per machine that holds another address (those that sit on another's planned \
             address first): make its DHCP client start over"
                .into(),
        );
    } else {
        lines.push("  per machine: make its planned address its only, static address".into());
    }
    lines.push(
        "  then wait until each guest has exactly its planned address and its own hostname:".into(),
    );
    for n in &t.nodes {
        let vip = network::guest::allowed_extra(&t.endpoint, n).map_or_else(String::new, |vip| {
            format!(", and the VIP {vip} as a secondary address once k0s runs")
        });
        lines.push(format!(
            "    {}    (expect {}{vip})",
            vagrant
                .ssh_cmd(&n.name, Some(network::guest::ADDRESS_QUERY))
                .command_line(),
            n.address
        ));
    }
    let out = ctx.dir.join(".kubeconfig-from-apply-XXXXXX");
    lines.push(format!(
        "  {}",
        k0sctl
            .apply_cmd(Some((&out, &t.endpoint.url())))
            .command_line()
    ));
    lines.push(format!(
        "  the admin kubeconfig it wrote, its names made the lab's, into {dir}/kubeconfig"
    ));
    lines.push(format!("  k0slab --dir {dir} health    (kubectl get --raw /readyz, nodes, kube-system pods; vagrant status; sudo timeout 10 k0s etcd member-list on each running controller until one answers)"));
    ctx.out.result(&lines.join("\n"));
    if let Err(e) = ctx
        .tools
        .require(&[Tool::Tart, Tool::Vagrant, Tool::K0sctl, Tool::Kubectl])
    {
        ctx.out.warn(&format!("a real run would stop here: {e}"));
    }
    Ok(())
}

/// Brings `nodes` up in parallel. A machine that is running and `settled` (an earlier `up`
/// got past its guest setup and address) is left alone; a running machine that is not (an
/// `up` was interrupted while it booted) gets `vagrant up` again, which with vagrant-tart runs
/// the guest setup on a running VM (letiemble/vagrant-tart `lib/vagrant-tart/action.rb` lines
/// 190-197, `action/start_instance.rb` lines 21-25). Returns how many were booted; a failure
/// names the machines and ends with `resume_hint`.
pub(crate) fn machines_up(
    ctx: &Context<'_>,
    progress: &Progress,
    nodes: &[&Node],
    states: &std::collections::BTreeMap<String, MachineState>,
    settled: &(dyn Fn(&Node) -> bool + Sync),
    resume_hint: &str,
) -> Result<usize> {
    let vagrant = ctx.vagrant()?;
    let results = per_machine(ctx, progress, nodes, |node, bar| {
        if states.get(&node.name) == Some(&MachineState::Running) && settled(node) {
            bar.done("already running");
            return Ok(false);
        }
        let outcome = vagrant
            .up(&node.name, |stage, message| {
                bar.step(stage as u64, &format!("{}: {message}", stage.label()));
            })
            .map(|()| true);
        match &outcome {
            Ok(_) => bar.done("running"),
            Err(Error::Interrupted) => bar.failed("interrupted"),
            // The whole message follows once, from `machine_failures`.
            Err(_) => bar.failed("vagrant up failed (the cause follows)"),
        }
        outcome
    });
    let booted = machine_failures(ctx, "vagrant up", results, resume_hint)?;
    Ok(booted.iter().filter(|(_, b)| *b).count())
}

/// Stops before anything boots when a machine could not come up as planned: a Tart VM with a
/// lab VM's name that Vagrant does not track (vagrant-tart would skip the clone, boot that VM
/// and then wait for SSH until its boot timeout, letiemble/vagrant-tart
/// `lib/vagrant-tart/action/create_instance.rb` and `provider.rb`), or another machine that
/// holds a planned address now (bootpd would not notice the clash, bootp `dhcpd.c` line 760).
/// `listed` is what `tart list` printed.
fn preflight(
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
            .chain(
                record
                    .nodes
                    .iter()
                    .filter_map(|n| crate::tools::tart::mac_of(ctx.env, &record.vm_name(n)).ok()),
            )
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

/// Pulls `image` unless Tart has it: as `listed` says (what `tart list` printed just now),
/// else as Tart is asked.
pub(crate) fn pull_image(
    ctx: &Context<'_>,
    progress: &Progress,
    image: &str,
    listed: Option<&[crate::tools::tart::TartVm]>,
) -> Result<()> {
    let tart = Tart {
        path: ctx.tools.get(Tool::Tart)?,
        env: ctx.env,
        out: &ctx.out,
    };
    let cached = match listed {
        Some(listed) => crate::tools::tart::listed_image(listed, image),
        None => tart.has_image(image)?,
    };
    if cached {
        return Ok(());
    }
    let spinner = progress.spinner("image");
    spinner.message(&format!("pulling {image} once for every VM"));
    match tart.pull_cmd(image).output(ctx.env, &ctx.out) {
        Ok(_) => {
            spinner.done(&format!("pulled {image}"));
            Ok(())
        }
        Err(e) => {
            spinner.failed("pull failed");
            Err(Error::Step(format!("pulling the VM image failed: {e}")))
        }
    }
}

/// `k0sctl apply`, which also writes the admin kubeconfig into `kubeconfig_out`.
fn apply(
    ctx: &Context<'_>,
    progress: &Progress,
    k0sctl: &K0sctl<'_>,
    restore_from: Option<&std::path::Path>,
    kubeconfig_out: (&std::path::Path, &str),
) -> Result<()> {
    let spinner = progress.spinner("k0sctl");
    spinner.message("k0sctl apply");
    match k0sctl.apply(restore_from, Some(kubeconfig_out), |phase| {
        spinner.message(phase)
    }) {
        Ok(()) => {
            spinner.done("k0sctl apply finished");
            let applied =
                fs::read(k0sctl.config).map_err(|e| Error::io("reading", k0sctl.config, e))?;
            write_atomic(&ctx.dir.join(APPLIED_MARKER), &applied, MODE_PRIVATE)?;
            Ok(())
        }
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Err(e) => {
            spinner.failed("k0sctl apply failed");
            Err(Error::Step(format!(
                "step k0sctl apply failed: {e}\nFix the cause and run `k0slab up` again: the \
                 machines are kept and k0sctl apply runs again."
            )))
        }
    }
}

/// Whether k0sctl.yaml is exactly what was last applied.
pub(crate) fn already_applied(ctx: &Context<'_>) -> bool {
    match (
        fs::read(ctx.dir.join(APPLIED_MARKER)),
        fs::read(ctx.dir.join(K0SCTL_YAML)),
    ) {
        (Ok(a), Ok(b)) => a == b && ctx.dir.join(crate::lab::files::KUBECONFIG).is_file(),
        _ => false,
    }
}

/// `k0sctl apply`, then the lab's kubeconfig from what the apply wrote (or, when k0sctl could
/// not write it, which it only warns about, from `k0sctl kubeconfig`).
fn apply_and_write_kubeconfig(
    ctx: &Context<'_>,
    progress: &Progress,
    k0sctl: &K0sctl<'_>,
    record: &LabRecord,
    restore_from: Option<&std::path::Path>,
) -> Result<()> {
    let url = record.endpoint.url();
    // Empty, 0600 and in the lab directory; removed when dropped, whatever happens.
    let out = tempfile::Builder::new()
        .prefix(".kubeconfig-from-apply-")
        .tempfile_in(ctx.dir.absolute())
        .map_err(|e| Error::io("creating a file in", ctx.dir.absolute(), e))?;
    apply(ctx, progress, k0sctl, restore_from, (out.path(), &url))?;
    let raw = fs::read_to_string(out.path()).map_err(|e| Error::io("reading", out.path(), e))?;
    let raw = if raw.trim().is_empty() {
        ctx.out
            .detail("k0sctl apply wrote no kubeconfig: asking `k0sctl kubeconfig`");
        k0sctl.kubeconfig(&url)?
    } else {
        raw
    };
    let normalized = kubeconfig::normalize(&raw, record.name())?;
    write_atomic(
        &ctx.dir.join(crate::lab::files::KUBECONFIG),
        normalized.as_bytes(),
        MODE_PRIVATE,
    )?;
    Ok(())
}

fn summary(ctx: &Context<'_>, record: &LabRecord, started: Instant, checks: &[Check]) {
    let kubeconfig_path = ctx.dir.join(crate::lab::files::KUBECONFIG);
    let healthy = checks.iter().all(|c| c.ok);
    ctx.out.result(&super::health::table(checks));
    ctx.out.result(&format!(
        "\nlab {} is {} after {}\n  endpoint    {}\n  kubeconfig  {}\n\n  export KUBECONFIG={}\n  kubectl get nodes -o wide",
        record.name(),
        if healthy { "up and healthy" } else { "up but NOT healthy" },
        format_duration(started.elapsed()),
        record.endpoint.url(),
        ctx.dir.shown().join(crate::lab::files::KUBECONFIG).display(),
        shell_quote(&kubeconfig_path.display().to_string()),
    ));
}

pub fn run(ctx: &Context<'_>, flags: &Flags, options: &UpOptions) -> Result<()> {
    let started = Instant::now();
    let planned = plan_lab(ctx, flags)?;
    // Other inputs than the lab's: refused once a machine exists; until then the lab is
    // rendered again with them (as `render` does).
    if !planned.changes.is_empty() && !ctx.dir.created_machines().is_empty() {
        return Err(InputError::LabChanged {
            dir: ctx.dir.shown().display().to_string(),
            changes: describe_changes(&planned.changes),
        }
        .into());
    }
    for w in &planned.topology.warnings {
        ctx.out.warn(w);
    }
    if options.dry_run {
        ctx.out.result(&plan::table(&planned.topology));
        ctx.out.result("");
        return dry_run(ctx, &planned);
    }
    served_subnet(ctx, &planned)?;
    prerequisites(ctx, &planned)?;
    // Planned again and recorded under the host-wide lock: two labs started at once never
    // take the same addresses (`host_addresses`).
    let planned = crate::lab::host_addresses::with_lock(ctx.env, || {
        let planned = plan_lab(ctx, flags)?;
        render::write_lab(ctx, &planned)?;
        crate::lab::host_addresses::record(
            ctx.env,
            ctx.dir.absolute(),
            planned.topology.name.as_str(),
            planned
                .topology
                .nodes
                .iter()
                .map(|n| n.address)
                .chain(std::iter::once(planned.topology.endpoint.address))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        )?;
        Ok(planned)
    })?;
    if options.summary {
        ctx.out.info(&plan::table(&planned.topology));
        ctx.out.info("");
    }
    let record = ctx.record()?;
    check_interrupted()?;

    let progress = Progress::new(&ctx.out);
    // Vagrant's machines and Tart's VMs and images, asked at once.
    let tart = Tart {
        path: ctx.tools.get(Tool::Tart)?,
        env: ctx.env,
        out: &ctx.out,
    };
    let vagrant = ctx.vagrant()?;
    let (states, listed) = std::thread::scope(|s| {
        let listed = s.spawn(|| tart.list());
        let states = vagrant.status();
        (states, listed.join().expect("tart list does not panic"))
    });
    let (states, listed) = (states?, listed?);
    preflight(ctx, &record, &states, &listed)?;
    let nodes: Vec<&Node> = record.nodes.iter().collect();
    let all_running = nodes
        .iter()
        .all(|n| states.get(&n.name) == Some(&MachineState::Running));
    if !all_running {
        pull_image(ctx, &progress, &record.inputs.image, Some(&listed))?;
    }
    // Recorded before Vagrant clones them: whatever happens next, destroy finds them.
    crate::lab::registry::claim(
        ctx.env,
        ctx.dir.absolute(),
        record.name(),
        &record
            .nodes
            .iter()
            .map(|n| record.vm_name(n))
            .collect::<Vec<_>>(),
    )?;
    // Before anything boots: no VM's first lease may be a planned address of this lab.
    crate::workflow::assign::reserve(ctx, &record)?;
    // Every machine at once, the load balancer too: it is needed only by `k0sctl apply`, and
    // booting it first cost a whole VM boot (benches/up_parallel.rs).
    let settled = |node: &Node| record.assigned.contains_key(&node.name);
    let booted = machines_up(ctx, &progress, &nodes, &states, &settled, RESUME_HINT)?;
    check_interrupted()?;
    let record = crate::workflow::assign::planned_addresses(ctx, &progress, &record)?;
    check_interrupted()?;

    let config = ctx.dir.join(K0SCTL_YAML);
    let k0sctl = K0sctl {
        path: ctx.tools.get(Tool::K0sctl)?,
        config: &config,
        known_hosts: &ctx.dir.join(crate::lab::files::KNOWN_HOSTS),
        env: ctx.env,
        out: &ctx.out,
    };
    // A lab whose machines were all running and whose k0sctl.yaml was applied as it is now
    // needs no apply when it is healthy.
    let mut checks = None;
    if booted == 0 && already_applied(ctx) && options.restore_from.is_none() {
        let now = super::health::check(ctx, &record, Duration::ZERO)?;
        if now.iter().all(|c| c.ok) {
            ctx.out
                .info("the lab is already applied and healthy: nothing to do");
            checks = Some(now);
        }
    }
    let checks = match checks {
        Some(c) => c,
        None => {
            apply_and_write_kubeconfig(
                ctx,
                &progress,
                &k0sctl,
                &record,
                options.restore_from.as_deref(),
            )?;
            super::health::check(ctx, &record, options.wait)?
        }
    };
    if options.summary {
        summary(ctx, &record, started, &checks);
    }
    super::health::verdict(&record, &checks)
}
