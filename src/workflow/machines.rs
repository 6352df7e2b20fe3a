//! Work on every machine of a lab at once: one thread and one progress bar per machine (at
//! most `K0SLAB_CONCURRENCY` at a time), failures gathered into one error naming them.

use std::sync::Mutex;

use super::context::Context;
use crate::error::{Error, Result};
use crate::lab::record::LabRecord;
use crate::progress::{Bar, Progress};
use crate::tools::vagrant::Vagrant;
use crate::topology::Node;

/// Runs `work` for every machine in parallel (at most `ctx.concurrency()` at once), each with
/// its own progress bar; returns every machine's outcome in the order given.
pub fn per_machine<'n, T: Send>(
    ctx: &Context<'_>,
    progress: &Progress,
    nodes: &[&'n Node],
    work: impl Fn(&'n Node, &Bar) -> Result<T> + Sync,
) -> Vec<(&'n Node, Result<T>)> {
    let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
    let bars: Vec<Bar> = nodes
        .iter()
        .map(|n| {
            let bar = progress.bar(&n.name, width, crate::tools::vagrant::UpStage::COUNT);
            bar.message("queued");
            bar
        })
        .collect();
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Result<T>>>> =
        Mutex::new((0..nodes.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..ctx.concurrency().min(nodes.len()) {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("queue lock");
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(node) = nodes.get(i) else { break };
                let result = work(node, &bars[i]);
                results.lock().expect("results lock")[i] = Some(result);
            });
        }
    });
    nodes
        .iter()
        .copied()
        .zip(
            results
                .into_inner()
                .expect("results lock")
                .into_iter()
                .map(|r| r.expect("every machine was worked on")),
        )
        .collect()
}

/// Runs the Vagrant command `command` builds on every machine of the lab that exists, in
/// parallel; machines never created are skipped (vagrant-tart refuses to destroy or halt
/// them). `doing` and `done` label the progress bars; failures become one error.
pub fn on_created_machines(
    ctx: &Context<'_>,
    record: &LabRecord,
    step: &str,
    (doing, done): (&str, &str),
    command: impl Fn(&Vagrant<'_>, &str) -> crate::tools::process::Cmd + Sync,
    resume_hint: &str,
) -> Result<()> {
    let vagrant = ctx.vagrant()?;
    let states = vagrant.status()?;
    let progress = Progress::new(&ctx.out);
    let nodes: Vec<&Node> = record.nodes.iter().collect();
    let results = per_machine(ctx, &progress, &nodes, |node, bar| {
        if matches!(
            states.get(&node.name),
            None | Some(crate::tools::vagrant::MachineState::NotCreated)
        ) {
            bar.done("not created");
            return Ok(());
        }
        bar.message(doing);
        let result = command(&vagrant, &node.name).output(ctx.env, &ctx.out);
        match &result {
            Ok(_) => bar.done(done),
            Err(_) => bar.failed(&format!("{step} failed")),
        }
        result.map(|_| ())
    });
    machine_failures(ctx, step, results, resume_hint).map(|_| ())
}

/// Prints each failure in full and turns them into one error naming the machines.
pub fn machine_failures<T>(
    ctx: &Context<'_>,
    step: &str,
    results: Vec<(&Node, Result<T>)>,
    resume_hint: &str,
) -> Result<Vec<(String, T)>> {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (node, result) in results {
        match result {
            Ok(v) => ok.push((node.name.clone(), v)),
            Err(Error::Interrupted) => return Err(Error::Interrupted),
            Err(e) => {
                ctx.out
                    .problem(&format!("{step} failed for {}: {e}", node.name));
                failed.push(node.name.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(ok)
    } else {
        Err(Error::Step(format!(
            "{step} failed for {} of {} machine(s): {}. {resume_hint}",
            failed.len(),
            failed.len() + ok.len(),
            failed.join(", ")
        )))
    }
}
