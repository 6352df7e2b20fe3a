//! The image steps of `k0slab image load` and `k0slab image ls`: see [`crate::image`].

use std::collections::BTreeSet;
use std::fs::File;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, InputError, Result};
use crate::image::engine::{self, Engine};
use crate::image::node::{self, NodeImage, SshClient};
use crate::image::stream::{self, Sink};
use crate::image::{archive, reference, Image};
use crate::lab::record::LabRecord;
use crate::output::OutputFormat;
use crate::output::{count, first_line};
use crate::progress::Progress;
use crate::topology::Node;
use crate::workflow::context::Context;
use crate::workflow::machines::machine_failures;
use crate::workflow::machines::per_machine;

/// What to load.
pub enum Source {
    /// Images of the host's container engine, exported once with `save`.
    Engine {
        images: Vec<String>,
        engine: Option<Engine>,
    },
    /// Image archives (docker-archive or OCI layout tar).
    Archives(Vec<PathBuf>),
}

/// Options of `image load`.
pub struct LoadOptions {
    pub source: Source,
    /// Only these nodes (every node that runs a kubelet when empty).
    pub nodes: Vec<String>,
}

fn ssh_client(ctx: &Context<'_>) -> Result<SshClient> {
    let program = crate::tools::on_path(ctx.env, "ssh").ok_or_else(|| Error::ToolMissing {
        tool: "ssh",
        reason: "the OpenSSH client is not on PATH".into(),
        hint: "it ships with macOS (/usr/bin/ssh)",
    })?;
    Ok(SshClient {
        program,
        private_key: ctx.dir.join(crate::lab::files::PRIVATE_KEY),
        known_hosts: ctx.dir.join(crate::lab::files::KNOWN_HOSTS),
    })
}

/// The nodes to load into: `wanted` (each must exist and run a kubelet), else every node that
/// runs a kubelet (a pure controller has no containerd for pods).
fn targets<'r>(record: &'r LabRecord, wanted: &[String]) -> Result<Vec<&'r Node>> {
    if wanted.is_empty() {
        return Ok(record.nodes.iter().filter(|n| n.runs_kubelet()).collect());
    }
    let mut out = Vec::new();
    for name in wanted {
        let Some(node) = record.node(name) else {
            return Err(InputError::Rule(format!(
                "--nodes names {name:?}, which is not a machine of lab {}; its nodes with a \
                 kubelet are: {}",
                record.name(),
                kubelet_names(record)
            ))
            .into());
        };
        if !node.runs_kubelet() {
            return Err(InputError::Rule(format!(
                "--nodes names {name}, which runs no kubelet (a pure controller has no \
                 containerd for pods); nodes with a kubelet: {}",
                kubelet_names(record)
            ))
            .into());
        }
        if !out.iter().any(|n: &&Node| n.name == node.name) {
            out.push(node);
        }
    }
    Ok(out)
}

fn kubelet_names(record: &LabRecord) -> String {
    record
        .nodes
        .iter()
        .filter(|n| n.runs_kubelet())
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One stream to send: the images it holds and how to open it.
struct Load {
    images: Vec<Image>,
    size: Option<u64>,
    open: Opener,
}

enum Opener {
    Save(engine::Found, Vec<String>),
    File(PathBuf),
}

/// Everything is checked here, before anything is sent: images the engine does not have and
/// unreadable archives are bad input.
fn plan(ctx: &Context<'_>, source: &Source) -> Result<Vec<Load>> {
    match source {
        Source::Engine { images, engine } => {
            let found = engine::find(ctx.env, *engine)?;
            let ids = found.ids(ctx.env, &ctx.out, images)?;
            let images: Vec<Image> = images
                .iter()
                .zip(ids)
                .map(|(given, id)| Image {
                    given: given.clone(),
                    name: reference::normalize(given),
                    id,
                })
                .collect();
            let names = images.iter().map(|i| i.given.clone()).collect();
            Ok(vec![Load {
                images,
                size: None,
                open: Opener::Save(found, names),
            }])
        }
        Source::Archives(paths) => paths
            .iter()
            .map(|p| {
                let (images, size) = archive::images(p)?;
                Ok(Load {
                    images,
                    size: Some(size),
                    open: Opener::File(p.clone()),
                })
            })
            .collect(),
    }
}

fn list(ctx: &Context<'_>, ssh: &SshClient, node: &Node) -> Result<Vec<NodeImage>> {
    node::ssh(ssh, node, &node::list_command(), "listing images")
        .output(ctx.env, &ctx.out)
        .map(|t| node::parse_list(&t))
}

/// Whether `node` has every image of `load` with the host's ID.
fn has_all(present: &[NodeImage], load: &Load) -> bool {
    load.images.iter().all(|i| {
        present
            .iter()
            .any(|p| p.name == i.name && p.loaded_id.as_deref() == Some(i.id.as_str()))
    })
}

/// What happened on one node.
#[derive(Debug, Clone, Serialize)]
struct Outcome {
    node: String,
    result: &'static str,
    detail: String,
}

fn send(
    ctx: &Context<'_>,
    ssh: &SshClient,
    progress: &Progress,
    load: &Load,
    nodes: &[&Node],
) -> Result<Vec<(String, Result<u64>)>> {
    let width = nodes.iter().map(|n| n.name.len()).max().unwrap_or(0);
    let bars: Vec<_> = nodes
        .iter()
        .map(|n| progress.bytes_bar(&n.name, width, load.size))
        .collect();
    // The source first: a failing export stops before any node is touched.
    enum Opened {
        File(File),
        Save(crate::tools::process::ByteReader),
    }
    let mut opened = match &load.open {
        Opener::File(p) => Opened::File(File::open(p).map_err(|e| Error::io("reading", p, e))?),
        Opener::Save(found, names) => Opened::Save(found.save(ctx.env, &ctx.out, names)?),
    };
    let mut started = Vec::new();
    let mut sinks = Vec::new();
    for (node, bar) in nodes.iter().zip(&bars) {
        let writer = node::ssh(ssh, node, &node::import_command(), "importing the image")
            .write_bytes(ctx.env, &ctx.out)?;
        started.push(node.name.clone());
        sinks.push(Sink { writer, bar });
    }
    let (outcomes, bytes) = match &mut opened {
        Opened::File(f) => stream::fan_out(f, sinks),
        Opened::Save(r) => stream::fan_out(r, sinks),
    };
    let bytes = match opened {
        Opened::Save(r) => bytes.and_then(|n| r.finish().map(|()| n)),
        Opened::File(_) => bytes,
    }?;
    Ok(started
        .into_iter()
        .zip(outcomes.into_iter().zip(bars))
        .map(|(name, (outcome, bar))| {
            match &outcome {
                Ok(_) => bar.done(&format!("sent {}", crate::output::bytes(bytes))),
                Err(e) => bar.failed(&first_line(&e.to_string())),
            }
            (name, outcome.map(|_| bytes))
        })
        .collect())
}

/// Records that `node` failed with `e`.
fn fail(failed: &mut BTreeSet<String>, outcomes: &mut Vec<Outcome>, node: &str, e: &Error) {
    failed.insert(node.to_string());
    outcomes.push(Outcome {
        node: node.to_string(),
        result: "failed",
        detail: first_line(&e.to_string()),
    });
}

pub fn load(ctx: &Context<'_>, o: &LoadOptions) -> Result<()> {
    let record = ctx.record()?;
    let nodes = targets(&record, &o.nodes)?;
    let ssh = ssh_client(ctx)?;
    let loads = plan(ctx, &o.source)?;
    let progress = Progress::new(&ctx.out);
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for load in &loads {
        let names: Vec<&str> = load.images.iter().map(|i| i.given.as_str()).collect();
        // Which nodes have it already (with the same ID)?
        let present = per_machine(ctx, &progress, &nodes, |node, bar| {
            bar.message("listing images");
            let found = list(ctx, &ssh, node);
            match &found {
                Ok(p) if has_all(p, load) => bar.done("has it already"),
                Ok(_) => bar.done("needs it"),
                Err(_) => bar.failed("could not list its images"),
            }
            found
        });
        let mut needing = Vec::new();
        for (node, found) in present {
            match found {
                Ok(p) if has_all(&p, load) => outcomes.push(Outcome {
                    node: node.name.clone(),
                    result: "skipped",
                    detail: format!("already has {} with the same ID", names.join(", ")),
                }),
                Ok(_) => needing.push(node),
                Err(e) => fail(&mut failed, &mut outcomes, &node.name, &e),
            }
        }
        if needing.is_empty() {
            continue;
        }
        ctx.out.progress(&format!(
            "loading {} into {}",
            names.join(", "),
            count(needing.len(), "node")
        ));
        let sent = send(ctx, &ssh, &progress, load, &needing)?;
        // Label and verify where the import succeeded.
        let ok_nodes: Vec<&Node> = needing
            .iter()
            .copied()
            .filter(|n| sent.iter().any(|(name, r)| *name == n.name && r.is_ok()))
            .collect();
        for (name, r) in &sent {
            if let Err(e) = r {
                fail(&mut failed, &mut outcomes, name, e);
            }
        }
        let verified = per_machine(ctx, &progress, &ok_nodes, |node, bar| {
            bar.message("verifying");
            for image in &load.images {
                node::ssh(
                    &ssh,
                    node,
                    &node::label_command(&image.name, &image.id),
                    "labelling the image",
                )
                .output(ctx.env, &ctx.out)?;
            }
            let present = list(ctx, &ssh, node)?;
            let missing: Vec<&str> = load
                .images
                .iter()
                .filter(|i| {
                    !present
                        .iter()
                        .any(|p| p.name == i.name && p.loaded_id.as_deref() == Some(&i.id))
                })
                .map(|i| i.name.as_str())
                .collect();
            if missing.is_empty() {
                bar.done("lists every image");
                Ok(())
            } else {
                bar.failed("does not list the image");
                Err(Error::Step(format!(
                    "after the import {} does not list {}",
                    node.name,
                    missing.join(", ")
                )))
            }
        });
        for (node, r) in verified {
            match r {
                Ok(()) => outcomes.push(Outcome {
                    node: node.name.clone(),
                    result: "loaded",
                    detail: load
                        .images
                        .iter()
                        .map(|i| format!("{} {}", i.name, short(&i.id)))
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
                Err(e) => fail(&mut failed, &mut outcomes, &node.name, &e),
            }
        }
    }
    outcomes.sort_by(|a, b| a.node.cmp(&b.node));
    ctx.out.result(&crate::output::table(
        &["node", "result", "detail"],
        outcomes
            .iter()
            .map(|o| vec![o.node.clone(), o.result.to_string(), o.detail.clone()])
            .collect(),
        &[],
    ));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Step(format!(
            "loading failed on {}: {}",
            count(failed.len(), "node"),
            failed.into_iter().collect::<Vec<_>>().join(", ")
        )))
    }
}

/// `sha256:0123456789ab`.
fn short(id: &str) -> &str {
    &id[..id.len().min(19)]
}

#[derive(Serialize)]
struct Listed<'a> {
    node: &'a str,
    image: &'a str,
    id: &'a str,
    size: &'a str,
}

/// `image ls`: the images k0slab loaded, per node.
pub fn ls(ctx: &Context<'_>, format: OutputFormat) -> Result<()> {
    let record = ctx.record()?;
    let nodes = targets(&record, &[])?;
    let ssh = ssh_client(ctx)?;
    let progress = Progress::new(&ctx.out);
    let results = per_machine(ctx, &progress, &nodes, |node, bar| {
        bar.message("listing images");
        let r = list(ctx, &ssh, node);
        match &r {
            Ok(_) => bar.done("listed"),
            Err(_) => bar.failed("could not list its images"),
        }
        r
    });
    let listed = machine_failures(ctx, "listing images", results, "")?;
    let rows: Vec<Listed<'_>> = listed
        .iter()
        .flat_map(|(node, images)| {
            images.iter().filter_map(|i| {
                Some(Listed {
                    node: node.as_str(),
                    image: &i.name,
                    id: i.loaded_id.as_deref()?,
                    size: &i.size,
                })
            })
        })
        .collect();
    match format {
        OutputFormat::Json => ctx
            .out
            .result(&serde_json::to_string_pretty(&rows).expect("rows serialise")),
        OutputFormat::Table => ctx.out.result(&crate::output::table(
            &["node", "image", "id", "size"],
            rows.iter()
                .map(|r| {
                    vec![
                        r.node.to_string(),
                        r.image.to_string(),
                        short(r.id).to_string(),
                        r.size.to_string(),
                    ]
                })
                .collect(),
            &[],
        )),
    }
    Ok(())
}
