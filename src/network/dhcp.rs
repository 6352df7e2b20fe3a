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
//! bootpd as it really runs (apple-oss-distributions/bootp bootp-494.60.3): launchd starts it
//! on demand (`bootpd.tproj/bootps.plist`, inetd-compatible) and it exits after five idle
//! minutes (`bootpd.c` lines 163, 1134-1169, 1311-1317), leaving `/var/run/bootpd.pid` behind
//! (written at line 1319, never removed): the pid in that file may by now be any other
//! process's. It reads both files at its first packet and after a SIGHUP at its next packet
//! (`bootpd.c` lines 227, 1121-1126, 2349-2366), bootptab only when its modification time
//! differs in whole seconds (`bootpdfile.c` lines 126-132). So k0slab signals only a process
//! whose executable is bootpd's; a bootpd that is not running needs no signal.
//!
//! **The root half** ([`helper`], `sudo k0slab bootptab apply`) takes no paths, pids or free
//! text from its caller: it reads one [`Change`] from standard input, refuses any field it does
//! not know, validates every value ([`Change::validate`]) before anything is written, and acts
//! only on the system's own files ([`Files::system`]); test overrides never reach it. k0slab
//! never runs `sudo` silently: as root it acts directly; otherwise it says what it writes and
//! why, then runs the helper through `sudo` (which prompts for the password on a terminal), and
//! a non-interactive run without passwordless sudo stops with that exact command.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use ipnet::Ipv4Net;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::bootpd_plist::{self, Served};
use super::bootptab::{self, Binding, Mac};
use super::leases;
use crate::environment::Environment;
use crate::error::{Error, InputError, Result};
use crate::fsutil::{write_atomic, write_atomic_if};
use crate::inputs::LabName;
use crate::output::Output;
use crate::tools::process::{shell_quote, Cmd};

/// Where bootpd writes its process id (`bootpd.tproj/bootpd.c` lines 247-257).
pub const DEFAULT_PID_FILE: &str = "/var/run/bootpd.pid";
/// bootpd's executable, as launchd starts it (`bootpd.tproj/bootps.plist`, ProgramArguments).
pub const BOOTPD_EXECUTABLE: &str = "/usr/libexec/bootpd";
/// bootptab is readable by everyone, as macOS ships it.
const BOOTPTAB_MODE: u32 = 0o644;
/// As bootpd leaves its leases file.
const LEASES_MODE: u32 = 0o644;
/// The most bindings one change may carry: 10 controllers, 80 workers, a load balancer.
pub const MAX_BINDINGS: usize = 91;
/// The most bytes the helper reads from standard input.
const MAX_INPUT_BYTES: u64 = 64 * 1024;

/// The files and the process bootpd uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub bootptab: PathBuf,
    pub leases: PathBuf,
    pub pid_file: PathBuf,
    /// The executable a process must run to be signalled as bootpd.
    pub bootpd: PathBuf,
    /// bootpd's configuration, with the subnets it serves.
    pub plist: PathBuf,
}

impl Files {
    /// macOS' own files: the only ones the root half ever touches.
    pub fn system() -> Self {
        Self {
            bootptab: PathBuf::from(bootptab::DEFAULT_PATH),
            leases: PathBuf::from(leases::DEFAULT_PATH),
            pid_file: PathBuf::from(DEFAULT_PID_FILE),
            bootpd: PathBuf::from(BOOTPD_EXECUTABLE),
            plist: PathBuf::from(bootpd_plist::DEFAULT_PATH),
        }
    }

    /// The files as this k0slab process sees them: `K0SLAB_BOOTPTAB`, `K0SLAB_DHCP_LEASES`,
    /// `K0SLAB_BOOTPD_PID`, `K0SLAB_BOOTPD_EXE` and `K0SLAB_BOOTPD_PLIST` override them (tests).
    /// Used for reading as the user and for writing when k0slab itself runs as root; never by
    /// [`helper`].
    pub fn from_env(env: &Environment) -> Self {
        let system = Self::system();
        let pick = |var: &str, default: PathBuf| {
            env.get(var)
                .filter(|p| !p.is_empty())
                .map_or(default, PathBuf::from)
        };
        Self {
            bootptab: pick("K0SLAB_BOOTPTAB", system.bootptab),
            leases: pick("K0SLAB_DHCP_LEASES", system.leases),
            pid_file: pick("K0SLAB_BOOTPD_PID", system.pid_file),
            bootpd: pick("K0SLAB_BOOTPD_EXE", system.bootpd),
            plist: pick("K0SLAB_BOOTPD_PLIST", system.plist),
        }
    }

    /// The subnets bootpd serves; `None` when its configuration cannot be read.
    pub fn served(&self) -> Option<Vec<Served>> {
        bootpd_plist::read(&self.plist)
    }
}

/// What to do for a lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Edit {
    /// Reserve and assign each binding's address to its MAC; every address lies inside the
    /// lab's subnet.
    Assign {
        subnet: Ipv4Net,
        bindings: Vec<Binding>,
        /// Every guest is at its address: the MACs' older entries go too (see
        /// [`leases::with_assignments`]).
        #[serde(default)]
        settled: bool,
    },
    /// Before the VMs boot: only reserve the addresses in bootptab, so that bootpd hands none
    /// of them to a booting VM as its first, dynamic lease (`dhcpd.c` `S_ipinuse`, lines
    /// 357-390, skips what bootptab names).
    Reserve {
        subnet: Ipv4Net,
        reservations: Vec<Reservation>,
    },
    /// Drop the lab's reservations and these MACs' leases.
    Release(Vec<Mac>),
}

/// An address a machine of the lab will get.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    pub hostname: String,
    pub address: std::net::Ipv4Addr,
}

/// One change to bootpd's files for a lab: what the root half reads on standard input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub lab: LabName,
    pub edit: Edit,
}

static DNS_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$").expect("valid regex"));

/// The first three bytes of every placeholder MAC ([`Mac::placeholder_for`]).
const PLACEHOLDER_PREFIX: [u8; 3] = [0x02, 0x6b, 0x30];

fn refuse(what: &str, value: impl std::fmt::Display, allowed: &str) -> InputError {
    InputError::Invalid {
        origin: format!("the bootpd change's {what}"),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

impl Change {
    /// Checks every field before anything is written: the lab name (a [`LabName`] already),
    /// the subnet (private, at most /24, one bootpd serves when `served` is known), each
    /// hostname (a DNS label `<lab>-…`), each MAC (a unicast address no placeholder has),
    /// each address (a host of the subnet, not the gateway, inside bootpd's range), and no
    /// hostname, MAC or address twice.
    pub fn validate(&self, served: Option<&[Served]>) -> std::result::Result<(), InputError> {
        let macs: Vec<Mac> = match &self.edit {
            Edit::Assign { bindings, .. } => bindings.iter().map(|b| b.mac).collect(),
            Edit::Reserve { .. } => Vec::new(),
            Edit::Release(macs) => macs.clone(),
        };
        if macs.len() > MAX_BINDINGS {
            return Err(refuse(
                "number of machines",
                macs.len(),
                &format!("at most {MAX_BINDINGS}"),
            ));
        }
        let mut seen_macs = BTreeSet::new();
        for mac in &macs {
            let o = mac.octets();
            if o[0] & 1 == 1 || o == [0; 6] || o[..3] == PLACEHOLDER_PREFIX {
                return Err(refuse(
                    "MAC",
                    mac,
                    "a unicast MAC address of a VM (not a multicast, zero or k0slab placeholder address)",
                ));
            }
            if !seen_macs.insert(*mac) {
                return Err(refuse("MAC", mac, "each MAC once"));
            }
        }
        // A release needs no subnet: it removes the lab's lines wherever bootpd serves now.
        let Some((subnet, bindings)) = self.addresses() else {
            return Ok(());
        };
        if bindings.len() > MAX_BINDINGS {
            return Err(refuse(
                "number of machines",
                bindings.len(),
                &format!("at most {MAX_BINDINGS}"),
            ));
        }
        let subnet = crate::inputs::lab_subnet(&subnet.to_string())
            .map_err(|allowed| refuse("subnet", subnet, &allowed))?;
        let range = match served {
            Some(served) => Some(bootpd_plist::serving(served, subnet).ok_or_else(|| {
                InputError::Rule(format!(
                    "bootpd serves {}, not the lab's subnet {subnet}: its addresses would be \
                     deleted from the leases file at the VMs' first request (bootp dhcpd.c)",
                    shown_served(served)
                ))
            })?),
            None => None,
        };
        let lab = self.lab.as_str();
        let gateway = crate::addresses::host(subnet, 1);
        let mut hostnames = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for b in &bindings {
            let machine = b
                .hostname
                .strip_prefix(lab)
                .and_then(|r| r.strip_prefix('-'));
            if !DNS_LABEL.is_match(&b.hostname) || machine.is_none_or(str::is_empty) {
                return Err(refuse(
                    "hostname",
                    format!("{:?}", b.hostname),
                    &format!(
                        "a DNS label of at most 63 characters (lower-case letters, digits and \
                         '-') that starts with the lab's name and '-', like {lab}-worker-1"
                    ),
                ));
            }
            if !hostnames.insert(b.hostname.as_str()) {
                return Err(refuse("hostname", &b.hostname, "each hostname once"));
            }
            let a = b.address;
            let host_of_subnet = subnet.contains(&a)
                && a != subnet.network()
                && a != subnet.broadcast()
                && Some(a) != gateway;
            if !host_of_subnet {
                return Err(refuse(
                    "address",
                    a,
                    &format!("a host address of the lab's subnet {subnet}, not its gateway"),
                ));
            }
            if let Some(range) = range.filter(|r| !r.keeps(a)) {
                return Err(refuse(
                    "address",
                    a,
                    &format!("an address inside the range bootpd serves, {range}"),
                ));
            }
            if !addresses.insert(a) {
                return Err(refuse("address", a, "each address once"));
            }
        }
        Ok(())
    }
}

impl Change {
    /// The subnet and the (hostname, address) pairs an assignment or reservation names.
    fn addresses(&self) -> Option<(&Ipv4Net, Vec<Reservation>)> {
        match &self.edit {
            Edit::Assign {
                subnet, bindings, ..
            } => Some((
                subnet,
                bindings
                    .iter()
                    .map(|b| Reservation {
                        hostname: b.hostname.clone(),
                        address: b.address,
                    })
                    .collect(),
            )),
            Edit::Reserve {
                subnet,
                reservations,
            } => Some((subnet, reservations.clone())),
            Edit::Release(_) => None,
        }
    }
}

/// The served subnets, for messages.
pub fn shown_served(served: &[Served]) -> String {
    if served.is_empty() {
        return "no subnet".into();
    }
    served
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Both files' texts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Texts {
    bootptab: String,
    leases: String,
}

impl Texts {
    fn read(files: &Files) -> Result<Texts> {
        Ok(Texts {
            bootptab: read_text(&files.bootptab)?,
            leases: read_text(&files.leases)?,
        })
    }
}

impl Change {
    /// Whether the files already say what this change would write.
    fn holds(&self, current: &Texts) -> Result<bool> {
        let bootptab_same = self.bootptab_text(&current.bootptab)? == current.bootptab;
        let leases_same = match &self.edit {
            Edit::Assign {
                bindings, settled, ..
            } => {
                let all = leases::parse(&current.leases);
                bindings.iter().all(|b| {
                    let mine: Vec<_> = all.iter().filter(|l| l.mac == Some(b.mac)).collect();
                    // bootpd finds the first entry of a client; settled, it is the only one.
                    mine.first().is_some_and(|l| l.address == b.address)
                        && (!settled || mine.len() == 1)
                })
            }
            Edit::Reserve { .. } => true,
            Edit::Release(macs) => leases::without_macs(&current.leases, macs) == current.leases,
        };
        Ok(bootptab_same && leases_same)
    }

    fn bootptab_text(&self, current: &str) -> Result<String> {
        let lab = self.lab.as_str();
        match &self.edit {
            Edit::Release(_) => Ok(bootptab::without_lab(current, lab)),
            Edit::Assign { .. } | Edit::Reserve { .. } => {
                let (_, named) = self.addresses().expect("an assignment names addresses");
                let reservations: Vec<Binding> = named
                    .into_iter()
                    .map(|r| Binding {
                        mac: Mac::placeholder_for(r.address),
                        hostname: r.hostname,
                        address: r.address,
                    })
                    .collect();
                bootptab::with_lab(current, lab, &reservations).map_err(|clashes| {
                    Error::Step(format!(
                        "cannot reserve the addresses of lab {lab} in bootptab:\n  {}\nRemove \
                         those lines (or destroy the lab that owns them), or choose another \
                         K0SLAB_SUBNET",
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
            Edit::Reserve { .. } => Ok(current.to_string()),
            Edit::Assign {
                bindings, settled, ..
            } => {
                let assignments: Vec<_> = bindings
                    .iter()
                    .map(|b| (b.hostname.clone(), b.mac, b.address))
                    .collect();
                leases::with_assignments(current, &assignments, now, *settled).map_err(|taken| {
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
    /// The files were rewritten; `signalled` says whether a running bootpd was told to re-read.
    Written { signalled: bool },
}

impl Applied {
    /// What happened, for a person.
    pub fn describe(self) -> &'static str {
        match self {
            Applied::Unchanged => "bootptab and the leases already say so",
            Applied::Written { signalled: true } => "written; bootpd was told to read them again",
            Applied::Written { signalled: false } => {
                "written; bootpd is not running and reads them when it starts"
            }
        }
    }
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

/// The executable process `pid` runs, if it can be told.
#[cfg(target_os = "linux")]
fn executable_of(pid: libc::pid_t) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The executable process `pid` runs, if it can be told (libproc's `proc_pidpath`).
#[cfg(target_os = "macos")]
fn executable_of(pid: libc::pid_t) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: the buffer is as long as the size passed; proc_pidpath writes at most that.
    let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
    if n <= 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn executable_of(_pid: libc::pid_t) -> Option<PathBuf> {
    None
}

/// The pid of the running bootpd: the pid file's, when that process's executable is bootpd's.
/// `None` when bootpd is not running (its pid file outlives it, and the pid may be another
/// process's by now).
pub fn running_bootpd(files: &Files) -> Option<libc::pid_t> {
    let pid = fs::read_to_string(&files.pid_file)
        .ok()?
        .trim()
        .parse::<libc::pid_t>()
        .ok()
        .filter(|p| *p > 1)?;
    let expected = fs::canonicalize(&files.bootpd).unwrap_or_else(|_| files.bootpd.clone());
    (executable_of(pid)? == expected).then_some(pid)
}

/// Sends SIGHUP to the running bootpd, if there is one. Returns whether one was signalled.
fn signal_bootpd(files: &Files) -> Result<bool> {
    let Some(pid) = running_bootpd(files) else {
        // Not running: launchd starts it at the next DHCP request, and it reads both files then.
        return Ok(false);
    };
    // SAFETY: kill(2) with a constant signal, to a process just seen running bootpd.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(Error::Step(format!(
            "could not tell bootpd (pid {pid}) to read bootptab again: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(true)
}

/// How often k0slab reads and edits the leases file again when bootpd rewrote it meanwhile.
const EDIT_ATTEMPTS: u32 = 10;

/// Applies `change` to `files` with the rights this process has (root, in practice):
/// rewrites each file atomically when its text changes (bootptab with a modification time
/// bootpd will notice), then tells a running bootpd to read them again. bootpd writes the
/// leases file too, whenever it grants a lease (`dhcpd.c` 1281-1284): the edit replaces the
/// file only if it still holds what k0slab read, so a lease bootpd granted meanwhile (another
/// client's entry) is never lost; otherwise it reads and edits again.
pub fn apply_directly(change: &Change, files: &Files) -> Result<Applied> {
    for _ in 0..EDIT_ATTEMPTS {
        let current = Texts::read(files)?;
        if change.holds(&current)? {
            return Ok(Applied::Unchanged);
        }
        let bootptab_text = change.bootptab_text(&current.bootptab)?;
        let leases_text = change.leases_text(&current.leases, leases::now())?;
        if bootptab_text != current.bootptab {
            let before = modified(&files.bootptab);
            write_atomic(&files.bootptab, bootptab_text.as_bytes(), BOOTPTAB_MODE)?;
            bump_mtime(&files.bootptab, before)?;
        }
        if leases_text != current.leases {
            let unchanged = || read_text(&files.leases).is_ok_and(|now| now == current.leases);
            let written = write_atomic_if(
                &files.leases,
                leases_text.as_bytes(),
                LEASES_MODE,
                unchanged,
            )?;
            if written.is_none() {
                continue; // bootpd granted a lease meanwhile: start from its file
            }
        }
        let signalled = signal_bootpd(files)?;
        return Ok(Applied::Written { signalled });
    }
    Err(Error::Step(format!(
        "bootpd rewrote {} each of the {EDIT_ATTEMPTS} times k0slab edited it; run the same \
         command again",
        files.leases.display()
    )))
}

/// Whether k0slab runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `sudo -n true` succeeds: sudo runs commands without asking for a password.
pub fn passwordless_sudo(env: &Environment, out: &Output) -> bool {
    which::which("sudo").is_ok_and(|sudo| {
        Cmd::new(&sudo, "checking for passwordless sudo")
            .args(["-n", "true"])
            .output(env, out)
            .is_ok()
    })
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

/// Applies `change`, explaining `why` before asking for root.
pub fn apply(env: &Environment, out: &Output, change: &Change, why: &str) -> Result<Applied> {
    let files = Files::from_env(env);
    // Refuse what root would refuse before asking for a password.
    change.validate(files.served().as_deref())?;
    // Two labs' edits of bootpd's files never interleave.
    crate::tools::host::with_lock(env, "bootpd.lock", || {
        apply_locked(env, out, change, why, &files)
    })
}

fn apply_locked(
    env: &Environment,
    out: &Output,
    change: &Change,
    why: &str,
    files: &Files,
) -> Result<Applied> {
    let current = Texts::read(files)?;
    if change.holds(&current)? {
        return Ok(Applied::Unchanged);
    }
    change.bootptab_text(&current.bootptab)?;
    change.leases_text(&current.leases, leases::now())?;
    let passwordless = || passwordless_sudo(env, out);
    let interactive = out.interactive() && std::io::IsTerminal::is_terminal(&std::io::stdin());
    let chosen = if is_root() {
        Route::Directly
    } else {
        route(false, passwordless(), interactive)
    };
    if chosen == Route::Directly {
        return apply_directly(change, files);
    }
    let json = serde_json::to_string(change).expect("a change serialises");
    let exe = std::env::current_exe().map_err(|e| Error::io("finding", "k0slab itself", e))?;
    let command = format!(
        "echo {} | sudo {} bootptab apply",
        shell_quote(&json),
        shell_quote(&exe.display().to_string()),
    );
    let what = match &change.edit {
        Edit::Assign { bindings: b, .. } => format!(
            "assign {} address(es) of lab {} in {} and reserve them in {}",
            b.len(),
            change.lab,
            leases::DEFAULT_PATH,
            bootptab::DEFAULT_PATH
        ),
        Edit::Reserve { reservations, .. } => format!(
            "reserve {} address(es) of lab {} in {} before its VMs boot",
            reservations.len(),
            change.lab,
            bootptab::DEFAULT_PATH
        ),
        Edit::Release(_) => format!(
            "remove lab {}'s lines from {} and {}",
            change.lab,
            bootptab::DEFAULT_PATH,
            leases::DEFAULT_PATH
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
    let status = Cmd::new(&sudo, "writing bootpd's files as root")
        .arg(exe)
        .args(["bootptab", "apply"])
        .interactive_with_input(env, out, json.as_bytes())?;
    if status == 0 {
        Ok(Applied::Written { signalled: true })
    } else {
        Err(Error::Step(format!(
            "`{command}` failed (exit {status}); run it yourself, then run k0slab again"
        )))
    }
}

/// `k0slab bootptab apply`: the root half of [`apply`]. Reads one change from `input`
/// (standard input), validates every field, and applies it to macOS' own files only.
pub fn helper(input: impl Read) -> Result<Applied> {
    let mut text = String::new();
    input
        .take(MAX_INPUT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| refuse("text", e, "UTF-8 JSON on standard input"))?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(refuse(
            "size",
            format!("more than {MAX_INPUT_BYTES} bytes"),
            &format!("at most {MAX_INPUT_BYTES} bytes"),
        )
        .into());
    }
    let change: Change = serde_json::from_str(&text).map_err(|e| {
        refuse(
            "JSON",
            crate::output::first_line(&e.to_string()),
            "{\"lab\": NAME, \"edit\": {\"assign\": {\"subnet\": CIDR, \"bindings\": \
             [{\"hostname\", \"mac\", \"address\"}, …]}} or {\"release\": [MAC, …]}}, and \
             no other field",
        )
    })?;
    let files = Files::system();
    change.validate(files.served().as_deref())?;
    if !is_root() {
        return Err(Error::Step(format!(
            "`k0slab bootptab apply` writes {} and {} and signals bootpd: run it with sudo",
            files.bootptab.display(),
            files.leases.display()
        )));
    }
    if !cfg!(target_os = "macos") {
        return Err(Error::Step(
            "bootpd is macOS' DHCP server and this host is not macOS: nothing was written".into(),
        ));
    }
    apply_directly(&change, &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Files {
        Files {
            bootptab: dir.join("bootptab"),
            leases: dir.join("dhcpd_leases"),
            pid_file: dir.join("bootpd.pid"),
            bootpd: PathBuf::from("/bin/sleep"),
            plist: dir.join("bootpd.plist"),
        }
    }

    fn lab() -> LabName {
        LabName::try_from("lab".to_string()).unwrap()
    }

    fn assign(bindings: Vec<Binding>) -> Change {
        Change {
            lab: lab(),
            edit: Edit::Assign {
                subnet: "192.168.64.0/24".parse().unwrap(),
                bindings,
                settled: true,
            },
        }
    }

    fn release(mac: &str) -> Change {
        Change {
            lab: lab(),
            edit: Edit::Release(vec![mac.parse().unwrap()]),
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
    fn the_root_half_acts_only_on_the_systems_files() {
        assert_eq!(
            Files::system(),
            Files {
                bootptab: "/etc/bootptab".into(),
                leases: "/var/db/dhcpd_leases".into(),
                pid_file: "/var/run/bootpd.pid".into(),
                bootpd: "/usr/libexec/bootpd".into(),
                plist: "/etc/bootpd.plist".into(),
            }
        );
    }

    #[test]
    fn hostile_changes_are_refused_field_by_field() {
        let served = bootpd_plist::parse(
            &plist::Value::from_reader_xml(
                bootpd_plist::example("192.168.64.0/24".parse().unwrap()).as_bytes(),
            )
            .unwrap(),
        );
        let ok = assign(vec![binding("192.168.64.10")]);
        assert_eq!(ok.validate(Some(&served)), Ok(()));
        assert_eq!(ok.validate(None), Ok(()));
        let with = |f: &dyn Fn(&mut Binding)| {
            let mut b = binding("192.168.64.10");
            f(&mut b);
            assign(vec![b])
        };
        let refused = [
            (
                with(&|b| b.hostname = "lab-worker-1\n%%\nevil 1 0:1:2:3:4:5 1.2.3.4".into()),
                "hostname",
            ),
            (with(&|b| b.hostname = "lab-worker%1".into()), "hostname"),
            (with(&|b| b.hostname = "other-worker-1".into()), "hostname"),
            (with(&|b| b.hostname = "lab-".into()), "hostname"),
            (with(&|b| b.hostname = "lab".into()), "hostname"),
            (
                with(&|b| b.hostname = format!("lab-{}", "w".repeat(70))),
                "hostname",
            ),
            (
                with(&|b| b.address = "192.168.65.10".parse().unwrap()),
                "address",
            ),
            (
                with(&|b| b.address = "192.168.64.1".parse().unwrap()),
                "address",
            ),
            (
                with(&|b| b.address = "192.168.64.255".parse().unwrap()),
                "address",
            ),
            (with(&|b| b.address = "8.8.8.8".parse().unwrap()), "address"),
            (
                with(&|b| b.mac = "ff:ff:ff:ff:ff:ff".parse().unwrap()),
                "MAC",
            ),
            (
                with(&|b| b.mac = "01:00:5e:00:00:01".parse().unwrap()),
                "MAC",
            ),
            (
                with(&|b| b.mac = "00:00:00:00:00:00".parse().unwrap()),
                "MAC",
            ),
            (with(&|b| b.mac = Mac::placeholder_for(b.address)), "MAC"),
            (
                assign(vec![binding("192.168.64.10"), {
                    let mut b = binding("192.168.64.11");
                    b.hostname = "lab-worker-1".into();
                    b
                }]),
                "MAC",
            ),
            (
                Change {
                    lab: lab(),
                    edit: Edit::Assign {
                        subnet: "8.8.8.0/24".parse().unwrap(),
                        bindings: vec![binding("8.8.8.10")],
                        settled: true,
                    },
                },
                "subnet",
            ),
            (
                Change {
                    lab: lab(),
                    edit: Edit::Assign {
                        subnet: "192.168.64.0/28".parse().unwrap(),
                        bindings: vec![binding("192.168.64.10")],
                        settled: true,
                    },
                },
                "subnet",
            ),
        ];
        for (change, field) in refused {
            let err = change.validate(Some(&served)).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("bootpd change's {field}")),
                "{change:?}: {err}"
            );
        }
        // A subnet bootpd does not serve, and an address outside its range.
        let other = assign(vec![binding("192.168.64.10")]);
        let served_65 = bootpd_plist::parse(
            &plist::Value::from_reader_xml(
                bootpd_plist::example("192.168.65.0/24".parse().unwrap()).as_bytes(),
            )
            .unwrap(),
        );
        let err = other.validate(Some(&served_65)).unwrap_err().to_string();
        assert!(err.contains("bootpd serves 192.168.65.0/24"), "{err}");
        assert!(err.contains("192.168.64.0/24"), "{err}");
        let mut narrow = served.clone();
        narrow[0].first = "192.168.64.50".parse().unwrap();
        let err = other.validate(Some(&narrow)).unwrap_err().to_string();
        assert!(err.contains("inside the range bootpd serves"), "{err}");
        // Releasing is refused for bad MACs only: it needs no subnet.
        assert!(release("7e:00:00:00:00:01")
            .validate(Some(&served_65))
            .is_ok());
        assert!(release("03:00:00:00:00:01").validate(None).is_err());
    }

    #[test]
    fn unknown_fields_paths_and_pids_are_refused_before_anything_is_read() {
        for text in [
            r#"{"lab":"lab","edit":{"release":[]},"paths":{"bootptab":"/tmp/x"}}"#,
            r#"{"lab":"lab","edit":{"release":[]},"pid":1}"#,
            r#"{"lab":"lab","edit":{"assign":{"subnet":"192.168.64.0/24","bindings":[{"hostname":"lab-w","mac":"7e:0:0:0:0:1","address":"192.168.64.10","file":"/etc/passwd"}]}}}"#,
            r#"{"lab":"Lab\n","edit":{"release":[]}}"#,
            r#"{"lab":"lab","edit":{"release":["7e:0:0:0:0:1\n"]}}"#,
            "",
            "not json",
        ] {
            let err = helper(text.as_bytes()).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{text}: {err}");
        }
        let big = format!(
            r#"{{"lab":"lab","edit":{{"release":[]}},"x":"{}"}}"#,
            "a".repeat(70_000)
        );
        assert_eq!(helper(big.as_bytes()).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn assign_reserves_with_a_placeholder_and_leases_to_the_real_mac() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let users = "%%\nprinter 1 0:1:2:3:4:5 192.168.2.4\n";
        fs::write(&f.bootptab, users).unwrap();
        let a = assign(vec![binding("192.168.64.10")]);
        assert_eq!(
            apply_directly(&a, &f).unwrap(),
            Applied::Written { signalled: false }
        );
        let bootptab_text = fs::read_to_string(&f.bootptab).unwrap();
        let reserved = bootptab::entries(&bootptab_text);
        assert_eq!(reserved[1].address.to_string(), "192.168.64.10");
        assert_eq!(
            reserved[1].mac.to_string(),
            "02:6b:30:a8:40:0a",
            "never the VM's own MAC"
        );
        let leases_text = fs::read_to_string(&f.leases).unwrap();
        let l = leases::parse(&leases_text);
        assert_eq!(
            (l.len(), l[0].address.to_string()),
            (1, "192.168.64.10".into())
        );
        assert!(l[0].expires.is_some(), "a finite lease");
        assert_eq!(apply_directly(&a, &f).unwrap(), Applied::Unchanged);

        let t1 = whole_seconds(modified(&f.bootptab).unwrap());
        let moved = assign(vec![binding("192.168.64.11")]);
        apply_directly(&moved, &f).unwrap();
        assert_ne!(
            whole_seconds(modified(&f.bootptab).unwrap()),
            t1,
            "bootpd must see a new second"
        );
        let r = release("7e:00:00:00:00:01");
        apply_directly(&r, &f).unwrap();
        assert_eq!(fs::read_to_string(&f.bootptab).unwrap(), users);
        assert_eq!(fs::read_to_string(&f.leases).unwrap(), "");
        assert_eq!(apply_directly(&r, &f).unwrap(), Applied::Unchanged);
    }

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap()
    }

    #[test]
    fn only_a_process_running_bootpds_executable_is_signalled() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        // "bootpd" here is sleep (which dies of SIGHUP: the proof it was signalled).
        let mut f = files(dir.path());
        f.bootpd = which::which("sleep").unwrap();
        let mut bootpd = sleeper();
        fs::write(&f.pid_file, format!("{}\n", bootpd.id())).unwrap();
        assert_eq!(running_bootpd(&f), Some(bootpd.id() as libc::pid_t));
        let applied = apply_directly(&assign(vec![binding("192.168.64.10")]), &f).unwrap();
        assert_eq!(applied, Applied::Written { signalled: true });
        assert_eq!(bootpd.wait().unwrap().signal(), Some(libc::SIGHUP));

        // bootpd exited when idle and its pid now belongs to another program: no signal.
        f.bootpd = PathBuf::from(BOOTPD_EXECUTABLE);
        let mut stranger = sleeper();
        fs::write(&f.pid_file, format!("{}\n", stranger.id())).unwrap();
        assert_eq!(running_bootpd(&f), None);
        let applied = apply_directly(&release("7e:00:00:00:00:01"), &f).unwrap();
        assert_eq!(applied, Applied::Written { signalled: false });
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "the stranger lives on"
        );
        stranger.kill().unwrap();
        stranger.wait().unwrap();

        for stale in ["999999999", "1", "0", "-1", "x"] {
            fs::write(&f.pid_file, stale).unwrap();
            assert_eq!(running_bootpd(&f), None, "{stale}");
        }
    }
}
