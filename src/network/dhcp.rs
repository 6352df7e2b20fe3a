//! Giving each lab VM its planned address through macOS' bootpd, which serves Tart's networks.
//!
//! Two files, one SIGHUP:
//! - **dhcpd_leases assigns.** One entry per VM, keyed by its client identifier (type 1 + its
//!   MAC), with the planned address and a finite lease ([`leases::with_assignments`]). bootpd
//!   offers a client the address of its entry (`bootpd.tproj/dhcpd.c` lines 752-800), so after
//!   the guest's DHCP client starts over the planned address *is* the VM's DHCP lease: the one
//!   address Softnet lets it use, and the one `tart ip` (and so Vagrant) reports.
//! - **bootptab reserves.** A block per lab binds each planned address to a placeholder MAC that
//!   no VM has, which keeps the address out of the dynamic pool for every other client
//!   (`dhcpd.c` line 364) without being offered to anyone. The VM's own MAC is never put in
//!   bootptab: bootpd serves such a binding with an infinite lease (`dhcpd.c` lines 724-736,
//!   778-780), and Softnet overflows on an infinite lease and drops all of the VM's traffic
//!   (cirruslabs/softnet `lib/dhcp_snooper.rs` line 86, coarsetime's unchecked `Instant + Duration`).
//!
//! bootpd reads both files again only after a SIGHUP, at its next packet, replacing its lease
//! table (`bootpd.c` lines 1121-1126 and 2349-2366, `dhcpd.c` lines 187-209), and bootptab only
//! when its modification time differs in whole seconds (`bootpdfile.c` lines 126-132). The files
//! and the signal need root. k0slab never runs `sudo` silently: as root it acts directly;
//! otherwise it says what it writes and why, then runs `sudo k0slab bootptab apply …` (which
//! prompts for the password on a terminal), and a non-interactive run without passwordless sudo
//! stops with that exact command.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::bootptab::{self, Binding, Mac};
use super::leases;
use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::output::Output;
use crate::process::{shell_quote, Cmd};

/// Where bootpd writes its process id (`bootpd.tproj/bootpd.c` lines 247-257).
pub const DEFAULT_PID_FILE: &str = "/var/run/bootpd.pid";
/// bootptab is readable by everyone, as macOS ships it.
const BOOTPTAB_MODE: u32 = 0o644;
/// As bootpd leaves its leases file.
const LEASES_MODE: u32 = 0o644;

/// The files bootpd uses: `K0SLAB_BOOTPTAB`, `K0SLAB_DHCP_LEASES` and `K0SLAB_BOOTPD_PID`
/// override them (tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paths {
    pub bootptab: PathBuf,
    pub leases: PathBuf,
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
            leases: pick("K0SLAB_DHCP_LEASES", leases::DEFAULT_PATH),
            pid_file: pick("K0SLAB_BOOTPD_PID", DEFAULT_PID_FILE),
        }
    }
}

/// What to do for a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edit {
    /// Reserve and assign each binding's address to its MAC.
    Assign(Vec<Binding>),
    /// Drop the lab's reservations and these MACs' leases.
    Release(Vec<Mac>),
}

/// One change to bootpd's files for a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub lab: String,
    pub edit: Edit,
    pub paths: Paths,
}

/// Both files' texts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Texts {
    bootptab: String,
    leases: String,
}

impl Change {
    fn read(&self) -> Result<Texts> {
        Ok(Texts {
            bootptab: read_text(&self.paths.bootptab)?,
            leases: read_text(&self.paths.leases)?,
        })
    }

    /// Whether the files already say what this change would write.
    fn holds(&self, current: &Texts) -> Result<bool> {
        let bootptab_same = self.bootptab_text(&current.bootptab)? == current.bootptab;
        let leases_same = match &self.edit {
            Edit::Assign(bindings) => {
                let all = leases::parse(&current.leases);
                bindings.iter().all(|b| {
                    let mine: Vec<_> = all.iter().filter(|l| l.mac == Some(b.mac)).collect();
                    mine.len() == 1 && mine[0].address == b.address
                })
            }
            Edit::Release(macs) => leases::without_macs(&current.leases, macs) == current.leases,
        };
        Ok(bootptab_same && leases_same)
    }

    fn bootptab_text(&self, current: &str) -> Result<String> {
        match &self.edit {
            Edit::Release(_) => Ok(bootptab::without_lab(current, &self.lab)),
            Edit::Assign(bindings) => {
                let reservations: Vec<Binding> = bindings
                    .iter()
                    .map(|b| Binding {
                        hostname: b.hostname.clone(),
                        mac: Mac::placeholder_for(b.address),
                        address: b.address,
                    })
                    .collect();
                bootptab::with_lab(current, &self.lab, &reservations).map_err(|clashes| {
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
                })
            }
        }
    }

    fn leases_text(&self, current: &str, now: u64) -> Result<String> {
        match &self.edit {
            Edit::Release(macs) => Ok(leases::without_macs(current, macs)),
            Edit::Assign(bindings) => {
                let assignments: Vec<_> = bindings
                    .iter()
                    .map(|b| (b.hostname.clone(), b.mac, b.address))
                    .collect();
                leases::with_assignments(current, &assignments, now).map_err(|taken| {
                    Error::Step(format!(
                        "the planned addresses of lab {} are in use on this host's network:\n  \
                         {}\nStop or delete that machine, or choose another K0SLAB_SUBNET",
                        self.lab,
                        taken
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("\n  ")
                    ))
                })
            }
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

/// Applies `change` with the rights this process has (root, in practice): rewrites each file
/// atomically when its text changes (bootptab with a modification time bootpd will notice),
/// then tells a running bootpd to read them again.
pub fn apply_directly(change: &Change) -> Result<Applied> {
    let current = change.read()?;
    if change.holds(&current)? {
        return Ok(Applied::Unchanged);
    }
    let bootptab_text = change.bootptab_text(&current.bootptab)?;
    let leases_text = change.leases_text(&current.leases, leases::now())?;
    if bootptab_text != current.bootptab {
        let path = &change.paths.bootptab;
        let before = modified(path);
        write_atomic(path, bootptab_text.as_bytes(), BOOTPTAB_MODE)?;
        bump_mtime(path, before)?;
    }
    if leases_text != current.leases {
        write_atomic(&change.paths.leases, leases_text.as_bytes(), LEASES_MODE)?;
    }
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
    let current = change.read()?;
    if change.holds(&current)? {
        return Ok(Applied::Unchanged);
    }
    // Refuse what root would refuse before asking for a password.
    change.bootptab_text(&current.bootptab)?;
    change.leases_text(&current.leases, leases::now())?;
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
    let what = match &change.edit {
        Edit::Assign(b) => format!(
            "assign {} address(es) of lab {} in {} and reserve them in {}",
            b.len(),
            change.lab,
            change.paths.leases.display(),
            change.paths.bootptab.display()
        ),
        Edit::Release(_) => format!(
            "remove lab {}'s lines from {} and {}",
            change.lab,
            change.paths.bootptab.display(),
            change.paths.leases.display()
        ),
    };
    if chosen == Route::Refuse {
        return Err(Error::Step(format!(
            "k0slab needs root to {what} ({why}), and this run cannot ask for a password. Run \
             once:\n  {command}\nthen run the same k0slab command again."
        )));
    }
    out.info(&format!(
        "k0slab needs root to {what} ({why}) and to tell bootpd to read them again; running:\n  {command}"
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
            "`k0slab bootptab apply` writes {} and {} and signals bootpd: run it with sudo",
            change.paths.bootptab.display(),
            change.paths.leases.display()
        )));
    }
    apply_directly(&change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(dir: &Path, edit: Edit) -> Change {
        Change {
            lab: "lab".into(),
            edit,
            paths: Paths {
                bootptab: dir.join("bootptab"),
                leases: dir.join("dhcpd_leases"),
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
    fn assign_reserves_with_a_placeholder_and_leases_to_the_real_mac() {
        let dir = tempfile::tempdir().unwrap();
        let users = "%%\nprinter 1 0:1:2:3:4:5 192.168.2.4\n";
        fs::write(dir.path().join("bootptab"), users).unwrap();
        let a = change(dir.path(), Edit::Assign(vec![binding("192.168.64.10")]));
        assert_eq!(
            apply_directly(&a).unwrap(),
            Applied::Written { signalled: false }
        );
        let bootptab_text = fs::read_to_string(dir.path().join("bootptab")).unwrap();
        let reserved = bootptab::entries(&bootptab_text);
        assert_eq!(reserved[1].address.to_string(), "192.168.64.10");
        assert_eq!(
            reserved[1].mac.to_string(),
            "02:6b:30:a8:40:0a",
            "never the VM's own MAC"
        );
        let leases_text = fs::read_to_string(dir.path().join("dhcpd_leases")).unwrap();
        let l = leases::parse(&leases_text);
        assert_eq!(
            (l.len(), l[0].address.to_string()),
            (1, "192.168.64.10".into())
        );
        assert!(l[0].expires.is_some(), "a finite lease");
        assert_eq!(apply_directly(&a).unwrap(), Applied::Unchanged);

        let t1 = whole_seconds(modified(&dir.path().join("bootptab")).unwrap());
        let moved = change(dir.path(), Edit::Assign(vec![binding("192.168.64.11")]));
        apply_directly(&moved).unwrap();
        assert_ne!(
            whole_seconds(modified(&dir.path().join("bootptab")).unwrap()),
            t1,
            "bootpd must see a new second"
        );
        let release = change(
            dir.path(),
            Edit::Release(vec!["7e:00:00:00:00:01".parse().unwrap()]),
        );
        apply_directly(&release).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("bootptab")).unwrap(),
            users
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("dhcpd_leases")).unwrap(),
            ""
        );
        assert_eq!(apply_directly(&release).unwrap(), Applied::Unchanged);
    }

    #[test]
    fn a_running_bootpd_is_signalled_and_a_stale_pid_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // sleep dies of SIGHUP: that is the proof it was signalled.
        fs::write(dir.path().join("bootpd.pid"), child.id().to_string()).unwrap();
        let applied = apply_directly(&change(
            dir.path(),
            Edit::Assign(vec![binding("192.168.64.10")]),
        ))
        .unwrap();
        assert_eq!(applied, Applied::Written { signalled: true });
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGHUP));
        fs::write(dir.path().join("bootpd.pid"), "999999999").unwrap();
        let applied = apply_directly(&change(
            dir.path(),
            Edit::Release(vec!["7e:00:00:00:00:01".parse().unwrap()]),
        ))
        .unwrap();
        assert_eq!(applied, Applied::Written { signalled: false });
    }
}
