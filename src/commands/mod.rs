//! One module per command. Shared here: finding the lab directory and resolving a lab's
//! inputs and topology (pure, before anything is written).

pub mod plan;
pub mod render;

use std::path::PathBuf;

use crate::environment::Environment;
use crate::error::{InputError, Result};
use crate::inputs::{self, Change, Flags, Inputs, LabName};
use crate::lab_dir::LabDir;
use crate::lab_json::LabRecord;
use crate::output::Output;
use crate::topology::Topology;

/// The default lab directory.
pub const DEFAULT_DIR: &str = "lab";

/// What every command gets.
pub struct Context<'a> {
    pub env: &'a Environment,
    pub out: Output,
    pub dir: LabDir,
}

/// The lab directory: `--dir`, else K0SLAB_DIR, else `lab`.
pub fn lab_dir(flag: Option<PathBuf>, env: &Environment) -> Result<LabDir> {
    let path = match flag {
        Some(p) => Some(p),
        None => inputs::lookup_env(env, "K0SLAB_DIR")?
            .map(|raw| {
                if raw.value.is_empty() {
                    Err(InputError::Invalid {
                        origin: raw.origin.to_string(),
                        value: raw.value,
                        allowed: "a directory path".into(),
                    })
                } else {
                    Ok(PathBuf::from(raw.value))
                }
            })
            .transpose()?,
    };
    LabDir::new(path.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)))
}

/// A lab resolved from the inputs and the existing `lab.json`.
pub struct Planned {
    pub inputs: Inputs,
    pub topology: Topology,
    /// Explicit inputs that differ from the existing lab.
    pub changes: Vec<Change>,
    pub record: Option<LabRecord>,
}

/// Resolves inputs (flags > environment > existing lab > defaults) and the topology.
pub fn plan_lab(ctx: &Context<'_>, flags: &Flags) -> Result<Planned> {
    let record = ctx.dir.read_record()?;
    let default_name = LabName::for_directory(&ctx.dir.base_name());
    let resolved = inputs::resolve(
        flags,
        ctx.env,
        record.as_ref().map(|r| &r.inputs),
        &default_name,
    )?;
    let topology = Topology::resolve(&resolved.inputs)?;
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
