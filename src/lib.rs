//! k0slab: a realistic multi-node k0s cluster on local VMs, in one command, proven healthy.
//!
//! The flow is plan, then execute:
//!
//! ```text
//! flags / environment ─▶ Inputs ─▶ Topology (pure) ─▶ rendered files ─▶ lab directory
//! ```
//!
//! - [`inputs`]: flags and environment variables into typed, validated values.
//! - [`topology`], [`roles`], [`addresses`]: the machines, their roles and addresses.
//! - [`render`], [`templates`]: the Vagrantfile, k0sctl.yaml, haproxy.cfg and lab.json.
//! - [`lab_dir`], [`fsutil`], [`sshkey`]: the lab directory on disk.
//! - [`commands`]: one module per command; [`cli`] is the clap layer.

pub mod addresses;
pub mod cli;
pub mod commands;
pub mod environment;
pub mod error;
pub mod fsutil;
pub mod health;
pub mod inputs;
pub mod k0sctl;
pub mod kubeconfig;
pub mod kubectl;
pub mod lab_dir;
pub mod lab_json;
pub mod output;
pub mod process;
pub mod progress;
pub mod render;
pub mod roles;
pub mod sshkey;
pub mod templates;
pub mod tools;
pub mod topology;
pub mod vagrant;

pub use error::{Error, Result};

/// This k0slab's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs one k0slab command.
pub fn run(cli: cli::Cli, env: &environment::Environment) -> Result<()> {
    let out = output::Output::new(cli.verbosity());
    let dir = commands::lab_dir(cli.dir, env)?;
    let ctx = commands::Context { env, out, dir };
    match cli.command {
        cli::Command::Plan { lab, output } => commands::plan::run(&ctx, &lab.flags(), output),
        cli::Command::Render { lab } => commands::render::run(&ctx, &lab.flags()),
    }
}
