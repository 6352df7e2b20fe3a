//! One module per command. Shared here: finding the lab directory and resolving a lab's
//! inputs and topology (pure, before anything is written).

pub mod backup;
pub mod destroy;
pub mod doctor;
pub mod drill;
pub mod halt;
pub mod health;
pub mod image;
pub mod kairos;
pub mod kubeconfig;
pub mod plan;
pub mod plugin;
pub mod render;
pub mod ssh;
pub mod status;
pub mod up;
pub mod validate;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::environment::Environment;
use crate::error::{Error, InputError, Result};
use crate::inputs::{self, Change, Flags, LabName};
use crate::lab::dir::LabDir;
use crate::lab::files::DEFAULT_DIR;
use crate::lab::record::LabRecord;
use crate::lab::record::Planned;
use crate::output::Output;
use crate::progress::{Bar, Progress};
use crate::tools::vagrant::Vagrant;
use crate::tools::{Tool, Tools};
use crate::topology::{Node, Topology};

/// What every command gets.
pub struct Context<'a> {
    pub env: &'a Environment,
    pub out: Output,
    pub dir: LabDir,
    pub tools: Tools,
}

impl Context<'_> {
    /// Vagrant in the lab directory.
    pub fn vagrant(&self) -> Result<Vagrant<'_>> {
        Ok(Vagrant {
            path: self.tools.get(Tool::Vagrant)?,
            lab_dir: self.dir.absolute(),
            env: self.env,
            out: &self.out,
        })
    }

    /// The lab's record; an error when the directory holds no lab.
    pub fn record(&self) -> Result<LabRecord> {
        self.dir.read_record()?.ok_or_else(|| {
            Error::Step(format!(
                "there is no lab in {} (no lab.json): create one with `k0slab up`",
                self.dir.shown().display()
            ))
        })
    }

    /// How often to poll while waiting: `K0SLAB_POLL_INTERVAL` (e.g. `500ms`), else 5s.
    /// [`crate::run`] refuses a bad value before the command starts.
    pub fn poll_interval(&self) -> Duration {
        inputs::poll_interval(self.env).expect("K0SLAB_POLL_INTERVAL is checked in k0slab::run")
    }

    /// How many machines are worked on at once: `K0SLAB_CONCURRENCY`, else 10.
    /// [`crate::run`] refuses a bad value before the command starts.
    pub fn concurrency(&self) -> usize {
        inputs::concurrency(self.env).expect("K0SLAB_CONCURRENCY is checked in k0slab::run")
    }
}

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

/// The lab directory: `--dir`, else K0SLAB_DIR, else `lab`.
pub fn lab_dir(flag: Option<PathBuf>, env: &Environment) -> Result<LabDir> {
    let given = match flag {
        Some(p) => Some(inputs::Raw {
            value: p.display().to_string(),
            origin: inputs::Origin::Flag("--dir"),
        }),
        None => inputs::lookup_env(env, "K0SLAB_DIR")?,
    };
    let Some(raw) = given else {
        return LabDir::new(DEFAULT_DIR);
    };
    let path = PathBuf::from(&raw.value);
    let problem = if raw.value.is_empty() {
        Some("a directory path")
    } else if path.exists() && !path.is_dir() {
        Some("a directory, but this path is a file")
    } else {
        None
    };
    if let Some(allowed) = problem {
        return Err(InputError::Invalid {
            origin: raw.origin.to_string(),
            value: raw.value,
            allowed: allowed.into(),
        }
        .into());
    }
    LabDir::new(path)
}

/// Resolves inputs (flags > environment > existing lab > defaults) and the topology.
pub fn plan_lab(ctx: &Context<'_>, flags: &Flags) -> Result<Planned> {
    let record = ctx.dir.read_record()?;
    let default_name = LabName::for_directory(ctx.dir.absolute());
    let lab = record.as_ref().map(|r| &r.inputs);
    let mut resolved = inputs::resolve(flags, ctx.env, lab, &default_name)?;
    // A new lab on bootpd's network with no subnet chosen follows the subnet bootpd serves
    // (vmnet moves to 192.168.65.0/24 when another program holds bridge100 first).
    let mut followed = None;
    if lab.is_none()
        && resolved.inputs.network.served_by_bootpd()
        && !inputs::is_given(inputs::Key::Subnet, flags, ctx.env)?
    {
        let served = crate::network::dhcp::Files::from_env(ctx.env).served();
        if let Some(s) = served
            .as_deref()
            .and_then(|s| crate::network::bootpd_plist::follow(s, resolved.inputs.subnet))
            .filter(|s| s.net != resolved.inputs.subnet)
        {
            resolved = inputs::resolve_with_subnet(flags, ctx.env, lab, &default_name, s.net)?;
            followed = Some(s);
        }
    }
    // The lab's own addresses stay; a new machine avoids what other labs on this host hold.
    let hosts = crate::topology::Hosts {
        kept: record
            .as_ref()
            .map(|r| crate::topology::Hosts::kept_from(&r.nodes, &r.endpoint))
            .unwrap_or_default(),
        held: crate::lab::host_addresses::held_by_others(
            ctx.env,
            ctx.dir.absolute(),
            resolved.inputs.name.as_str(),
        )?,
    };
    let mut topology = Topology::resolve_on(&resolved.inputs, &hosts)?;
    if let Some(s) = followed {
        topology.warnings.push(format!(
            "bootpd serves {s} on this host, not {}: the lab uses {} (set {} to choose)",
            inputs::DEFAULT_SUBNET,
            s.net,
            inputs::Key::Subnet.env_name()
        ));
    }
    if topology.endpoint.kind == crate::topology::EndpointKind::Cplb
        && topology.network == crate::network::NetworkMode::Nat
    {
        let proven = crate::network::probe::saved(ctx.env).is_some_and(|r| {
            r.works(
                &crate::network::NetworkMode::Nat,
                crate::network::probe::Check::VipMoved,
            ) && r.works(
                &crate::network::NetworkMode::Nat,
                crate::network::probe::Check::VmToVm,
            )
        });
        if !proven {
            topology.warnings.push(
                "K0SLAB_ENDPOINT=cplb on K0SLAB_NETWORK=nat: on macOS 13+ VMs on Tart's shared \
                 network do not reach each other, and macOS filters ARP replies for a VIP \
                 (canonical/multipass#1298); `k0slab doctor --network` has not shown that both \
                 work on this host. Run it, or use K0SLAB_NETWORK=bridged:<interface>"
                    .to_string(),
            );
        }
    }
    Ok(Planned {
        inputs: resolved.inputs,
        topology,
        changes: resolved.changes,
        record,
    })
}

/// The list of differences, one per line, for messages.
pub fn describe_changes(changes: &[Change]) -> String {
    changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
