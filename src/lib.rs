//! k0slab: a realistic multi-node k0s cluster on local VMs, in one command, proven healthy.
//!
//! The layers, top to bottom (a module imports only its own layer or below; `tests/layers.rs`
//! checks it):
//!
//! - [`run`] and [`cli`]: the command line, one match from a command to its module.
//! - [`commands`]: one thin module per command: flags in, a [`workflow`] call, output out.
//! - [`workflow`]: the steps commands compose (resolve → preflight → render → boot → assign →
//!   apply → health, and destroy, halt, backup, restore, drill…) over one
//!   [`workflow::context::Context`].
//! - [`lab`]: the lab directory: every file name and mode, `lab.json`, the lock, and the
//!   host-wide records.
//! - the domain, pure where it can be: [`inputs`], [`topology`], [`roles`], [`addresses`],
//!   [`network`], [`render`] and [`templates`], [`health`], [`drill`], [`kubeconfig`],
//!   [`kairos`], [`image`], [`versions`], [`release`].
//! - [`tools`]: the adapters, one per external program, below all of it.
//! - [`error`], [`environment`], [`output`], [`progress`], [`fsutil`]: the base.

pub mod addresses;
pub mod cli;
pub mod commands;
pub mod drill;
pub mod environment;
pub mod error;
pub mod fsutil;
pub mod health;
pub mod image;
pub mod inputs;
pub mod kairos;
pub mod kubeconfig;
pub mod lab;
pub mod network;
pub mod output;
pub mod progress;
pub mod release;
pub mod render;
pub mod roles;
pub mod templates;
pub mod tools;
pub mod topology;
pub mod versions;
pub mod workflow;

pub use error::{Error, Result};

pub use environment::VERSION;

/// The process exit code for `err`: [`Error::exit_code`], with an interruption's own signal
/// (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
pub fn exit_code(err: &Error) -> u8 {
    match err {
        Error::Interrupted => tools::process::interrupted_exit_code(),
        _ => err.exit_code(),
    }
}

/// Runs one k0slab command.
pub fn run(cli: cli::Cli, env: &environment::Environment) -> Result<()> {
    use cli::Command;
    use commands::*;

    tools::process::install_interrupt_handler();
    let out = output::Output::new(cli.verbosity()).with_term(env.get("TERM"));
    if let Command::Bootptab {
        command: cli::BootptabCommand::Apply,
    } = cli.command
    {
        // The root half: before any lab directory, tool or variable is looked at, it reads
        // only its standard input and acts only on macOS' own files.
        let applied = network::dhcp::helper(std::io::stdin().lock())?;
        out.info(applied.describe());
        return Ok(());
    }
    let dir = lab::dir::resolve(cli.dir, env)?;
    let tools = tools::Tools::find(env);
    // Before anything runs or is written (the lock below writes ~/.k0slab): every variable,
    // also those the commands read late, and the lab flags.
    inputs::check_environment(env, &lab_flags(&cli.command))?;
    tools::check_overrides(env)?;
    let ctx = workflow::context::Context {
        env,
        out,
        dir,
        tools,
    };
    // Held until the command returns: one command that changes a lab at a time.
    let _lock = match changes_lab(&cli.command) {
        Some(name) => Some(lab::lock::acquire(
            env,
            ctx.dir.absolute(),
            &format!("k0slab {name}"),
        )?),
        None => None,
    };
    match cli.command {
        Command::Plan { lab, output } => plan::run(&ctx, &lab.flags(), output),
        Command::Render { lab } => render::run(&ctx, &lab.flags()),
        Command::Up { lab, dry_run, wait } => up::run(&ctx, &lab.flags(), dry_run, wait),
        Command::Destroy => destroy::run(&ctx),
        Command::Status { output } => status::run(&ctx, output),
        Command::Health { wait, output } => health::run(&ctx, wait, output),
        Command::Kubeconfig { merge } => kubeconfig::run(&ctx, merge),
        Command::Ssh { node, command } => ssh::run(&ctx, &node, &command),
        Command::Halt => halt::run(&ctx),
        Command::Validate { lab } => validate::run(&ctx, &lab.flags()),
        Command::Doctor { lab, output } => {
            let mut flags = lab.flags();
            let probe = lab.network.is_some();
            // `doctor --network` without a mode probes with the lab's own mode.
            if lab.network.as_deref() == Some("") {
                flags.0.remove(&inputs::Key::Network);
            }
            doctor::run(&ctx, &flags, output, probe)
        }
        Command::InstallPlugin => plugin::run(&ctx),
        Command::Bootptab { .. } => unreachable!("handled before the lab is looked at"),
        Command::Backup => backup::backup(&ctx),
        Command::Restore { file, lab, wait } => restore::run(&ctx, &lab.flags(), &file, wait),
        Command::Drill {
            scenarios,
            hard,
            restore,
            output,
        } => drill::run(
            &ctx,
            &drill::DrillOptions {
                scenarios,
                hard,
                restore,
                format: output,
            },
        ),
        Command::Image { command } => match command {
            cli::ImageCommand::Load {
                images,
                archive,
                engine,
                nodes,
            } => image::load(
                &ctx,
                &image::LoadOptions {
                    source: if archive.is_empty() {
                        image::Source::Engine { images, engine }
                    } else {
                        image::Source::Archives(archive)
                    },
                    nodes,
                },
            ),
            cli::ImageCommand::Ls { output } => image::ls(&ctx, output),
        },
        Command::Kairos { command } => run_kairos(&ctx, command),
        Command::Cache { command } => match command {
            cli::CacheCommand::Ls { output } => cache::ls(&ctx, output),
            cli::CacheCommand::Prune { all, output } => cache::prune_cache(&ctx, all, output),
        },
    }
}

/// The lab settings given as flags to `command`.
fn lab_flags(command: &cli::Command) -> inputs::Flags {
    use cli::Command;
    match command {
        Command::Plan { lab, .. }
        | Command::Render { lab }
        | Command::Up { lab, .. }
        | Command::Validate { lab }
        | Command::Restore { lab, .. } => lab.flags(),
        Command::Doctor { lab, .. } => {
            let mut flags = lab.flags();
            // `doctor --network` without a mode probes with the lab's own mode.
            if lab.network.as_deref() == Some("") {
                flags.0.remove(&inputs::Key::Network);
            }
            flags
        }
        _ => inputs::Flags::default(),
    }
}

/// The name of `command` when it changes the lab (and so takes the lab's lock).
fn changes_lab(command: &cli::Command) -> Option<&'static str> {
    use cli::{Command, KairosCommand};
    match command {
        Command::Render { .. } => Some("render"),
        Command::Up { dry_run: false, .. } => Some("up"),
        Command::Destroy => Some("destroy"),
        Command::Halt => Some("halt"),
        Command::Drill { .. } => Some("drill"),
        Command::Backup => Some("backup"),
        Command::Restore { .. } => Some("restore"),
        Command::Validate { .. } => Some("validate"),
        Command::Kubeconfig { merge: true } => Some("kubeconfig --merge"),
        Command::Kairos {
            command: KairosCommand::Install { .. },
        } => Some("kairos install"),
        Command::Kairos {
            command: KairosCommand::Uninstall,
        } => Some("kairos uninstall"),
        _ => None,
    }
}

fn run_kairos(ctx: &workflow::context::Context<'_>, command: cli::KairosCommand) -> Result<()> {
    use cli::KairosCommand;
    use commands::kairos;
    match command {
        KairosCommand::Install {
            infrastructure,
            infrastructure_version,
            cert_manager_version,
            capi_version,
            kairos_version,
            provider_manifest,
            provider_image,
            cdi_version,
            kubevirt_version,
            workload_image,
            timeout,
            image_timeout,
        } => kairos::install::run(
            ctx,
            &kairos::install::InstallOptions {
                versions: crate::kairos::components::Versions {
                    cert_manager: cert_manager_version,
                    capi: capi_version,
                    infrastructure,
                    infrastructure_version,
                    kairos: kairos_version,
                    provider_manifest,
                    cdi: cdi_version,
                    kubevirt: kubevirt_version,
                    workload_image,
                },
                provider_image,
                timeout,
                image_timeout,
            },
        ),
        KairosCommand::Verify {
            cluster_manifest,
            keep,
            timeout,
            init_annotation,
            output,
        } => kairos::verify::run(
            ctx,
            &kairos::verify::VerifyOptions {
                cluster_manifest,
                keep,
                timeout,
                init_annotation,
                format: output,
            },
        ),
        KairosCommand::Uninstall => kairos::uninstall::run(ctx),
        KairosCommand::Lint {
            files,
            replicas,
            output,
        } => kairos::lint::lint(
            ctx,
            &kairos::lint::LintOptions {
                files,
                replicas,
                format: output,
            },
        ),
    }
}
