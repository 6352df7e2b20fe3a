//! `k0slab plan`: the topology as a table or JSON. Writes nothing.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::error::Result;
use crate::inputs::Flags;
use crate::output::OutputFormat;
use crate::roles::Role;
use crate::topology::{EndpointKind, NodeKind, Topology};
use crate::workflow::context::Context;
use crate::workflow::resolve::describe_changes;
use crate::workflow::resolve::plan_lab;

#[derive(Serialize)]
struct PlanView<'a> {
    name: &'a str,
    dir: String,
    subnet: String,
    image: &'a str,
    k0s_version: Option<&'a str>,
    endpoint: EndpointView,
    nodes: Vec<NodeView<'a>>,
    total_memory_mb: u64,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct EndpointView {
    kind: EndpointKind,
    address: Ipv4Addr,
    url: String,
}

#[derive(Serialize)]
struct NodeView<'a> {
    name: &'a str,
    kind: NodeKind,
    role: Option<Role>,
    address: Ipv4Addr,
    cpus: u32,
    memory_mb: u32,
    disk_gb: u32,
    runs_workloads: bool,
    no_taints: bool,
    nested: bool,
    vm_name: String,
}

pub fn run(ctx: &Context<'_>, flags: &Flags, format: OutputFormat) -> Result<()> {
    let mut planned = plan_lab(ctx, flags)?;
    let k0s = k0s_line(ctx, &mut planned);
    let t = &planned.topology;
    match format {
        OutputFormat::Json => {
            let view = view(ctx, t);
            ctx.out
                .result(&serde_json::to_string_pretty(&view).expect("the plan serialises to JSON"));
        }
        OutputFormat::Table => {
            for w in &t.warnings {
                ctx.out.warn(w);
            }
            ctx.out.result(&t.table());
            ctx.out.result(&summary(ctx, t, &k0s));
        }
    }
    if !planned.changes.is_empty() {
        ctx.out.warn(&format!(
            "this differs from the lab in {}:\n{}",
            ctx.dir.shown().display(),
            describe_changes(&planned.changes)
        ));
    }
    Ok(())
}

fn view<'a>(ctx: &Context<'_>, t: &'a Topology) -> PlanView<'a> {
    PlanView {
        name: t.name.as_str(),
        dir: ctx.dir.shown().display().to_string(),
        subnet: t.subnet.to_string(),
        image: &t.image,
        k0s_version: t.k0s_version.as_ref().map(|v| v.as_str()),
        endpoint: EndpointView {
            kind: t.endpoint.kind,
            address: t.endpoint.address,
            url: t.endpoint.url(),
        },
        nodes: t
            .nodes
            .iter()
            .map(|n| NodeView {
                name: &n.name,
                kind: n.kind,
                role: n.role,
                address: n.address,
                cpus: n.cpus,
                memory_mb: n.memory_mb,
                disk_gb: n.disk_gb,
                runs_workloads: n.runs_workloads(),
                no_taints: n.no_taints,
                nested: n.nested,
                vm_name: t.vm_name(n),
            })
            .collect(),
        total_memory_mb: t.total_memory_mb(),
        warnings: &t.warnings,
    }
}

/// The k0s line of the plan: the release the lab runs (pinned, or what `up` would pin now)
/// and whether the host's cache holds it.
fn k0s_line(ctx: &Context<'_>, planned: &mut crate::lab::record::Planned) -> String {
    use crate::workflow::cache::{pin, Pinned};
    let how = match pin(ctx, planned) {
        Ok(Pinned::Already) => "pinned",
        Ok(Pinned::LookedUp) => "the newest stable release now; `up` pins it in lab.json",
        Ok(Pinned::FromCache(_)) => "the newest in the cache; `up` pins it in lab.json",
        Err(e) => {
            return format!(
                "newest stable release, pinned by `up` ({})",
                crate::output::first_line(&e.to_string())
            )
        }
    };
    let Some(v) = planned.topology.k0s_version.as_ref() else {
        return how.to_string();
    };
    let cache = if !crate::workflow::cache::enabled(ctx) {
        "K0SLAB_K0S_CACHE=off: k0sctl downloads it, the nodes pull their images"
    } else if crate::lab::cache::Cache::new(ctx.env).has(v) {
        "binary and images in the host's cache"
    } else {
        "`up` downloads its binary and images once into the host's cache"
    };
    format!("{} ({how}; {cache})", v.as_str())
}

fn summary(ctx: &Context<'_>, t: &Topology, k0s: &str) -> String {
    let controllers = t.controllers().count();
    let workers = t
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Worker)
        .count();
    let nested: Vec<&str> = t
        .nodes
        .iter()
        .filter(|n| n.nested)
        .map(|n| n.name.as_str())
        .collect();
    let nested = if nested.is_empty() {
        String::new()
    } else {
        format!(
            "\nnested    {} (tart run --nested, kubelet at {}: KubeVirt can run workload VMs \
             there; at least {} CPUs, {} MB and {} GB each; an Apple M3 or later, macOS 15, \
             Tart 2.20)",
            nested.join(", "),
            crate::topology::KUBELET_ROOT_DIR,
            crate::topology::NESTED_MIN_CPUS,
            crate::topology::NESTED_MIN_MEMORY_MB,
            crate::topology::NESTED_MIN_DISK_GB
        )
    };
    format!(
        "\nendpoint  {} ({}: {})\nlab       {} in {}: {controllers} controller(s), {workers} \
         worker(s), {} MB of VM memory\nk0s       {}\nimage     {}{nested}",
        t.endpoint.url(),
        t.endpoint.kind,
        t.endpoint.describe(),
        t.name,
        ctx.dir.shown().display(),
        t.total_memory_mb(),
        k0s,
        t.image,
    )
}
