//! `k0slab up`: prerequisites → render → every machine up in parallel → k0sctl apply →
//! kubeconfig → health. Idempotent: running machines are left alone, and a lab that is
//! already applied and healthy is not applied again. A failed run resumes where it stopped.

use std::fs;
use std::time::{Duration, Instant};

use super::{
    describe_changes, machine_failures, per_machine, plan, plan_lab, render, Context, Planned,
};
use crate::error::{Error, InputError, Result};
use crate::fsutil::write_atomic;
use crate::health::Check;
use crate::host;
use crate::inputs::Flags;
use crate::k0sctl::K0sctl;
use crate::kubeconfig;
use crate::lab_json::LabRecord;
use crate::process::{check_interrupted, shell_quote};
use crate::progress::{format_duration, Progress};
use crate::render::{K0SCTL_YAML, MODE_PRIVATE};
use crate::tart::Tart;
use crate::tools::Tool;
use crate::topology::{Node, NodeKind};
use crate::vagrant::{MachineState, UpStage};

/// A copy of the k0sctl.yaml that was last applied successfully.
pub const APPLIED_MARKER: &str = ".k0sctl-applied.yaml";

/// Options of `up`.
pub struct UpOptions {
    pub dry_run: bool,
    /// How long to wait for the lab to become healthy at the end.
    pub wait: Duration,
}

/// The shell command that checks, inside the guest, that the static address is configured.
fn address_check(node: &Node) -> String {
    format!(
        "ip -4 -o addr show | grep -Fq {}",
        shell_quote(&format!(" {}/", node.address))
    )
}

fn prerequisites(ctx: &Context<'_>, planned: &Planned) -> Result<()> {
    ctx.tools
        .require(&[Tool::Tart, Tool::Vagrant, Tool::K0sctl, Tool::Kubectl])?;
    let vagrant = ctx.vagrant()?;
    crate::tools::check_version(Tool::Vagrant, &vagrant.version()?)?;
    let k0sctl_version = K0sctl::version(ctx.tools.get(Tool::K0sctl)?, ctx.env, &ctx.out)?;
    crate::tools::check_version(Tool::K0sctl, &k0sctl_version)?;
    let plugins = vagrant.plugins()?;
    if !plugins
        .lines()
        .any(|l| l.trim_start().starts_with(super::plugin::PLUGIN))
    {
        return Err(Error::ToolMissing {
            tool: "vagrant-tart",
            reason: "Vagrant has no vagrant-tart plugin".into(),
            hint: "vagrant plugin install vagrant-tart",
        });
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
    let vagrant = crate::vagrant::Vagrant {
        path: &vagrant_path,
        lab_dir: ctx.dir.absolute(),
        env: ctx.env,
        out: &ctx.out,
    };
    let config = ctx.dir.join(K0SCTL_YAML);
    let k0sctl = K0sctl {
        path: &k0sctl_path,
        config: &config,
        env: ctx.env,
        out: &ctx.out,
    };
    lines.push(format!(
        "  {}    (unless the image is cached)",
        tart.pull_cmd(&t.image).command_line()
    ));
    let lb: Vec<&Node> = t
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::LoadBalancer)
        .collect();
    for n in &lb {
        lines.push(format!(
            "  {}    (first)",
            vagrant.up_cmd(&n.name).command_line()
        ));
    }
    lines.push(format!(
        "  in parallel, in {dir}/ (machines already running are skipped):"
    ));
    for n in t.nodes.iter().filter(|n| n.kind != NodeKind::LoadBalancer) {
        lines.push(format!("    {}", vagrant.up_cmd(&n.name).command_line()));
    }
    lines.push("  then, per machine, check the static address inside the guest:".into());
    for n in &t.nodes {
        lines.push(format!(
            "    {}",
            vagrant
                .ssh_cmd(&n.name, Some(&address_check(n)))
                .command_line()
        ));
    }
    lines.push(format!("  {}", k0sctl.apply_cmd().command_line()));
    lines.push(format!(
        "  {} > {dir}/kubeconfig",
        k0sctl.kubeconfig_cmd(&t.endpoint.url()).command_line()
    ));
    lines.push(format!("  k0slab --dir {dir} health    (kubectl get --raw /readyz, nodes, kube-system pods; sudo k0s etcd member-list on a controller)"));
    ctx.out.result(&lines.join("\n"));
    if let Err(e) = ctx
        .tools
        .require(&[Tool::Tart, Tool::Vagrant, Tool::K0sctl, Tool::Kubectl])
    {
        ctx.out.warn(&format!("a real run would stop here: {e}"));
    }
    Ok(())
}

/// Brings `nodes` up in parallel; `states` says which are running already.
fn machines_up(
    ctx: &Context<'_>,
    progress: &Progress,
    nodes: &[&Node],
    states: &std::collections::BTreeMap<String, MachineState>,
) -> Result<usize> {
    let vagrant = ctx.vagrant()?;
    let results = per_machine(ctx, progress, nodes, |node, bar| {
        if states.get(&node.name) == Some(&MachineState::Running) {
            bar.done(&format!("already running at {}", node.address));
            return Ok(false);
        }
        let outcome = (|| -> Result<bool> {
            vagrant.up(&node.name, |stage, message| {
                bar.step(stage as u64, &format!("{}: {message}", stage.label()));
            })?;
            bar.step(
                UpStage::CheckingAddress as u64,
                UpStage::CheckingAddress.label(),
            );
            vagrant
                .ssh_output(&node.name, &address_check(node))
                .map_err(|e| {
                    Error::Step(format!(
                        "{} is running but its static address {} is not configured in the guest \
                         (did the k0slab-guest-setup provisioner run? try `vagrant provision {}` \
                         in {}): {e}",
                        node.name,
                        node.address,
                        node.name,
                        ctx.dir.shown().display()
                    ))
                })?;
            Ok(true)
        })();
        match &outcome {
            Ok(_) => bar.done(&format!("running at {}", node.address)),
            Err(e) => bar.failed(&crate::output::first_line(&e.to_string())),
        }
        outcome
    });
    let booted = machine_failures(
        ctx,
        "vagrant up",
        results,
        "Fix the cause and run `k0slab up` again: machines that are up are kept.",
    )?;
    Ok(booted.iter().filter(|(_, b)| *b).count())
}

fn pull_image(ctx: &Context<'_>, progress: &Progress, image: &str) -> Result<()> {
    let tart = Tart {
        path: ctx.tools.get(Tool::Tart)?,
        env: ctx.env,
        out: &ctx.out,
    };
    if tart.has_image(image)? {
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

fn apply(ctx: &Context<'_>, progress: &Progress, k0sctl: &K0sctl<'_>) -> Result<()> {
    let spinner = progress.spinner("k0sctl");
    spinner.message("k0sctl apply");
    match k0sctl.apply(|phase| spinner.message(phase)) {
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
fn already_applied(ctx: &Context<'_>) -> bool {
    match (
        fs::read(ctx.dir.join(APPLIED_MARKER)),
        fs::read(ctx.dir.join(K0SCTL_YAML)),
    ) {
        (Ok(a), Ok(b)) => a == b && ctx.dir.join(kubeconfig::FILE_NAME).is_file(),
        _ => false,
    }
}

fn write_kubeconfig(ctx: &Context<'_>, k0sctl: &K0sctl<'_>, record: &LabRecord) -> Result<()> {
    let raw = k0sctl.kubeconfig(&record.endpoint.url())?;
    let normalized = kubeconfig::normalize(&raw, record.name())?;
    write_atomic(
        &ctx.dir.join(kubeconfig::FILE_NAME),
        normalized.as_bytes(),
        MODE_PRIVATE,
    )?;
    Ok(())
}

fn summary(ctx: &Context<'_>, record: &LabRecord, started: Instant, checks: &[Check]) {
    let kubeconfig_path = ctx.dir.join(kubeconfig::FILE_NAME);
    let healthy = checks.iter().all(|c| c.ok);
    ctx.out.result(&super::health::table(checks));
    ctx.out.result(&format!(
        "\nlab {} is {} after {}\n  endpoint    {}\n  kubeconfig  {}\n\n  export KUBECONFIG={}\n  kubectl get nodes -o wide",
        record.name(),
        if healthy { "up and healthy" } else { "up but NOT healthy" },
        format_duration(started.elapsed()),
        record.endpoint.url(),
        ctx.dir.shown().join(kubeconfig::FILE_NAME).display(),
        shell_quote(&kubeconfig_path.display().to_string()),
    ));
}

pub fn run(ctx: &Context<'_>, flags: &Flags, options: &UpOptions) -> Result<()> {
    let started = Instant::now();
    let planned = plan_lab(ctx, flags)?;
    if planned.record.is_some() && !planned.changes.is_empty() {
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
    prerequisites(ctx, &planned)?;
    ctx.out.info(&plan::table(&planned.topology));
    ctx.out.info("");

    render::write_lab(ctx, &planned)?;
    let record = ctx.record()?;
    check_interrupted()?;

    let progress = Progress::new(&ctx.out);
    let states = ctx.vagrant()?.status()?;
    let nodes: Vec<&Node> = record.nodes.iter().collect();
    let all_running = nodes
        .iter()
        .all(|n| states.get(&n.name) == Some(&MachineState::Running));
    if !all_running {
        pull_image(ctx, &progress, &record.inputs.image)?;
    }
    let (first, rest): (Vec<&Node>, Vec<&Node>) = nodes
        .iter()
        .copied()
        .partition(|n| n.kind == NodeKind::LoadBalancer);
    let mut booted = 0;
    if !first.is_empty() {
        booted += machines_up(ctx, &progress, &first, &states)?;
    }
    booted += machines_up(ctx, &progress, &rest, &states)?;
    check_interrupted()?;

    let config = ctx.dir.join(K0SCTL_YAML);
    let k0sctl = K0sctl {
        path: ctx.tools.get(Tool::K0sctl)?,
        config: &config,
        env: ctx.env,
        out: &ctx.out,
    };
    // A lab whose machines were all running and whose k0sctl.yaml was applied as it is now
    // needs no apply when it is healthy.
    let mut checks = None;
    if booted == 0 && already_applied(ctx) {
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
            apply(ctx, &progress, &k0sctl)?;
            write_kubeconfig(ctx, &k0sctl, &record)?;
            super::health::check(ctx, &record, options.wait)?
        }
    };
    summary(ctx, &record, started, &checks);
    super::health::verdict(&record, &checks)
}
