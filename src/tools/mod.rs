//! The tool adapters, the bottom of k0slab above `error`, `environment` and `output`: each
//! runs one external program with the arguments it is given and turns its output into values;
//! none knows what a lab is beyond the paths and names it is handed.
//!
//! - [`process`]: running a program (deadlines, interrupts, captured output).
//! - [`vagrant`], [`tart`], [`k0sctl`], [`kubectl`], [`softnet`]: one module per tool.
//! - [`host`]: what the host itself says (CPUs, memory, OS).
//! - this module: finding the tools, once.
//!
//! Each tool can be pointed at explicitly with an override variable (`K0SLAB_VAGRANT`, …);
//! otherwise it is looked up on the environment's PATH. A missing tool is an error that names
//! it and says how to install it.

pub mod curl;
pub mod host;
pub mod k0sctl;
pub mod kubectl;
pub mod process;
pub mod softnet;
pub mod tart;
pub mod vagrant;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::environment::Environment;
use crate::error::{Error, Result};

/// A tool k0slab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    Vagrant,
    K0sctl,
    Kubectl,
    Tart,
    /// Downloads release manifests for `kairos install`.
    Curl,
}

impl Tool {
    pub const ALL: [Tool; 5] = [
        Tool::Tart,
        Tool::Vagrant,
        Tool::K0sctl,
        Tool::Kubectl,
        Tool::Curl,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Vagrant => "vagrant",
            Tool::K0sctl => "k0sctl",
            Tool::Kubectl => "kubectl",
            Tool::Tart => "tart",
            Tool::Curl => "curl",
        }
    }

    /// The variable that overrides where the tool is.
    pub fn override_var(self) -> &'static str {
        match self {
            Tool::Vagrant => "K0SLAB_VAGRANT",
            Tool::K0sctl => "K0SLAB_K0SCTL",
            Tool::Kubectl => "K0SLAB_KUBECTL",
            Tool::Tart => "K0SLAB_TART",
            Tool::Curl => "K0SLAB_CURL",
        }
    }

    /// The oldest release k0slab works with, if it cares: vagrant-tart needs Vagrant 2.3;
    /// k0sctl learned `hostname` overrides and CPLB-aware config handling by v0.17. Tart:
    /// 2.10.0. `tart run --net-softnet-allow`, which the default network passes, came in 2.7.1
    /// (cirruslabs/tart commit ee27cc5, `Sources/tart/Commands/Run.swift`), but vagrant-tart
    /// 0.0.6 and newer (see [`crate::versions`]) also pass `--no-clipboard` unless `clipboard`
    /// is set (letiemble/vagrant-tart `lib/vagrant-tart/util/driver.rb` line 122), which Tart
    /// knows from 2.10.0 on (cirruslabs/tart commit 3ff3850); an older Tart refuses the option.
    pub fn minimum_version(self) -> Option<(u32, u32, u32)> {
        match self {
            Tool::Vagrant => Some((2, 3, 0)),
            Tool::K0sctl => Some((0, 17, 0)),
            Tool::Tart => Some((2, 10, 0)),
            Tool::Kubectl | Tool::Curl => None,
        }
    }

    /// The command k0slab runs to ask the tool for its version.
    pub fn version_command(self) -> &'static str {
        match self {
            Tool::Vagrant => "vagrant --version",
            Tool::K0sctl => "k0sctl version",
            Tool::Kubectl => "kubectl version --client",
            Tool::Tart => "tart --version",
            Tool::Curl => "curl --version",
        }
    }

    /// How to install the tool.
    pub fn install_hint(self) -> &'static str {
        match self {
            Tool::Vagrant => "brew install hashicorp/tap/hashicorp-vagrant",
            Tool::K0sctl => "brew install k0sproject/tap/k0sctl",
            Tool::Kubectl => "brew install kubectl",
            Tool::Tart => "brew install cirruslabs/cli/tart",
            Tool::Curl => "curl ships with macOS; elsewhere: brew install curl",
        }
    }

    /// How to replace an installed release that is too old.
    pub fn upgrade_hint(self) -> &'static str {
        match self {
            Tool::Tart => "brew upgrade cirruslabs/cli/tart",
            other => other.install_hint(),
        }
    }
}

/// What `tart --version` prints for a build from source: Tart prints the release tag that CI
/// substitutes into `CI.version`, else `SNAPSHOT` (cirruslabs/tart `Sources/tart/CI/CI.swift`
/// lines 2-6, `.ci/set-version.sh`, `Sources/tart/Root.swift` line 12).
pub const TART_SOURCE_BUILD: &str = "SNAPSHOT";

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first `major.minor.patch` in a tool's version output (`Vagrant 2.4.3`, `version: v0.25.1`).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    static VERSION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"v?(\d+)\.(\d+)\.(\d+)").expect("valid regex")
    });
    let c = VERSION.captures(text)?;
    Some((c[1].parse().ok()?, c[2].parse().ok()?, c[3].parse().ok()?))
}

/// Checks `output` (what the tool printed when asked for its version) against the tool's
/// minimum: an error when the version is older, or when the output holds no version number to
/// compare (a tool without a minimum is not checked).
pub fn check_version(tool: Tool, output: &str) -> Result<()> {
    let Some(min) = tool.minimum_version() else {
        return Ok(());
    };
    let shown = |v: (u32, u32, u32)| format!("{}.{}.{}", v.0, v.1, v.2);
    if tool == Tool::Tart && output.trim() == TART_SOURCE_BUILD {
        // A build from source has no release number to compare; whoever builds Tart from
        // source builds a recent one.
        return Ok(());
    }
    let Some(have) = parse_version(output) else {
        return Err(Error::Step(format!(
            "`{}` printed {:?}: no version number to check against the {} k0slab needs",
            tool.version_command(),
            printed(output),
            shown(min)
        )));
    };
    if have >= min {
        return Ok(());
    }
    Err(Error::Step(format!(
        "{tool} is too old: version {} is older than the {} k0slab needs; install a newer one \
         with: {}",
        shown(have),
        shown(min),
        tool.upgrade_hint()
    )))
}

/// A tool's output for a message: trimmed and at most 200 characters.
fn printed(output: &str) -> String {
    const MAX: usize = 200;
    let trimmed = output.trim();
    match trimmed.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &trimmed[..end]),
        None => trimmed.to_string(),
    }
}

/// Executable `name` on the `PATH` of `env` (k0slab's environment, not its own process's).
pub fn on_path(env: &Environment, name: &str) -> Option<PathBuf> {
    let path = env.get("PATH").unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    which::which_in(name, Some(path), cwd).ok()
}

/// Refuses an override variable (`K0SLAB_VAGRANT`, …) that names no executable, before
/// anything runs: otherwise it would be noticed only where the tool is first needed.
pub fn check_overrides(env: &Environment) -> std::result::Result<(), crate::error::InputError> {
    let path = env.get("PATH").unwrap_or_default().to_string();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    for tool in Tool::ALL {
        let Some(p) = env.get(tool.override_var()).filter(|v| !v.is_empty()) else {
            continue;
        };
        if which::which_in(p, Some(&path), &cwd).is_err() {
            return Err(crate::error::InputError::Invalid {
                origin: format!("environment variable {}", tool.override_var()),
                value: p.to_string(),
                allowed: format!(
                    "the path of an executable {} (unset it to use the {} on PATH)",
                    tool.name(),
                    tool.name()
                ),
            });
        }
    }
    Ok(())
}

/// Where each tool is, or why it is not there.
#[derive(Debug, Clone)]
pub struct Tools {
    found: BTreeMap<Tool, std::result::Result<PathBuf, String>>,
}

impl Tools {
    /// Looks every tool up once.
    pub fn find(env: &Environment) -> Self {
        let path = env.get("PATH").unwrap_or_default().to_string();
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let found = Tool::ALL
            .into_iter()
            .map(|tool| {
                let r = match env.get(tool.override_var()).filter(|v| !v.is_empty()) {
                    Some(p) => which::which_in(p, Some(&path), &cwd).map_err(|_| {
                        format!("{}={p} is not an executable file", tool.override_var())
                    }),
                    None => which::which_in(tool.name(), Some(&path), &cwd)
                        .map_err(|_| format!("{} is not on PATH", tool.name())),
                };
                (tool, r)
            })
            .collect();
        Self { found }
    }

    /// The path of `tool`, or a [`Error::ToolMissing`] naming it and how to install it.
    pub fn get(&self, tool: Tool) -> Result<&Path> {
        match &self.found[&tool] {
            Ok(p) => Ok(p),
            Err(reason) => Err(Error::ToolMissing {
                tool: tool.name(),
                reason: reason.clone(),
                hint: tool.install_hint(),
            }),
        }
    }

    /// Every tool that `tools` need and that is missing, as one error.
    pub fn require(&self, tools: &[Tool]) -> Result<()> {
        let missing: Vec<Error> = tools.iter().filter_map(|t| self.get(*t).err()).collect();
        match missing.len() {
            0 => Ok(()),
            1 => Err(missing.into_iter().next().expect("one error")),
            _ => Err(Error::ToolsMissing(
                missing
                    .iter()
                    .map(|e| format!("  - {e}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn executable(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn found_on_path_or_by_override() {
        let dir = tempfile::tempdir().unwrap();
        let vagrant = executable(dir.path(), "vagrant");
        let other = executable(dir.path(), "my-k0sctl");
        let env = Environment::from_pairs([
            ("PATH", dir.path().to_str().unwrap()),
            ("K0SLAB_K0SCTL", other.to_str().unwrap()),
        ]);
        let tools = Tools::find(&env);
        assert_eq!(tools.get(Tool::Vagrant).unwrap(), vagrant);
        assert_eq!(tools.get(Tool::K0sctl).unwrap(), other);
        let err = tools.get(Tool::Tart).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tart is needed but not found (tart is not on PATH); install it with: \
             brew install cirruslabs/cli/tart"
        );
        let err = tools.require(&[Tool::Tart, Tool::Kubectl]).unwrap_err();
        assert!(err.to_string().contains("brew install kubectl"), "{err}");
        assert!(tools.require(&[Tool::Vagrant, Tool::K0sctl]).is_ok());
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("Vagrant 2.4.3\n"), Some((2, 4, 3)));
        assert_eq!(
            parse_version("version: v0.25.1\ncommit: x"),
            Some((0, 25, 1))
        );
        assert!(check_version(Tool::Vagrant, "Vagrant 2.4.3").is_ok());
        assert!(check_version(Tool::Vagrant, "Vagrant 2.3.0").is_ok());
        let err = check_version(Tool::Vagrant, "Vagrant 2.2.19").unwrap_err();
        assert_eq!(
            err.to_string(),
            "vagrant is too old: version 2.2.19 is older than the 2.3.0 k0slab needs; install a \
             newer one with: brew install hashicorp/tap/hashicorp-vagrant"
        );
        assert!(!err.to_string().contains("not found"), "{err}");
        let err = check_version(Tool::K0sctl, "version: v0.16.0").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("k0sctl is too old: version 0.16.0 is older than the 0.17.0"),
            "{err}"
        );
        assert!(check_version(Tool::Tart, "2.10.0\n").is_ok());
        assert!(check_version(Tool::Tart, "2.32.1\n").is_ok());
        assert!(
            check_version(Tool::Tart, "SNAPSHOT\n").is_ok(),
            "a source build"
        );
        let err = check_version(Tool::Tart, "2.9.1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tart is too old: version 2.9.1 is older than the 2.10.0 k0slab needs; install a \
             newer one with: brew upgrade cirruslabs/cli/tart"
        );
        assert!(
            check_version(Tool::Kubectl, "no version here").is_ok(),
            "no minimum"
        );
        let err = check_version(Tool::Vagrant, "no version here\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`vagrant --version` printed \"no version here\": no version number to check \
             against the 2.3.0 k0slab needs"
        );
        let err = check_version(Tool::K0sctl, &"x".repeat(500)).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "`k0sctl version` printed \"{}…\"",
                "x".repeat(200)
            )),
            "{err}"
        );
    }

    #[test]
    fn a_bad_override_is_named() {
        let env =
            Environment::from_pairs([("PATH", "/nonexistent"), ("K0SLAB_VAGRANT", "/no/such")]);
        let err = Tools::find(&env).get(Tool::Vagrant).unwrap_err();
        assert!(err.to_string().contains("K0SLAB_VAGRANT=/no/such"), "{err}");
    }
}
