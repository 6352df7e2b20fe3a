//! `k0slab backup` and `k0slab restore FILE`: k0sctl's backup of the cluster into
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

use super::Context;
use crate::error::{Error, InputError, Result};
use crate::inputs::Flags;
use crate::k0sctl::K0sctl;
use crate::render::K0SCTL_YAML;
use crate::tools::Tool;

/// Where backups go, inside the lab directory (kept by `destroy`).
pub const BACKUPS: &str = "backups";

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

pub fn backup(ctx: &Context<'_>) -> Result<()> {
    let record = ctx.record()?;
    let file = take(ctx, &record)?;
    let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    ctx.out.result(&format!(
        "{} ({})",
        ctx.dir
            .shown()
            .join(BACKUPS)
            .join(file.file_name().expect("a file name"))
            .display(),
        crate::output::bytes(size)
    ));
    Ok(())
}

/// Takes a backup into `<lab>/backups/`; returns its path.
pub fn take(ctx: &Context<'_>, record: &crate::lab_json::LabRecord) -> Result<PathBuf> {
    if !ctx.dir.join(crate::kubeconfig::FILE_NAME).is_file() {
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
    let config = ctx.dir.join(K0SCTL_YAML);
    let k0sctl = K0sctl {
        path: ctx.tools.get(Tool::K0sctl)?,
        config: &config,
        env: ctx.env,
        out: &ctx.out,
    };
    ctx.out
        .progress("k0sctl backup: one controller's etcd snapshot, certificates and manifests");
    k0sctl.backup(&file)?;
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("setting the mode of", &file, e))?;
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

pub fn restore(ctx: &Context<'_>, flags: &Flags, file: &Path, wait: Duration) -> Result<()> {
    check_archive(file)?;
    let file: PathBuf = std::path::absolute(file).map_err(|e| Error::io("resolving", file, e))?;
    if super::up::already_applied(ctx) || ctx.dir.join(crate::kubeconfig::FILE_NAME).is_file() {
        return Err(InputError::Rule(format!(
            "the lab in {} runs a cluster already, and k0sctl restores only where k0s does not \
             run yet (it would skip the restore without a word): `k0slab destroy`, then \
             `k0slab restore {}`",
            ctx.dir.shown().display(),
            file.display()
        ))
        .into());
    }
    super::up::run(
        ctx,
        flags,
        &super::up::UpOptions {
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
