//! The render step: the lab's files written into its directory, all or none. All validation
//! happens before the first write.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::error::{InputError, Result};
use crate::fsutil::Written;
use crate::lab::dir::new_secrets;
use crate::lab::files::{GITIGNORE, GITIGNORE_CONTENTS};
use crate::lab::record::Planned;
use crate::network::Mac;
use crate::render::{self, RenderContext};
use crate::workflow::context::Context;
use crate::workflow::resolve::describe_changes;

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
    let mut names = vec![
        crate::lab::files::VAGRANTFILE,
        crate::lab::files::K0SCTL_YAML,
    ];
    if planned.topology.endpoint.kind == crate::topology::EndpointKind::Haproxy {
        names.push(crate::lab::files::HAPROXY_CFG);
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
    // Every file or none: a render that fails (a full disk) leaves the directory as it was,
    // and takes away again the directories it created.
    let created = ctx.dir.create_dirs()?;
    let written = write_files(
        ctx,
        planned,
        assigned,
        ssh_hosts,
        &secrets,
        &merged_into,
        gitignore_ours,
    );
    if written.is_err() {
        ctx.dir.remove_created(&created);
    }
    written
}

/// The key pair, the rendered files and the `.gitignore` k0slab creates, written all or none.
fn write_files(
    ctx: &Context<'_>,
    planned: &Planned,
    assigned: &BTreeMap<String, Mac>,
    ssh_hosts: &BTreeMap<String, Ipv4Addr>,
    secrets: &crate::lab::record::Secrets,
    merged_into: &[std::path::PathBuf],
    gitignore_ours: bool,
) -> Result<Vec<(String, Written)>> {
    let comment = format!("k0slab@{}", planned.topology.name);
    let key = ctx.dir.key_pair(&comment)?;
    let new_gitignore = !ctx.dir.join(GITIGNORE).exists() && gitignore_ours;
    let private_key = ctx.dir.join(crate::lab::files::PRIVATE_KEY);
    // The pinned release's files in the host's cache: k0sctl uploads them (`up` fills the
    // cache while the machines boot).
    let cache = crate::lab::cache::Cache::new(ctx.env);
    let k0s_paths = planned
        .topology
        .k0s_version
        .as_ref()
        .filter(|_| crate::workflow::cache::enabled(ctx))
        .map(|v| {
            (
                cache.path(v, crate::release::Asset::Binary),
                cache.path(v, crate::release::Asset::Bundle),
            )
        });
    let rendered = render::render(
        &planned.topology,
        &RenderContext {
            private_key: &private_key,
            haproxy_cfg: crate::lab::files::HAPROXY_CFG,
            public_key: &key.line,
            vrrp_auth_pass: &secrets.vrrp_auth_pass,
            assigned,
            ssh_hosts,
            k0s_files: k0s_paths
                .as_ref()
                .map(|(binary, bundle)| render::K0sFiles { binary, bundle }),
        },
    )?;
    let files = crate::lab::record::lab_files(
        &planned.inputs,
        &planned.topology,
        rendered,
        &crate::lab::record::Kept {
            secrets,
            merged_into,
            assigned,
            gitignore: gitignore_ours.then_some(GITIGNORE_CONTENTS),
        },
    )?;
    let key_files: Vec<(String, &str)> = key
        .to_write
        .iter()
        .map(|(path, text)| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), text.as_str())
        })
        .collect();
    let mut set: Vec<(&str, &[u8], u32)> = Vec::new();
    if new_gitignore {
        set.push((
            GITIGNORE,
            GITIGNORE_CONTENTS.as_bytes(),
            crate::lab::files::MODE_PUBLIC,
        ));
    }
    for (name, text) in &key_files {
        set.push((
            name.as_str(),
            text.as_bytes(),
            crate::lab::files::MODE_PRIVATE,
        ));
    }
    set.extend(
        files
            .iter()
            .map(|f| (f.name, f.contents.as_bytes(), f.mode)),
    );
    let mut written = ctx.dir.write_files(&set)?.into_iter();
    let key_written = if key.created {
        Written::Created
    } else {
        Written::Unchanged
    };
    let mut report = vec![(
        GITIGNORE.to_string(),
        if new_gitignore {
            written.next().expect("the .gitignore was written").1
        } else {
            Written::Unchanged
        },
    )];
    // The public half alone (derived from the kept private key) reports as the pair does.
    written.by_ref().take(key_files.len()).for_each(drop);
    report.push((crate::lab::files::PRIVATE_KEY.to_string(), key_written));
    report.push((crate::lab::files::PUBLIC_KEY.to_string(), key_written));
    report.extend(written);
    Ok(report)
}
