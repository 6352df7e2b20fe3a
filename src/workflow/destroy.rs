//! The destroy step: removes the machines of `lab.json` (not of the current environment) and
//! the files k0slab wrote, nothing else. Succeeds when the machines are already gone.

use std::collections::BTreeSet;
use std::fs;

use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::lab::files::VAGRANTFILE;
use crate::lab::record::LabRecord;
use crate::lab::registry;
use crate::tools::tart::{Tart, TartVm};
use crate::tools::Tool;
use crate::workflow::context::Context;
use crate::workflow::machines::on_created_machines;
use crate::workflow::render;

/// Puts the Vagrantfile back from `lab.json` if it was deleted: Vagrant needs it to destroy.
fn restore_vagrantfile(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    if ctx.dir.join(VAGRANTFILE).is_file() {
        return Ok(());
    }
    ctx.out
        .info("the Vagrantfile is missing: rendering it again from lab.json");
    render::write_lab(ctx, &record.planned()).map(|_| ())
}

fn tart<'c>(ctx: &'c Context<'_>) -> Option<Tart<'c>> {
    Some(Tart {
        path: ctx.tools.get(Tool::Tart).ok()?,
        env: ctx.env,
        out: &ctx.out,
    })
}

/// Stops (when running) and deletes Tart VM `vm`. `tart delete` refuses a running VM
/// (cirruslabs/tart Sources/tart/VMDirectory.swift lines 262-267).
fn delete_vm(ctx: &Context<'_>, tart: &Tart<'_>, vm: &TartVm) -> Result<()> {
    if vm.state == "running" {
        tart.stop_cmd(&vm.name).output(ctx.env, &ctx.out)?;
    }
    tart.delete_cmd(&vm.name).output(ctx.env, &ctx.out)?;
    Ok(())
}

/// Deletes the Tart VMs k0slab created for this lab directory that are still there after
/// `vagrant destroy` (e.g. `.vagrant` was removed, or a machine is missing from lab.json).
/// Never a VM only because it has a lab VM's name: it may be another lab's.
fn delete_leftovers(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    let registry = registry::load(ctx.env)?;
    let ours: Vec<String> = registry
        .of_lab(ctx.dir.absolute())
        .into_iter()
        .map(|(vm, _)| vm)
        .collect();
    let Some(tart) = tart(ctx) else {
        return Ok(());
    };
    for vm in tart.list()? {
        if ours.contains(&vm.name) {
            delete_vm(ctx, &tart, &vm)?;
            ctx.out.info(&format!(
                "deleted Tart VM {} that Vagrant no longer tracked",
                vm.name
            ));
        } else if record.nodes.iter().any(|n| record.vm_name(n) == vm.name) {
            ctx.out.warn(&format!(
                "Tart VM {} has a name of this lab, but k0slab did not create it for this lab \
                 ({}): left alone. If it is this lab's, `tart delete {}`",
                vm.name,
                registry.owner(&vm.name).map_or_else(
                    || "no record of it".to_string(),
                    |o| format!("it belongs to lab {} in {}", o.lab, o.lab_dir.display())
                ),
                vm.name
            ));
        }
    }
    registry::forget(ctx.env, &ours)
}

/// `destroy` when `lab.json` is gone or unreadable: the lab's VMs are still found from the
/// record of the VMs k0slab created for this directory and from `.vagrant/machines`; they are
/// deleted with their addresses. The lab's other files are kept (without lab.json k0slab
/// cannot tell which it wrote).
fn destroy_without_record(ctx: &Context<'_>, unreadable: Option<Error>) -> Result<()> {
    let registry = registry::load(ctx.env)?;
    let mut owned = registry.of_lab(ctx.dir.absolute());
    for machine_vm in ctx.dir.tracked_vms() {
        if !owned.iter().any(|(vm, _)| *vm == machine_vm) {
            let owner = registry.owner(&machine_vm);
            // Vagrant in this directory created it, unless k0slab recorded it for another lab.
            if owner.is_none() {
                owned.push((
                    machine_vm,
                    registry::Owner {
                        lab: String::new(),
                        lab_dir: registry::canonical(ctx.dir.absolute()),
                    },
                ));
            }
        }
    }
    let about = match &unreadable {
        Some(Error::DamagedRecord { reason, .. }) => format!(
            "lab.json in {} is damaged ({reason})",
            ctx.dir.shown().display()
        ),
        Some(e) => format!(
            "lab.json in {} is unreadable ({e})",
            ctx.dir.shown().display()
        ),
        None => format!("there is no lab.json in {}", ctx.dir.shown().display()),
    };
    let existing: Vec<TartVm> = match tart(ctx) {
        Some(tart) if !owned.is_empty() => tart.list()?,
        _ => Vec::new(),
    };
    let present: Vec<&TartVm> = existing
        .iter()
        .filter(|vm| owned.iter().any(|(name, _)| *name == vm.name))
        .collect();
    if present.is_empty() {
        registry::forget(
            ctx.env,
            &owned.into_iter().map(|(vm, _)| vm).collect::<Vec<_>>(),
        )?;
        ctx.out.info(&format!("{about}: nothing to destroy"));
        if unreadable.is_some() {
            kept_without_record(ctx, true);
        }
        return Ok(());
    }
    ctx.out.info(&format!(
        "{about}; k0slab created these VMs for it: {}",
        present
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let tart = tart(ctx).expect("tart listed the VMs");
    let mut macs = Vec::new();
    for vm in &present {
        if let Ok(mac) =
            crate::tools::tart::mac_of(ctx.env, &vm.name, str::parse::<crate::network::Mac>)
        {
            macs.push(mac);
        }
        delete_vm(ctx, &tart, vm)?;
        ctx.out.info(&format!("deleted Tart VM {}", vm.name));
    }
    let labs: BTreeSet<&str> = owned
        .iter()
        .map(|(_, o)| o.lab.as_str())
        .filter(|l| !l.is_empty())
        .collect();
    for lab in labs {
        match crate::inputs::LabName::try_from(lab.to_string()) {
            Ok(lab) => crate::workflow::assign::release_addresses(ctx, &lab, macs.clone())?,
            Err(_) => ctx.out.warn(&format!(
                "the record names lab {lab:?}, which is no lab name: its bootptab lines are left"
            )),
        }
    }
    registry::forget(
        ctx.env,
        &owned.into_iter().map(|(vm, _)| vm).collect::<Vec<_>>(),
    )?;
    crate::lab::host_addresses::forget(ctx.env, ctx.dir.absolute())?;
    let vagrant_state = ctx.dir.join(crate::lab::files::VAGRANT_DIR);
    if vagrant_state.is_dir() {
        fs::remove_dir_all(&vagrant_state).map_err(|e| Error::io("removing", &vagrant_state, e))?;
    }
    kept_without_record(ctx, unreadable.is_some());
    Ok(())
}

/// Says what is left in a lab directory whose record and its copy are both gone or damaged
/// (a lab of k0slab 0.1.0, which kept no copy), and what to do with it.
fn kept_without_record(ctx: &Context<'_>, damaged: bool) {
    let left = fs::read_dir(ctx.dir.absolute()).map_or(0, |d| d.flatten().count());
    if left == 0 {
        return;
    }
    let dir = ctx.dir.shown().display();
    ctx.out.info(&format!(
        "{} and k0slab has no readable copy of it (a lab made by k0slab 0.1.0 has none), so \
         k0slab cannot tell which files in {dir} it wrote: they are kept. Look through {dir} \
         and remove it yourself once it holds nothing of yours (rm -r {dir}){}",
        if damaged {
            "lab.json is damaged"
        } else {
            "there is no lab.json"
        },
        if damaged {
            "; until then the other commands refuse the damaged lab.json"
        } else {
            ""
        }
    ));
}

/// Takes the lab's cluster, user and context out of the kubeconfigs `kubeconfig --merge` put
/// them in: only the entries k0slab wrote for this lab (see the doc of `kubeconfig`), and the
/// context current before the merge becomes current again. The machines are gone by now, so a
/// kubeconfig that cannot be read or written does not fail `destroy`: a warning names the file
/// and the entries left in it, as it does for entries with the lab's names that are kept.
fn remove_merged_contexts(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    let lab_file = ctx.dir.join(crate::lab::files::KUBECONFIG);
    let lab_kubeconfig = fs::read_to_string(&lab_file).unwrap_or_default();
    let dir = kubeconfig::canonical_dir(ctx.dir.absolute());
    let lab = kubeconfig::Lab {
        name: record.name(),
        dir: &dir,
        kubeconfig: &lab_kubeconfig,
    };
    for path in &record.merged_into {
        // The lab's own kubeconfig (merged into by an earlier k0slab) goes with the lab's files.
        if kubeconfig::same_file(path, &lab_file) {
            continue;
        }
        let removed = match kubeconfig::remove_from(path, &lab) {
            Ok(Some(removed)) => removed,
            Ok(None) => continue,
            Err(e) => {
                ctx.out.warn(&format!(
                    "could not take lab {} out of {} ({e}): {} may still be in it; remove \
                     them with kubectl config delete-context, delete-cluster and delete-user",
                    record.name(),
                    path.display(),
                    kubeconfig::and_list(&kubeconfig::lab_entries(record.name()))
                ));
                continue;
            }
        };
        if let Some(edited) = &removed.edited {
            let current = match &removed.removal.current {
                kubeconfig::Current::Untouched => String::new(),
                kubeconfig::Current::Restored(c) => format!("; current context: {c}"),
                kubeconfig::Current::Unset => "; no current context".to_string(),
            };
            ctx.out.info(&format!(
                "removed {} from {}{}{current}",
                kubeconfig::and_list(&removed.removal.removed),
                path.display(),
                edited
                    .backup
                    .as_ref()
                    .map(|b| format!(" (backup: {})", b.display()))
                    .unwrap_or_default()
            ));
        }
        for (entry, reason) in &removed.removal.kept {
            ctx.out
                .warn(&format!("kept {entry} in {}: {reason}", path.display()));
        }
    }
    Ok(())
}

/// Removes what k0slab wrote into the lab directory ([`LabDir::remove_lab_files`]) and says
/// what it kept.
fn remove_files(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    let removed = ctx.dir.remove_lab_files(record)?;
    for name in &removed.not_in_dir {
        ctx.out.warn(&format!(
            "lab.json lists {name:?}, which is not a file of the lab directory: left alone"
        ));
    }
    let (kept, left) = (&removed.kept, &removed.left);
    if left.is_empty() {
        return Ok(());
    }
    let changed: Vec<&str> = kept.iter().map(String::as_str).collect();
    let others: Vec<&String> = left
        .iter()
        .filter(|l| !kept.iter().any(|k| k.starts_with(&format!("{l} "))))
        .filter(|l| *l != crate::lab::files::BACKUPS)
        .collect();
    let mut lines = Vec::new();
    if left.iter().any(|l| l == crate::lab::files::BACKUPS) {
        lines.push(format!(
            "kept {}/ (the cluster's backups, for `k0slab restore`)",
            crate::lab::files::BACKUPS
        ));
    }
    if !changed.is_empty() {
        lines.push(format!("kept {}", changed.join(", ")));
    }
    if !others.is_empty() {
        lines.push(format!(
            "kept {}: k0slab did not create {}",
            others
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if others.len() == 1 { "it" } else { "them" }
        ));
    }
    ctx.out.info(&format!(
        "{} in {}",
        lines.join("; "),
        ctx.dir.shown().display()
    ));
    Ok(())
}

/// When `lab.json` is gone or damaged: k0slab's copy of it, put back as `lab.json` first (so
/// that a destroy that stops half way can be run again like any other), if there is one. Not
/// for a `lab.json` of another k0slab version, which this k0slab cannot judge.
fn from_copy(ctx: &Context<'_>, problem: Option<&Error>) -> Result<Option<LabRecord>> {
    if matches!(problem, Some(Error::LabFile { .. })) {
        return Ok(None);
    }
    let Some(copy) = ctx.dir.read_copy() else {
        return Ok(None);
    };
    let about = match problem {
        Some(Error::DamagedRecord { reason, .. }) => format!("is damaged ({reason})"),
        Some(e) => format!("cannot be read ({e})"),
        None => "is missing".to_string(),
    };
    ctx.out.info(&format!(
        "{} {about}: k0slab put it back from its copy ({}) and destroys the lab it describes",
        ctx.dir.shown().join(crate::lab::files::LAB_JSON).display(),
        crate::lab::files::LAB_JSON_COPY
    ));
    ctx.dir.write_record(&copy)?;
    Ok(Some(copy))
}

pub fn run(ctx: &Context<'_>) -> Result<()> {
    let record = match ctx.dir.read_record() {
        Ok(Some(record)) => record,
        Ok(None) => match from_copy(ctx, None)? {
            Some(record) => record,
            None => return destroy_without_record(ctx, None),
        },
        Err(e) => match from_copy(ctx, Some(&e))? {
            Some(record) => record,
            None => return destroy_without_record(ctx, Some(e)),
        },
    };
    ctx.tools.require(&[Tool::Vagrant])?;
    restore_vagrantfile(ctx, &record)?;
    on_created_machines(
        ctx,
        &record,
        "vagrant destroy",
        ("destroying", "destroyed"),
        |vagrant, machine| vagrant.destroy_cmd(machine),
        "Run `k0slab destroy` again: lab.json is kept until every machine is gone.",
    )?;
    delete_leftovers(ctx, &record)?;
    crate::workflow::assign::release(ctx, &record)?;
    crate::lab::host_addresses::forget(ctx.env, ctx.dir.absolute())?;
    remove_merged_contexts(ctx, &record)?;
    remove_files(ctx, &record)?;
    ctx.out.info(&format!(
        "destroyed lab {} ({} machines) and removed its files from {}",
        record.name(),
        record.nodes.len(),
        ctx.dir.shown().display()
    ));
    Ok(())
}
