//! `k0slab cache ls` and `k0slab cache prune`: the host's k0s releases (binary and airgap
//! bundle), which every lab's `up` takes k0s and its images from.

use crate::error::Result;
use crate::output::{bytes, OutputFormat};
use crate::workflow::cache::{list, prune};
use crate::workflow::context::Context;

pub fn ls(ctx: &Context<'_>, format: OutputFormat) -> Result<()> {
    let listed = list(ctx)?;
    let root = crate::lab::cache::Cache::new(ctx.env).root().to_path_buf();
    if format == OutputFormat::Json {
        ctx.out.result(
            &serde_json::to_string_pretty(&serde_json::json!({
                "dir": root,
                "releases": listed,
            }))
            .expect("the listing serialises"),
        );
        return Ok(());
    }
    if listed.is_empty() {
        ctx.out.result(&format!(
            "the cache {} holds no k0s release: the next `k0slab up` downloads one",
            root.display()
        ));
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["K0S RELEASE", "SIZE", "STATE", "PINNED BY"]);
    for l in &listed {
        table.add_row([
            l.entry.version.as_str().to_string(),
            bytes(l.entry.bytes),
            if l.entry.complete {
                "binary + images".to_string()
            } else {
                format!(
                    "incomplete ({} being or cut off while downloaded)",
                    bytes(l.entry.partial_bytes)
                )
            },
            if l.labs.is_empty() {
                "-".to_string()
            } else {
                l.labs.join(", ")
            },
        ]);
    }
    ctx.out.result(&table.to_string());
    ctx.out.result(&format!(
        "\n{} in {}",
        bytes(listed.iter().map(|l| l.entry.bytes).sum()),
        root.display()
    ));
    Ok(())
}

pub fn prune_cache(ctx: &Context<'_>, all: bool, format: OutputFormat) -> Result<()> {
    let done = prune(ctx, all)?;
    if format == OutputFormat::Json {
        ctx.out
            .result(&serde_json::to_string_pretty(&done).expect("the result serialises"));
        return Ok(());
    }
    if done.is_empty() {
        ctx.out
            .result("the cache holds no k0s release: nothing to prune");
        return Ok(());
    }
    for p in &done {
        let line = if p.removed {
            format!("removed {} ({})", p.version, bytes(p.bytes))
        } else {
            format!("kept    {}: {}", p.version, p.note)
        };
        ctx.out.result(&line);
        if p.removed && !p.note.is_empty() {
            ctx.out.warn(&format!("{}: {}", p.version, p.note));
        }
    }
    ctx.out.result(&format!(
        "freed {}",
        bytes(done.iter().map(|p| p.bytes).sum())
    ));
    Ok(())
}
