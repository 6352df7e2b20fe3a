//! Every call of Vagrant. k0slab learns machine state only from Vagrant (and k0sctl/kubectl),
//! never by contacting the lab's addresses itself.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::environment::Environment;
use crate::error::Result;
use crate::output::Output;
use crate::tools::process::Cmd;

/// The provider every lab machine uses.
pub const PROVIDER: &str = "tart";
/// The Vagrant plugin that provides it (letiemble/vagrant-tart).
pub const PLUGIN: &str = "vagrant-tart";

/// Whether `vagrant plugin list` output (`list`) shows the provider's plugin.
pub fn has_plugin(list: &str) -> bool {
    plugin_line(list).is_some()
}

/// The line of `vagrant plugin list` output that shows the provider's plugin.
pub fn plugin_line(list: &str) -> Option<&str> {
    list.lines().find(|l| l.trim_start().starts_with(PLUGIN))
}

/// A machine's state as Vagrant reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    Running,
    Stopped,
    Suspended,
    NotCreated,
    Other(String),
}

impl MachineState {
    fn parse(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "stopped" | "poweroff" | "shutoff" => Self::Stopped,
            "suspended" | "saved" | "paused" => Self::Suspended,
            "not_created" | "not created" => Self::NotCreated,
            other => Self::Other(other.to_string()),
        }
    }
}

impl fmt::Display for MachineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Suspended => "suspended",
            Self::NotCreated => "not created",
            Self::Other(s) => s,
        })
    }
}

/// One line of `--machine-readable` output: `timestamp,target,type,data…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineReadable {
    pub target: String,
    pub kind: String,
    pub data: Vec<String>,
}

/// Parses a machine-readable line, undoing Vagrant's escapes (`%!(VAGRANT_COMMA)`, `\n`).
pub fn parse_machine_readable(line: &str) -> Option<MachineReadable> {
    let mut parts = line.split(',');
    let timestamp = parts.next()?;
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let target = parts.next()?.to_string();
    let kind = parts.next()?.to_string();
    let data = parts
        .map(|d| {
            d.replace("%!(VAGRANT_COMMA)", ",")
                .replace("\\n", "\n")
                .replace("\\r", "")
        })
        .collect();
    Some(MachineReadable { target, kind, data })
}

/// Vagrant's `--machine-readable` output as a person reads it: the UI messages and the error,
/// each once; other records dropped; plain lines (Vagrant's own stderr) kept unless they repeat
/// a message already shown.
pub fn humanize(output: &str) -> String {
    let mut blocks: Vec<String> = Vec::new();
    let mut plain: Vec<&str> = Vec::new();
    let flush = |plain: &mut Vec<&str>, blocks: &mut Vec<String>| {
        let text = plain.join("\n").trim().to_string();
        plain.clear();
        if text.is_empty() {
            return;
        }
        // The same message in full (Vagrant prints an error both as a record and as text).
        match blocks.iter_mut().find(|b| text.starts_with(b.as_str())) {
            Some(shorter) => *shorter = text,
            None => blocks.push(text),
        }
    };
    for line in output.lines() {
        match parse_machine_readable(line) {
            Some(record) => {
                flush(&mut plain, &mut blocks);
                let message = match record.kind.as_str() {
                    "ui" => record.data.get(1),
                    "error-exit" => record.data.get(1),
                    _ => None,
                };
                if let Some(m) = message.map(|m| m.trim()).filter(|m| !m.is_empty()) {
                    if !blocks.iter().any(|b| b == m) {
                        blocks.push(m.to_string());
                    }
                }
            }
            None => plain.push(line),
        }
    }
    flush(&mut plain, &mut blocks);
    blocks.join("\n")
}

/// Where a `vagrant up` is, from its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpStage {
    Queued = 0,
    Creating = 1,
    Booting = 2,
    WaitingForSsh = 3,
    Provisioning = 4,
    CheckingAddress = 5,
    Running = 6,
}

impl UpStage {
    pub const COUNT: u64 = 6;

    pub fn label(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Creating => "creating the VM",
            Self::Booting => "booting",
            Self::WaitingForSsh => "waiting for SSH",
            Self::Provisioning => "provisioning",
            Self::CheckingAddress => "checking the static address",
            Self::Running => "running",
        }
    }

    /// The stage a Vagrant UI message announces, if any.
    pub fn from_message(message: &str) -> Option<Self> {
        let m = message.to_ascii_lowercase();
        if m.contains("provision") || m.contains("setting hostname") {
            Some(Self::Provisioning)
        } else if m.contains("waiting for machine to boot")
            || m.contains("ssh address")
            || m.contains("booted and ready")
        {
            Some(Self::WaitingForSsh)
        } else if m.contains("booting") || m.contains("starting") || m.contains("resuming") {
            Some(Self::Booting)
        } else if m.contains("clon")
            || m.contains("pull")
            || m.contains("import")
            || m.contains("creating")
        {
            Some(Self::Creating)
        } else {
            None
        }
    }
}

/// Vagrant, run in one lab directory.
pub struct Vagrant<'a> {
    pub path: &'a Path,
    pub lab_dir: &'a Path,
    pub env: &'a Environment,
    pub out: &'a Output,
}

impl Vagrant<'_> {
    fn cmd(&self, description: impl Into<String>) -> Cmd {
        Cmd::new(self.path, description)
            .env("VAGRANT_CWD", self.lab_dir.display().to_string())
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .env("VAGRANT_NO_COLOR", "1")
    }

    /// `vagrant status --machine-readable`: the state of every machine of the Vagrantfile.
    pub fn status(&self) -> Result<BTreeMap<String, MachineState>> {
        let text = self
            .cmd("asking Vagrant for the machines' state")
            .args(["status", "--machine-readable"])
            .output(self.env, self.out)?;
        Ok(text
            .lines()
            .filter_map(parse_machine_readable)
            .filter(|l| l.kind == "state" && !l.target.is_empty())
            .filter_map(|l| {
                let state = l.data.first()?;
                Some((l.target, MachineState::parse(state)))
            })
            .collect())
    }

    /// The command that brings `machine` up.
    pub fn up_cmd(&self, machine: &str) -> Cmd {
        self.cmd(format!("bringing {machine} up")).args([
            "up",
            machine,
            "--provider",
            PROVIDER,
            "--machine-readable",
        ])
    }

    /// `vagrant up MACHINE`, reporting each stage it reaches.
    pub fn up(&self, machine: &str, mut on_stage: impl FnMut(UpStage, &str)) -> Result<()> {
        let result = self.up_cmd(machine).stream(self.env, self.out, |line| {
            if let Some(l) = parse_machine_readable(line) {
                if l.kind == "ui" && l.target == machine {
                    let message = l.data.get(1).map_or("", String::as_str).trim();
                    let first = message.lines().next().unwrap_or("");
                    if let Some(stage) = UpStage::from_message(first) {
                        on_stage(stage, first);
                    }
                }
            }
        });
        match result {
            Err(crate::error::Error::CommandFailed {
                description,
                command,
                status,
                stderr,
            }) => Err(crate::error::Error::CommandFailed {
                description,
                command,
                status,
                stderr: humanize(&stderr),
            }),
            other => other,
        }
    }

    /// `vagrant ssh MACHINE -c COMMAND`, returning the command's output.
    pub fn ssh_output(&self, machine: &str, command: &str) -> Result<String> {
        self.ssh_cmd(machine, Some(command))
            .output(self.env, self.out)
    }

    /// `vagrant ssh MACHINE -c COMMAND` given at most `limit` in all (see
    /// [`Cmd::output_within`]).
    pub fn ssh_output_within(
        &self,
        machine: &str,
        command: &str,
        limit: std::time::Duration,
    ) -> Result<String> {
        self.ssh_cmd(machine, Some(command))
            .output_within(self.env, self.out, limit)
    }

    /// The command for `vagrant ssh MACHINE [-c COMMAND]`.
    pub fn ssh_cmd(&self, machine: &str, command: Option<&str>) -> Cmd {
        let cmd = self
            .cmd(format!("running a command on {machine}"))
            .args(["ssh", machine]);
        match command {
            Some(c) => cmd.args(["-c", c]),
            None => cmd,
        }
    }

    pub fn destroy_cmd(&self, machine: &str) -> Cmd {
        self.cmd(format!("destroying {machine}"))
            .args(["destroy", "-f", machine])
    }

    pub fn halt_cmd(&self, machine: &str) -> Cmd {
        self.cmd(format!("halting {machine}"))
            .args(["halt", machine])
    }

    pub fn validate_cmd(&self) -> Cmd {
        self.cmd("validating the Vagrantfile").arg("validate")
    }

    /// `vagrant --version`: answered before Vagrant looks at its working directory
    /// (hashicorp/vagrant v2.3.4 `bin/vagrant` lines 27-31), so also before the lab exists.
    pub fn version(&self) -> Result<String> {
        self.cmd("asking Vagrant for its version")
            .arg("--version")
            .output(self.env, self.out)
    }

    /// Vagrant for its `plugin` commands, which work before the lab directory exists. Every
    /// command but `--version` first creates a `Vagrant::Environment`, and that refuses a
    /// working directory (`VAGRANT_CWD`) that does not exist: "The working directory for
    /// Vagrant doesn't exist!" (hashicorp/vagrant v2.3.4 `bin/vagrant` lines 27-31 and 211,
    /// `lib/vagrant/environment.rb` lines 90-95, `templates/locales/en.yml` lines 926-930).
    /// Plugin commands read no Vagrantfile (`bin/vagrant` lines 45-55: `vagrantfile_name`
    /// emptied without `--local`), so the nearest existing directory of the lab's will do.
    fn plugin_cmd(&self, description: impl Into<String>) -> Cmd {
        let cwd = self
            .lab_dir
            .ancestors()
            .find(|d| d.is_dir())
            .unwrap_or(Path::new("/"));
        Cmd::new(self.path, description)
            .env("VAGRANT_CWD", cwd.display().to_string())
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .env("VAGRANT_NO_COLOR", "1")
    }

    /// Installed plugins as `name (version…)` lines.
    pub fn plugins(&self) -> Result<String> {
        self.plugin_cmd("listing Vagrant plugins")
            .args(["plugin", "list"])
            .output(self.env, self.out)
    }

    /// `vagrant plugin install NAME`.
    pub fn plugin_install_cmd(&self, name: &str) -> Cmd {
        self.plugin_cmd(format!("installing {name}"))
            .args(["plugin", "install", name])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_readable_failures_read_as_text_once() {
        let out = "1795385201,control-plane-3,ui,info,Cloning virtual machine...\n\
                   1795385201,control-plane-3,metadata,provider,tart\n\
                   1795385201,,error-exit,Vagrant::Errors::VMBootTimeout,Timed out while waiting for the machine to boot.\n\
                   Timed out while waiting for the machine to boot. This means that\n\
                   Vagrant was unable to communicate with the guest machine.";
        assert_eq!(
            humanize(out),
            "Cloning virtual machine...\nTimed out while waiting for the machine to boot. This \
             means that\nVagrant was unable to communicate with the guest machine."
        );
        assert_eq!(
            humanize("plain error\nsecond line"),
            "plain error\nsecond line"
        );
    }

    #[test]
    fn machine_readable_lines() {
        let l = parse_machine_readable("1700000000,worker-1,state,running").unwrap();
        assert_eq!((l.target.as_str(), l.kind.as_str()), ("worker-1", "state"));
        assert_eq!(l.data, ["running"]);
        let l = parse_machine_readable(
            "1700000000,,ui,info,Current machine states:\\n\\nworker-1%!(VAGRANT_COMMA) not",
        )
        .unwrap();
        assert_eq!(l.target, "");
        assert_eq!(l.data, ["info", "Current machine states:\n\nworker-1, not"]);
        assert!(parse_machine_readable("==> worker-1: Booting").is_none());
        assert!(parse_machine_readable("").is_none());
    }

    #[test]
    fn states() {
        assert_eq!(MachineState::parse("running"), MachineState::Running);
        assert_eq!(MachineState::parse("not_created"), MachineState::NotCreated);
        assert_eq!(MachineState::parse("stopped"), MachineState::Stopped);
        assert_eq!(MachineState::parse("suspended"), MachineState::Suspended);
        assert_eq!(
            MachineState::parse("weird"),
            MachineState::Other("weird".into())
        );
    }

    #[test]
    fn stages_from_messages() {
        use UpStage::*;
        assert_eq!(
            UpStage::from_message("Cloning virtual machine..."),
            Some(Creating)
        );
        assert_eq!(
            UpStage::from_message("Pulling image ghcr.io/x"),
            Some(Creating)
        );
        assert_eq!(UpStage::from_message("Booting VM..."), Some(Booting));
        assert_eq!(
            UpStage::from_message("Waiting for machine to boot. This may take a few minutes..."),
            Some(WaitingForSsh)
        );
        assert_eq!(
            UpStage::from_message("Running provisioner: k0slab-guest-setup (shell)..."),
            Some(Provisioning)
        );
        assert_eq!(
            UpStage::from_message("Setting hostname..."),
            Some(Provisioning)
        );
        assert_eq!(
            UpStage::from_message("Machine already provisioned."),
            Some(Provisioning)
        );
        assert_eq!(UpStage::from_message("some chatter"), None);
    }
}
