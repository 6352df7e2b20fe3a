//! `up`, step by step: [`resolve`](super::resolve) → [`preflight`](super::preflight) →
//! [`render`](super::render) → [`boot`](super::boot) → [`assign`](super::assign) →
//! [`apply`](super::apply) (with the kubeconfig) → [`health`](super::health). Idempotent:
//! running machines are left alone, and a lab that is already applied and healthy is not
//! applied again. A failed run resumes where it stopped.

use std::time::{Duration, Instant};

use super::apply::{already_applied, apply_and_write_kubeconfig};
use super::boot::{machines_up, pull_image};
use super::preflight::{preflight, prerequisites, served_subnet};
use crate::error::{InputError, Result};
use crate::health::Check;
use crate::inputs::Flags;
use crate::lab::record::LabRecord;
use crate::lab::record::Planned;
use crate::network::{self};
use crate::progress::{format_duration, Progress};
use crate::tools::process::{check_interrupted, shell_quote};
use crate::tools::tart::Tart;
use crate::tools::vagrant::MachineState;
use crate::tools::Tool;
use crate::topology::{Node, NodeKind};
use crate::workflow::context::Context;
use crate::workflow::render;
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
    let k0sctl = ctx.k0sctl_at(&k0sctl_path);
    lines.push(format!(
        "  {}    (unless the image is cached)",
        tart.pull_cmd(&t.image).command_line()
    ));
    if crate::workflow::cache::enabled(ctx) {
        let cache = crate::lab::cache::Cache::new(ctx.env);
        lines.push(match t.k0s_version.as_ref() {
            Some(v) => format!(
                "  while the machines boot: {} into {} (unless cached; checked against the \
                 release's {}), which k0sctl uploads",
                crate::release::Asset::ALL
                    .iter()
                    .map(|a| crate::release::url(v, &a.file_name(v)))
                    .collect::<Vec<_>>()
                    .join(" and "),
                cache.version_dir(v).display(),
                crate::release::SUMS
            ),
            None => format!(
                "  look up the newest stable k0s release ({}) and pin it in {dir}/lab.json; \
                 while the machines boot, download its binary and airgap bundle into {} \
                 (unless cached), which k0sctl uploads",
                crate::release::STABLE_URL,
                cache.root().display()
            ),
        });
    }
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
    for n in t.nodes.iter().filter(|n| n.nested) {
        lines.push(format!(
            "    {}    (nested virtualization: KVM's device is there)",
            vagrant
                .ssh_cmd(&n.name, Some(crate::workflow::boot::KVM_CHECK))
                .command_line()
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

fn summary(ctx: &Context<'_>, record: &LabRecord, started: Instant, checks: &[Check]) {
    let kubeconfig_path = ctx.dir.join(crate::lab::files::KUBECONFIG);
    let healthy = checks.iter().all(|c| c.ok);
    ctx.out.result(&crate::workflow::health::table(checks));
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
    let mut planned = plan_lab(ctx, flags)?;
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
        ctx.out.result(&planned.topology.table());
        ctx.out.result("");
        return dry_run(ctx, &planned);
    }
    served_subnet(ctx, &planned)?;
    prerequisites(ctx, &planned)?;
    // The lab's k0s release, pinned once (looked up now when K0S_VERSION is empty and the lab
    // has none yet), before anything is written.
    let cached = crate::workflow::cache::enabled(ctx);
    crate::workflow::cache::pin(ctx, &mut planned)?;
    let version = planned.topology.k0s_version.clone();
    // Planned again and recorded under the host-wide lock: two labs started at once never
    // take the same addresses (`host_addresses`).
    let planned = crate::lab::host_addresses::with_lock(ctx.env, || {
        let mut planned = plan_lab(ctx, flags)?;
        if let Some(v) = &version {
            crate::workflow::cache::set(&mut planned, v)?;
        }
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
        ctx.out.info(&planned.topology.table());
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
    // The k0s release's files come into the host's cache while the machines boot.
    let width = nodes
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(0)
        .max(10);
    let (booted, fetched) = std::thread::scope(|s| {
        let fetch = version.as_ref().filter(|_| cached).map(|v| {
            let progress = &progress;
            s.spawn(move || crate::workflow::cache::ensure(ctx, progress, v, width))
        });
        let booted = machines_up(ctx, &progress, &nodes, &states, &settled, RESUME_HINT);
        (
            booted,
            fetch.map(|f| f.join().expect("the cache fill does not panic")),
        )
    });
    let booted = booted?;
    if let Some(fetched) = fetched {
        let fetched = fetched.map_err(|e| match e {
            crate::error::Error::Step(m) => crate::error::Error::Step(format!(
                "{m}\nThe machines are kept: `k0slab up` goes on from here."
            )),
            e => e,
        })?;
        if fetched.downloaded > 0 {
            ctx.out.info(&format!(
                "k0s {} downloaded once into the host's cache ({}): later labs and re-ups \
                 take it from there",
                version.as_ref().map_or("", |v| v.as_str()),
                crate::output::bytes(fetched.downloaded)
            ));
        }
    }
    check_interrupted()?;
    let record = crate::workflow::assign::planned_addresses(ctx, &progress, &record)?;
    check_interrupted()?;
    crate::workflow::boot::check_kvm(ctx, &record.nodes.iter().collect::<Vec<_>>())?;

    let k0sctl = ctx.k0sctl()?;
    // A lab whose machines were all running and whose k0sctl.yaml was applied as it is now
    // needs no apply when it is healthy.
    let mut checks = None;
    if booted == 0 && already_applied(ctx) && options.restore_from.is_none() {
        let now = crate::workflow::health::check(ctx, &record, Duration::ZERO)?;
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
            crate::workflow::health::check(ctx, &record, options.wait)?
        }
    };
    if options.summary {
        summary(ctx, &record, started, &checks);
    }
    crate::workflow::health::verdict(&record, &checks)
}
