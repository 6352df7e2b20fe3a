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
