//! The boot step: the VM image pulled once, then every machine brought up at once.

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::tools::tart::Tart;
use crate::tools::vagrant::MachineState;
use crate::tools::Tool;
use crate::topology::Node;
use crate::workflow::context::Context;
use crate::workflow::machines::machine_failures;
use crate::workflow::machines::per_machine;

/// Brings `nodes` up in parallel. A machine that is running and `settled` (an earlier `up`
/// got past its guest setup and address) is left alone; a running machine that is not (an
/// `up` was interrupted while it booted) gets `vagrant up` again, which with vagrant-tart runs
/// the guest setup on a running VM (letiemble/vagrant-tart `lib/vagrant-tart/action.rb` lines
/// 190-197, `action/start_instance.rb` lines 21-25). Returns how many were booted; a failure
/// names the machines and ends with `resume_hint`.
pub fn machines_up(
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

/// Pulls `image` unless Tart has it: as `listed` says (what `tart list` printed just now),
/// else as Tart is asked.
pub fn pull_image(
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

/// The guest command that holds when KVM's device is there (`test -c`: a character device).
pub const KVM_CHECK: &str = "test -c /dev/kvm";

/// Checks that every nested machine's guest has `/dev/kvm` (what KubeVirt's device plugin
/// offers as `devices.kubevirt.io/kvm`, kubevirt `generic_device.go` lines 276-325): Tart's
/// `--nested` gave it nested virtualization. Each asked at once, 30 s at most.
pub fn check_kvm(ctx: &Context<'_>, nodes: &[&Node]) -> Result<()> {
    let nested: Vec<&&Node> = nodes.iter().filter(|n| n.nested).collect();
    if nested.is_empty() {
        return Ok(());
    }
    let vagrant = ctx.vagrant()?;
    let missing: Vec<String> = std::thread::scope(|s| {
        let asks: Vec<_> = nested
            .iter()
            .map(|n| {
                let vagrant = &vagrant;
                s.spawn(move || {
                    vagrant
                        .ssh_output_within(&n.name, KVM_CHECK, std::time::Duration::from_secs(30))
                        .is_err()
                        .then(|| n.name.clone())
                })
            })
            .collect();
        asks.into_iter()
            .filter_map(|a| a.join().expect("asking a guest does not panic"))
            .collect()
    });
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Step(format!(
        "no /dev/kvm in {}: Tart started them without nested virtualization, so KubeVirt \
         cannot run workload VMs there. Check `k0slab doctor`'s nested virtualization row; \
         the machines are kept.",
        missing.join(", ")
    )))
}
