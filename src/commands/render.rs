//! `k0slab render`: write the lab files. All validation happens before the first write.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{describe_changes, plan_lab, Context, Planned};
use crate::error::{InputError, Result};
use crate::fsutil::Written;
use crate::inputs::Flags;
use crate::lab_dir::{new_secrets, GITIGNORE, GITIGNORE_CONTENTS};
use crate::network::Mac;
use crate::render::{self, RenderContext};

/// Renders and writes the lab; returns what was written. Refuses (exit 2) to change the
/// inputs of a lab whose machines exist, since that would orphan or mismatch VMs.
pub fn write_lab(ctx: &Context<'_>, planned: &Planned) -> Result<Vec<(String, Written)>> {
    let assigned = planned
        .record
        .as_ref()
        .map(|r| r.assigned.clone())
        .unwrap_or_default();
    write_lab_with(ctx, planned, &assigned, &BTreeMap::new())
}

/// [`write_lab`] with the assignments `up` made and the addresses Vagrant must use while it
/// moves machines to their planned addresses.
pub fn write_lab_with(
    ctx: &Context<'_>,
    planned: &Planned,
    assigned: &BTreeMap<String, Mac>,
    ssh_hosts: &BTreeMap<String, Ipv4Addr>,
) -> Result<Vec<(String, Written)>> {
    if !planned.changes.is_empty() {
        let machines = ctx.dir.created_machines();
        if !machines.is_empty() {
            return Err(InputError::LabChanged {
                dir: ctx.dir.shown().display().to_string(),
                changes: describe_changes(&planned.changes),
            }
            .into());
        }
        ctx.out.info(&format!(
            "no machines exist yet; re-rendering with new inputs:\n{}",
            describe_changes(&planned.changes)
        ));
    }
    let secrets = planned
        .record
        .as_ref()
        .map(|r| r.secrets.clone())
        .unwrap_or_else(new_secrets);
    let merged_into = planned
        .record
        .as_ref()
        .map(|r| r.merged_into.clone())
        .unwrap_or_default();
    let mut names = vec![render::VAGRANTFILE, render::K0SCTL_YAML];
    if planned.topology.endpoint.kind == crate::topology::EndpointKind::Haproxy {
        names.push(render::HAPROXY_CFG);
    }
    // What lab.json says now: an earlier write of this same run may have changed the files.
    let on_disk = ctx.dir.read_record()?;
    ctx.dir.check_ours(&names, on_disk.as_ref())?;
    // The .gitignore is k0slab's if k0slab creates it now or wrote it before, unchanged.
    let gitignore = ctx.dir.join(GITIGNORE);
    let gitignore_ours = match std::fs::read(&gitignore) {
        Err(_) => !gitignore.is_symlink(),
        Ok(current) => on_disk
            .as_ref()
            .and_then(|r| r.unchanged(GITIGNORE, &current))
            .unwrap_or(false),
    };
    let mut report = ctx.dir.create()?;
    let comment = format!("k0slab@{}", planned.topology.name);
    let (public_key, key_written) = ctx.dir.ensure_key_pair(&comment)?;
    report.push((render::PRIVATE_KEY.to_string(), key_written));
    report.push((render::PUBLIC_KEY.to_string(), key_written));
    let files = render::render_lab(
        &planned.inputs,
        &planned.topology,
        &RenderContext {
            lab_dir: ctx.dir.absolute(),
            public_key: &public_key,
            secrets: &secrets,
            merged_into: &merged_into,
            assigned,
            ssh_hosts,
            gitignore: gitignore_ours.then_some(GITIGNORE_CONTENTS),
        },
    )?;
    report.extend(ctx.dir.write(&files)?);
    Ok(report)
}

pub fn run(ctx: &Context<'_>, flags: &Flags) -> Result<()> {
    let planned = plan_lab(ctx, flags)?;
    for w in &planned.topology.warnings {
        ctx.out.warn(w);
    }
    let report = write_lab(ctx, &planned)?;
    for (name, written) in &report {
        ctx.out.info(&format!(
            "{:<9} {}",
            written.as_str(),
            ctx.dir.shown().join(name).display()
        ));
    }
    ctx.out.info(&format!(
        "rendered lab {} ({} machines, endpoint {})",
        planned.topology.name,
        planned.topology.nodes.len(),
        planned.topology.endpoint.url()
    ));
    Ok(())
}
