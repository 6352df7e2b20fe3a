//! `k0slab destroy`: removes the machines of `lab.json` (not of the current environment) and
//! the files k0slab wrote, nothing else. Succeeds when the machines are already gone.

use std::collections::BTreeSet;
use std::fs;

use super::{on_created_machines, render, Context};
use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::lab_dir::GITIGNORE;
use crate::lab_json::LabRecord;
use crate::render::VAGRANTFILE;
use crate::tart::Tart;
use crate::tools::Tool;

/// Files k0slab may write after `render`, besides those `lab.json` lists.
const RUNTIME_FILES: [&str; 5] = [
    kubeconfig::FILE_NAME,
    super::up::APPLIED_MARKER,
    GITIGNORE,
    crate::render::KNOWN_HOSTS,
    crate::network::assign::STAGED,
];

/// Puts the Vagrantfile back from `lab.json` if it was deleted: Vagrant needs it to destroy.
fn restore_vagrantfile(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    if ctx.dir.join(VAGRANTFILE).is_file() {
        return Ok(());
    }
    ctx.out
        .info("the Vagrantfile is missing: rendering it again from lab.json");
    render::write_lab(ctx, &record.planned()).map(|_| ())
}

/// Deletes Tart VMs of this lab that Vagrant no longer tracks (e.g. `.vagrant` was removed).
fn delete_leftovers(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    let Ok(path) = ctx.tools.get(Tool::Tart) else {
        return Ok(());
    };
    let tart = Tart {
        path,
        env: ctx.env,
        out: &ctx.out,
    };
    let ours: BTreeSet<String> = record.nodes.iter().map(|n| record.vm_name(n)).collect();
    for vm in tart
        .list()?
        .into_iter()
        .filter(|vm| ours.contains(&vm.name))
    {
        // `tart delete` refuses a running VM (cirruslabs/tart Sources/tart/VMDirectory.swift
        // lines 262-267): stop it first.
        if vm.state == "running" {
            tart.stop_cmd(&vm.name).output(ctx.env, &ctx.out)?;
        }
        tart.delete_cmd(&vm.name).output(ctx.env, &ctx.out)?;
        ctx.out.info(&format!(
            "deleted Tart VM {} that Vagrant no longer tracked",
            vm.name
        ));
    }
    Ok(())
}

fn remove_merged_contexts(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    for path in &record.merged_into {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        if !kubeconfig::has_context(&text, record.name()) {
            continue;
        }
        let edited = kubeconfig::edit(path, |t| kubeconfig::remove(t, record.name()))?;
        ctx.out.info(&format!(
            "removed context {} from {}{}",
            record.name(),
            path.display(),
            edited
                .backup
                .map(|b| format!(" (backup: {})", b.display()))
                .unwrap_or_default()
        ));
    }
    Ok(())
}

fn remove_files(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    let names: BTreeSet<&str> = record
        .files
        .iter()
        .map(String::as_str)
        .chain(RUNTIME_FILES)
        .collect();
    // lab.json goes last: while it exists, `destroy` can be run again.
    for name in names.iter().filter(|n| **n != crate::lab_json::FILE_NAME) {
        remove_file(ctx, name)?;
    }
    // Vagrant's state of the lab's machines, and the manifests `kairos install` applied.
    for dir in [".vagrant", super::kairos::KAIROS_DIR] {
        let path = ctx.dir.join(dir);
        if path.is_dir() {
            fs::remove_dir_all(&path).map_err(|e| Error::io("removing", &path, e))?;
        }
    }
    remove_file(ctx, crate::lab_json::FILE_NAME)?;
    let left: Vec<String> = fs::read_dir(ctx.dir.absolute())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if left.is_empty() {
        fs::remove_dir(ctx.dir.absolute())
            .map_err(|e| Error::io("removing", ctx.dir.absolute(), e))?;
    } else {
        ctx.out.info(&format!(
            "kept {} in {}: k0slab did not create {}",
            left.join(", "),
            ctx.dir.shown().display(),
            if left.len() == 1 { "it" } else { "them" }
        ));
    }
    Ok(())
}

fn remove_file(ctx: &Context<'_>, name: &str) -> Result<()> {
    let path = ctx.dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

pub fn run(ctx: &Context<'_>) -> Result<()> {
    let Some(record) = ctx.dir.read_record()? else {
        ctx.out.info(&format!(
            "there is no lab in {}: nothing to destroy",
            ctx.dir.shown().display()
        ));
        return Ok(());
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
    crate::network::assign::release(ctx, &record)?;
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
