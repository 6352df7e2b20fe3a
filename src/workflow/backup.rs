//! The backup and restore steps: k0sctl's backup of the cluster into
//! `<lab>/backups/`, and a fresh lab brought up from one with `k0sctl apply --restore-from`.
//!
//! k0sctl backs up one controller (the first with a running k0s) with `k0s backup`: an etcd
//! snapshot (served from the member's own backend, so it works without quorum) or the kine
//! database, plus certificates and manifests (k0sproject/k0sctl `phase/backup.go` lines 58-148;
//! k0sproject/k0s `pkg/backup/etcd_unix.go` lines 44-62). It restores only onto controllers
//! where k0s does not run yet, and silently skips the restore otherwise (`phase/restore.go`
//! lines 28-30): so `restore` wants a lab that was never applied, e.g. after `destroy`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::workflow::context::Context;
use serde::{Deserialize, Serialize};

use crate::error::{Error, InputError, Result};
use crate::inputs::{self, Flags, Inputs, Key, LabName};
use crate::lab::files::{BACKUPS, BACKUP_RECORD_SUFFIX as RECORD_SUFFIX};

/// The settings that make a lab's shape: a backup is restored only into a lab of the same
/// shape. The others (resources, image, subnet, network, version) come from the backup's lab
/// unless given.
const SHAPE: [Key; 4] = [
    Key::ControlPlaneCount,
    Key::WorkerCount,
    Key::Endpoint,
    Key::ControllerWorkloads,
];

/// What k0slab keeps beside a backup: the inputs of the lab it was taken of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupRecord {
    pub schema: u32,
    /// The k0slab version that took the backup.
    pub k0slab_version: String,
    /// The lab's inputs when the backup was taken.
    pub inputs: Inputs,
}

/// The record beside backup `file`.
pub fn record_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(RECORD_SUFFIX);
    PathBuf::from(name)
}

/// `2026-11-22T23-40-05Z` for a file name.
fn stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}-{m:02}-{s:02}Z")
}

/// Takes a backup into `<lab>/backups/`; returns its path.
pub fn take(ctx: &Context<'_>, record: &crate::lab::record::LabRecord) -> Result<PathBuf> {
    if !ctx.dir.join(crate::lab::files::KUBECONFIG).is_file() {
        return Err(Error::Step(format!(
            "lab {} was never applied: there is no cluster to back up (`k0slab up` first)",
            record.name()
        )));
    }
    let dir = ctx.dir.join(BACKUPS);
    fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("setting the mode of", &dir, e))?;
    let file = dir.join(format!("{}-{}.tar.gz", record.name(), stamp()));
    let k0sctl = ctx.k0sctl()?;
    ctx.out
        .progress("k0sctl backup: one controller's etcd snapshot, certificates and manifests");
    k0sctl.backup(&file)?;
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("setting the mode of", &file, e))?;
    let mut json = serde_json::to_string_pretty(&BackupRecord {
        schema: crate::lab::record::SCHEMA,
        k0slab_version: crate::environment::VERSION.to_string(),
        inputs: record.inputs.clone(),
    })
    .expect("the record serialises");
    json.push('\n');
    crate::fsutil::write_atomic(&record_path(&file), json.as_bytes(), 0o600)?;
    Ok(file)
}

/// The backup must be a gzip file k0slab can read (k0s writes `.tar.gz`).
fn check_archive(file: &Path) -> std::result::Result<(), InputError> {
    let bad = |why: String| InputError::Invalid {
        origin: "the backup to restore".into(),
        value: file.display().to_string(),
        allowed: format!("a k0sctl backup (.tar.gz) that can be read: {why}"),
    };
    let mut magic = [0u8; 2];
    fs::File::open(file)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(|e| bad(e.to_string()))?;
    if magic == [0x1f, 0x8b] {
        Ok(())
    } else {
        Err(bad("it is not gzip-compressed".into()))
    }
}

/// The record beside backup `file`: `None` when there is none (a backup of k0slab 0.1.0).
fn read_backup_record(file: &Path) -> std::result::Result<Option<BackupRecord>, InputError> {
    let path = record_path(file);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(InputError::Rule(format!("{}: {e}", path.display()))),
    };
    serde_json::from_str::<BackupRecord>(&text)
        .ok()
        .filter(|r| r.schema == crate::lab::record::SCHEMA)
        .map(Some)
        .ok_or_else(|| {
            InputError::Rule(format!(
                "{} is not a record of a backup this k0slab can read; give the lab's settings \
                 as when it was created and move the record away",
                path.display()
            ))
        })
}

/// Every setting of `inputs` as a flag, so that `up` makes exactly that lab whatever the
/// environment says (the environment was compared with the backup's lab before).
fn pinned(inputs: &Inputs) -> Flags {
    let mut flags = Flags::default();
    for key in Key::ALL {
        let value = match key {
            Key::ControlPlaneCount => inputs.control_plane_count.to_string(),
            Key::WorkerCount => inputs.worker_count.to_string(),
            Key::MemoryControl => inputs.memory_control.to_string(),
            Key::MemoryWorker => inputs.memory_worker.to_string(),
            Key::CpuControl => inputs.cpu_control.to_string(),
            Key::CpuWorker => inputs.cpu_worker.to_string(),
            Key::DiskSize => inputs.disk_size.to_string(),
            Key::Name => inputs.name.to_string(),
            Key::Subnet => inputs.subnet.to_string(),
            Key::Network => inputs.network.to_string(),
            Key::Endpoint => inputs.endpoint.to_string(),
            Key::EndpointIp => match inputs.endpoint_ip {
                Some(ip) => ip.to_string(),
                None => continue,
            },
            Key::Image => inputs.image.clone(),
            Key::Provider => inputs.provider.to_string(),
            Key::K0sVersion => inputs
                .k0s_version
                .as_ref()
                .map_or_else(String::new, |v| v.as_str().to_string()),
            Key::ControllerWorkloads => inputs.controller_workloads.to_string(),
            Key::Nested => inputs.nested.to_string(),
        };
        flags.0.insert(key, value);
    }
    flags
}

/// The settings to restore `file` with: the backup's lab, with what is given instead; a given
/// setting of another shape is refused. A backup without k0slab's record (k0slab 0.1.0) needs
/// at least the counts given.
fn restore_flags(ctx: &Context<'_>, flags: &Flags, file: &Path) -> Result<Flags> {
    let Some(record) = read_backup_record(file)? else {
        let given = |key| inputs::is_given(key, flags, ctx.env);
        if given(Key::ControlPlaneCount)? && given(Key::WorkerCount)? {
            return Ok(flags.clone());
        }
        return Err(InputError::Rule(format!(
            "{} has no record of the lab it was taken of ({} is missing: k0slab 0.1.0 kept \
             none), so k0slab cannot tell the lab's shape. Give the lab's settings as when it \
             was created, at least {} and {} (e.g. `{}=3 {}=2 k0slab restore {}`)",
            file.display(),
            record_path(file).display(),
            Key::ControlPlaneCount.env_name(),
            Key::WorkerCount.env_name(),
            Key::ControlPlaneCount.env_name(),
            Key::WorkerCount.env_name(),
            file.display()
        ))
        .into());
    };
    // The lab's name is not part of its shape: it follows the lab directory (or is given).
    let default_name = LabName::for_directory(ctx.dir.absolute());
    let mut lab = record.inputs;
    lab.name = default_name.clone();
    let resolved = inputs::resolve(flags, ctx.env, Some(&lab), &default_name)?;
    let (refused, other): (Vec<_>, Vec<_>) = resolved
        .changes
        .into_iter()
        .filter(|c| c.key != Key::Name)
        .partition(|c| SHAPE.contains(&c.key));
    let lines = |changes: &[inputs::Change]| {
        changes
            .iter()
            .map(|c| {
                format!(
                    "  {}: the backup's lab has {}, now asked for {}",
                    c.key.env_name(),
                    c.lab,
                    c.requested
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    if !refused.is_empty() {
        return Err(InputError::Rule(format!(
            "{} is a backup of a lab of another shape:\n{}\nA backup is restored into a lab of \
             its own shape: unset these (or give the backup's values)",
            file.display(),
            lines(&refused)
        ))
        .into());
    }
    if !other.is_empty() {
        ctx.out.info(&format!(
            "restoring with other settings than the backup's lab:\n{}",
            lines(&other)
        ));
    }
    Ok(pinned(&resolved.inputs))
}

pub fn restore(ctx: &Context<'_>, flags: &Flags, file: &Path, wait: Duration) -> Result<()> {
    check_archive(file)?;
    let file: PathBuf = std::path::absolute(file).map_err(|e| Error::io("resolving", file, e))?;
    let flags = &restore_flags(ctx, flags, &file)?;
    if crate::workflow::apply::already_applied(ctx)
        || ctx.dir.join(crate::lab::files::KUBECONFIG).is_file()
    {
        return Err(InputError::Rule(format!(
            "the lab in {} runs a cluster already, and k0sctl restores only where k0s does not \
             run yet (it would skip the restore without a word): `k0slab destroy`, then \
             `k0slab restore {}`",
            ctx.dir.shown().display(),
            file.display()
        ))
        .into());
    }
    crate::workflow::up::run(
        ctx,
        flags,
        &crate::workflow::up::UpOptions {
            dry_run: false,
            restore_from: Some(file),
            wait,
            summary: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_sortable_dates() {
        let s = stamp();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }

    #[test]
    fn only_gzip_is_restored() {
        let f = tempfile::NamedTempFile::new().unwrap();
        fs::write(f.path(), b"not a backup").unwrap();
        assert!(check_archive(f.path()).is_err());
        fs::write(f.path(), [0x1f, 0x8b, 8, 0]).unwrap();
        assert!(check_archive(f.path()).is_ok());
        assert!(check_archive(Path::new("/no/such/backup.tar.gz")).is_err());
    }
}
