//! Softnet's one-time set-up. Softnet needs root for vmnet: Tart accepts a `softnet` that is
//! owned by root with the SUID bit, or one that `sudo -n` runs without a password
//! (cirruslabs/tart `Sources/tart/Network/Softnet.swift` lines 107-132). Tart offers to set the
//! bit itself only when its output is a terminal (`Run.swift` lines 386-388); under Vagrant it
//! is not, and Softnet then fails with "root privileges are required to run and passwordless
//! sudo was not available" (cirruslabs/softnet `src/main.rs` lines 170-192), so k0slab checks
//! first and says how to fix it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use crate::environment::Environment;
use crate::output::Output;
use crate::tools::process::Cmd;

/// The command that sets Softnet up once.
pub const SETUP_HINT: &str =
    "brew install cirruslabs/cli/softnet, then once: sudo chown root \"$(which softnet)\" && sudo chmod u+s \"$(which softnet)\"";

/// `softnet` on the PATH of `env`.
pub fn find(env: &Environment) -> Option<PathBuf> {
    crate::tools::on_path(env, "softnet")
}

/// Whether Softnet can run under Tart; the problem otherwise.
pub fn check(env: &Environment, out: &Output) -> Result<PathBuf, String> {
    let path = find(env).ok_or_else(|| "softnet is not on PATH".to_string())?;
    let resolved = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let meta = std::fs::metadata(&resolved).map_err(|e| format!("{}: {e}", resolved.display()))?;
    if meta.uid() == 0 && meta.permissions().mode() & 0o4000 != 0 {
        return Ok(path);
    }
    let passwordless = which::which("sudo").is_ok_and(|sudo| {
        Cmd::new(&sudo, "checking that sudo runs softnet without a password")
            .args(["-n"])
            .arg(&resolved)
            .arg("--help")
            .output(env, out)
            .is_ok()
    });
    if passwordless {
        Ok(path)
    } else {
        Err(format!(
            "{} is not owned by root with the SUID bit, and sudo does not run it without a \
             password; Tart cannot start it for VMs started by Vagrant",
            resolved.display()
        ))
    }
}
