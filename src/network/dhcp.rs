//! Reserving the lab's addresses in bootptab and making macOS' bootpd read them.
//!
//! bootpd reads `/etc/bootptab` again only after a SIGHUP (or when it starts), and then only
//! when the file's modification time differs, in whole seconds, from the last read
//! (apple-oss-distributions/bootp `bootpd.tproj/bootpd.c` lines 227, 1121-1126 and 2349-2350;
//! `bootpd.tproj/bootpdfile.c` lines 126-132). Both the file and the signal need root. k0slab
//! never runs `sudo` silently: as root it acts directly; otherwise it says what it writes and
//! why, then runs `sudo k0slab bootptab apply …` (which prompts for the password on a terminal),
//! and a non-interactive run without passwordless sudo stops with that exact command.
//!
//! Deleting bootptab would not drop the bindings (bootpd keeps the old table when it cannot open
//! the file, `bootpdfile.c` lines 122-125), so a lab's block is removed by rewriting the file.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::bootptab::{self, Binding};
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::output::Output;
use crate::process::{shell_quote, Cmd};

/// Where bootpd writes its process id (`bootpd.tproj/bootpd.c` lines 247-257).
pub const DEFAULT_PID_FILE: &str = "/var/run/bootpd.pid";
/// bootptab is readable by everyone, as macOS ships it.
const BOOTPTAB_MODE: u32 = 0o644;

/// The files bootpd uses: `K0SLAB_BOOTPTAB` and `K0SLAB_BOOTPD_PID` override them (tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paths {
    pub bootptab: PathBuf,
    pub pid_file: PathBuf,
}

impl Paths {
    pub fn from_env(env: &Environment) -> Self {
        let pick = |var: &str, default: &str| {
            env.get(var)
                .filter(|p| !p.is_empty())
                .map_or_else(|| PathBuf::from(default), PathBuf::from)
        };
        Self {
            bootptab: pick("K0SLAB_BOOTPTAB", bootptab::DEFAULT_PATH),
            pid_file: pick("K0SLAB_BOOTPD_PID", DEFAULT_PID_FILE),
        }
    }
}

/// One change to bootptab: a lab's block set to these bindings, or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub lab: String,
    pub bindings: Option<Vec<Binding>>,
    pub paths: Paths,
}

impl Change {
    /// The file's new text, from its current text.
    fn edit(&self, current: &str) -> Result<String> {
        match &self.bindings {
            None => Ok(bootptab::without_lab(current, &self.lab)),
            Some(bindings) => bootptab::with_lab(current, &self.lab, bindings).map_err(|clashes| {
                Error::Step(format!(
                    "cannot reserve the addresses of lab {} in {}:\n  {}\nRemove those \
                         lines (or destroy the lab that owns them), or choose another \
                         K0SLAB_SUBNET",
                    self.lab,
                    self.paths.bootptab.display(),
                    clashes
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n  ")
                ))
            }),
        }
    }
}

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The file already said so.
    Unchanged,
    /// The file was rewritten; `signalled` says whether a running bootpd was told to re-read.
    Written { signalled: bool },
}

fn read_text(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Makes sure bootpd sees a new modification time: it compares whole seconds, so a second
/// write within the same second would go unnoticed.
fn bump_mtime(path: &Path, before: Option<SystemTime>) -> Result<()> {
    let (Some(before), Some(now)) = (before, modified(path)) else {
        return Ok(());
    };
    if whole_seconds(now) != whole_seconds(before) {
        return Ok(());
    }
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(whole_seconds(before) + 1);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(later))
        .map_err(|e| Error::io("setting the modification time of", path, e))
}

/// Sends SIGHUP to the running bootpd, if there is one. Returns whether one was signalled.
fn signal_bootpd(pid_file: &Path) -> Result<bool> {
    let Ok(text) = fs::read_to_string(pid_file) else {
        // Not running: launchd starts it on the next DHCP request, and it reads bootptab then.
        return Ok(false);
    };
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return Ok(false);
    };
    if pid <= 1 {
        return Ok(false);
    }
    // SAFETY: kill(2) with a pid read from bootpd's own pid file and a constant signal.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return Ok(false);
    }
    // SAFETY: as above.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(Error::Step(format!(
            "could not tell bootpd (pid {pid}) to read bootptab again: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(true)
}

/// Applies `change` with the rights this process has (root, in practice): rewrites bootptab
/// atomically when its text changes, with a modification time bootpd will notice, and tells a
/// running bootpd to read it again.
pub fn apply_directly(change: &Change) -> Result<Applied> {
    let path = &change.paths.bootptab;
    let current = read_text(path)?;
    let new = change.edit(&current)?;
    if new == current {
        return Ok(Applied::Unchanged);
    }
    let before = modified(path);
    write_atomic(path, new.as_bytes(), BOOTPTAB_MODE)?;
    bump_mtime(path, before)?;
    let signalled = signal_bootpd(&change.paths.pid_file)?;
    Ok(Applied::Written { signalled })
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// How a change gets the rights it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// k0slab runs as root.
    Directly,
    /// Through `sudo` (which asks for the password on the terminal, or needs none).
    Sudo,
    /// Nobody can be asked: stop and show the command.
    Refuse,
}

/// Chooses the route: root acts directly; otherwise sudo when it needs no password or a
/// person is at the terminal to type one; otherwise refuse.
pub fn route(root: bool, passwordless_sudo: bool, interactive: bool) -> Route {
    if root {
        Route::Directly
    } else if passwordless_sudo || interactive {
        Route::Sudo
    } else {
        Route::Refuse
    }
}

/// Applies `change`, explaining `why` before asking for root. `staged` is where the change is
/// written for the root process to read (inside the lab directory).
pub fn apply(
    env: &Environment,
    out: &Output,
    change: &Change,
    why: &str,
    staged: &Path,
) -> Result<Applied> {
    let current = read_text(&change.paths.bootptab)?;
    if change.edit(&current)? == current {
        return Ok(Applied::Unchanged);
    }
    let passwordless = || {
        which::which("sudo").is_ok_and(|sudo| {
            Cmd::new(&sudo, "checking for passwordless sudo")
                .args(["-n", "true"])
                .output(env, out)
                .is_ok()
        })
    };
    let interactive = out.interactive() && std::io::IsTerminal::is_terminal(&std::io::stdin());
    let chosen = if is_root() {
        Route::Directly
    } else {
        route(false, passwordless(), interactive)
    };
    if chosen == Route::Directly {
        return apply_directly(change);
    }
    let json = serde_json::to_string_pretty(change).expect("a change serialises");
    write_atomic(staged, json.as_bytes(), crate::render::MODE_PRIVATE)?;
    let exe = std::env::current_exe().map_err(|e| Error::io("finding", "k0slab itself", e))?;
    let command = format!(
        "sudo {} bootptab apply {}",
        shell_quote(&exe.display().to_string()),
        shell_quote(&staged.display().to_string())
    );
    let what = match &change.bindings {
        Some(b) => format!(
            "reserve {} address(es) for lab {} in {}",
            b.len(),
            change.lab,
            change.paths.bootptab.display()
        ),
        None => format!(
            "remove lab {}'s lines from {}",
            change.lab,
            change.paths.bootptab.display()
        ),
    };
    if chosen == Route::Refuse {
        return Err(Error::Step(format!(
            "k0slab needs root to {what} ({why}), and this run cannot ask for a password. Run \
             once:\n  {command}\nthen run the same k0slab command again."
        )));
    }
    out.info(&format!(
        "k0slab needs root to {what} ({why}) and to tell bootpd to read it again; running:\n  {command}"
    ));
    let sudo = which::which("sudo").map_err(|_| Error::ToolMissing {
        tool: "sudo",
        reason: "not on PATH".into(),
        hint: "it ships with macOS",
    })?;
    let status = Cmd::new(&sudo, "writing bootptab as root")
        .arg(exe)
        .args(["bootptab", "apply"])
        .arg(staged)
        .interactive(env, out)?;
    let _ = fs::remove_file(staged);
    if status == 0 {
        Ok(Applied::Written { signalled: true })
    } else {
        Err(Error::Step(format!(
            "`{command}` failed (exit {status}); run it yourself, then run k0slab again"
        )))
    }
}

/// `k0slab bootptab apply FILE`: the root half of [`apply`].
pub fn apply_staged(staged: &Path) -> Result<Applied> {
    let text = fs::read_to_string(staged).map_err(|e| Error::io("reading", staged, e))?;
    let change: Change = serde_json::from_str(&text).map_err(|e| Error::LabFile {
        path: staged.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !is_root() {
        return Err(Error::Step(format!(
            "`k0slab bootptab apply` writes {} and signals bootpd: run it with sudo",
            change.paths.bootptab.display()
        )));
    }
    apply_directly(&change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(dir: &Path, bindings: Option<Vec<Binding>>) -> Change {
        Change {
            lab: "lab".into(),
            bindings,
            paths: Paths {
                bootptab: dir.join("bootptab"),
                pid_file: dir.join("bootpd.pid"),
            },
        }
    }

    fn binding(ip: &str) -> Binding {
        Binding {
            hostname: "lab-control-plane-1".into(),
            mac: "7e:00:00:00:00:01".parse().unwrap(),
            address: ip.parse().unwrap(),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route(true, false, false), Route::Directly);
        assert_eq!(route(false, true, false), Route::Sudo);
        assert_eq!(route(false, false, true), Route::Sudo);
        assert_eq!(route(false, false, false), Route::Refuse);
    }

    #[test]
    fn direct_writes_change_the_mtime_second_and_keep_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootptab");
        fs::write(&path, "%%\nprinter 1 0:1:2:3:4:5 192.168.2.4\n").unwrap();
        let first =
            apply_directly(&change(dir.path(), Some(vec![binding("192.168.64.10")]))).unwrap();
        assert_eq!(first, Applied::Written { signalled: false });
        let t1 = whole_seconds(modified(&path).unwrap());
        let second =
            apply_directly(&change(dir.path(), Some(vec![binding("192.168.64.11")]))).unwrap();
        assert_eq!(second, Applied::Written { signalled: false });
        assert_ne!(
            whole_seconds(modified(&path).unwrap()),
            t1,
            "bootpd must see a new second"
        );
        assert_eq!(
            apply_directly(&change(dir.path(), Some(vec![binding("192.168.64.11")]))).unwrap(),
            Applied::Unchanged
        );
        apply_directly(&change(dir.path(), None)).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "%%\nprinter 1 0:1:2:3:4:5 192.168.2.4\n"
        );
    }

    #[test]
    fn a_running_bootpd_is_signalled_and_a_stale_pid_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // A child that ignores nothing dies of SIGHUP: that is the proof it was signalled.
        fs::write(dir.path().join("bootpd.pid"), child.id().to_string()).unwrap();
        let applied =
            apply_directly(&change(dir.path(), Some(vec![binding("192.168.64.10")]))).unwrap();
        assert_eq!(applied, Applied::Written { signalled: true });
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGHUP));
        fs::write(dir.path().join("bootpd.pid"), "999999999").unwrap();
        let applied = apply_directly(&change(dir.path(), None)).unwrap();
        assert_eq!(applied, Applied::Written { signalled: false });
    }
}
