//! Every call of k0sctl.

use std::path::{Path, PathBuf};

use crate::environment::Environment;
use crate::error::Result;
use crate::output::Output;
use crate::tools::process::Cmd;

/// k0sctl, for one lab's k0sctl.yaml.
pub struct K0sctl<'a> {
    pub path: &'a Path,
    pub config: PathBuf,
    /// The lab's own known_hosts file (see [`K0sctl::cmd`]).
    pub known_hosts: PathBuf,
    pub env: &'a Environment,
    pub out: &'a Output,
}

/// The phase a k0sctl log line announces (`==> Running phase: Install workers`).
pub fn phase(line: &str) -> Option<&str> {
    let start = line.find("Running phase: ")? + "Running phase: ".len();
    let rest = &line[start..];
    Some(rest.split('"').next().unwrap_or(rest).trim())
}

impl K0sctl<'_> {
    /// k0sctl with the lab's own known_hosts file: rig reads `SSH_KNOWN_HOSTS`, creates the
    /// file and appends each new host key (k0sproject/rig `protocol/ssh/hostkey/callbacks.go`
    /// lines 54-68, 182-200), so the user's `~/.ssh/known_hosts` is never touched and `destroy`
    /// removes the lab's keys with the lab.
    fn cmd(&self, description: &str) -> Cmd {
        Cmd::new(self.path, description)
            .env("SSH_KNOWN_HOSTS", self.known_hosts.display().to_string())
    }

    /// `k0sctl apply --config …`, and with `kubeconfig` (a file and the API's URL) the admin
    /// kubeconfig written to that file once the apply succeeded, pointing at that URL: one
    /// k0sctl run instead of a second that connects to a controller again for `k0sctl
    /// kubeconfig` (k0sproject/k0sctl `cmd/apply.go` lines 38-46 and 78-90, since v0.14.0;
    /// `action/apply.go` lines 89-91 add the phase "Get admin kubeconfig", lines 116-121
    /// write it). k0sctl opens the file before the apply without truncating it (`O_CREATE |
    /// O_WRONLY`, 0600), and a failed write of it is only a warning: give it an empty file and
    /// check what it holds after.
    pub fn apply_cmd(&self, kubeconfig: Option<(&Path, &str)>) -> Cmd {
        let cmd = self
            .cmd("k0sctl apply")
            .arg("apply")
            .arg("--config")
            .arg(&self.config);
        match kubeconfig {
            Some((file, api_url)) => cmd
                .arg("--kubeconfig-out")
                .arg(file)
                .args(["--kubeconfig-api-address", api_url]),
            None => cmd,
        }
    }

    /// `k0sctl apply --config … [--restore-from FILE]` (see [`K0sctl::apply_cmd`] for
    /// `kubeconfig`), reporting each phase as it starts. k0sctl restores only onto
    /// controllers where k0s is not running yet, and skips the restore silently otherwise
    /// (k0sproject/k0sctl `phase/restore.go` lines 28-30).
    pub fn apply(
        &self,
        restore_from: Option<&Path>,
        kubeconfig: Option<(&Path, &str)>,
        mut on_phase: impl FnMut(&str),
    ) -> Result<()> {
        let mut cmd = self.apply_cmd(kubeconfig);
        if let Some(file) = restore_from {
            cmd = cmd.arg("--restore-from").arg(file);
        }
        cmd.stream(self.env, self.out, |line| {
            if let Some(p) = phase(line) {
                on_phase(p);
            }
        })
    }

    /// `k0sctl backup --output FILE`: k0s' backup of one controller (etcd snapshot or kine
    /// database, certificates, manifests), written as FILE (k0sproject/k0sctl `cmd/backup.go`
    /// lines 16-86, `phase/backup.go` lines 58-148).
    pub fn backup(&self, file: &Path) -> Result<()> {
        self.cmd("k0sctl backup")
            .arg("backup")
            .arg("--config")
            .arg(&self.config)
            .arg("--output")
            .arg(file)
            .stream(self.env, self.out, |_| {})
    }

    pub fn kubeconfig_cmd(&self, api_url: &str) -> Cmd {
        self.cmd("fetching the admin kubeconfig with k0sctl")
            .arg("kubeconfig")
            .arg("--config")
            .arg(&self.config)
            .args(["--address", api_url])
    }

    /// The admin kubeconfig, pointing at `api_url` (without `--address` k0sctl would point
    /// at a controller instead of the endpoint).
    pub fn kubeconfig(&self, api_url: &str) -> Result<String> {
        self.kubeconfig_cmd(api_url).output(self.env, self.out)
    }

    /// `k0sctl version` of the k0sctl at `path`.
    pub fn version(path: &Path, env: &Environment, out: &Output) -> Result<String> {
        Cmd::new(path, "asking k0sctl for its version")
            .arg("version")
            .output(env, out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn phases() {
        assert_eq!(
            super::phase(
                r#"time="2025-01-01T00:00:00Z" level=info msg="==> Running phase: Connect to hosts""#
            ),
            Some("Connect to hosts")
        );
        assert_eq!(
            super::phase("INFO ==> Running phase: Install workers"),
            Some("Install workers")
        );
        assert_eq!(super::phase("INFO [ssh] 10.0.0.1:22: connected"), None);
    }
}
