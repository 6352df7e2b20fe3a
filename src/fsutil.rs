//! Atomic file writes: a temporary file in the same directory, then a rename.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    Unchanged,
}

impl Written {
    pub fn as_str(self) -> &'static str {
        match self {
            Written::Created => "created",
            Written::Updated => "updated",
            Written::Unchanged => "unchanged",
        }
    }
}

/// The SHA-256 of `bytes`, in hex: how `lab.json` remembers what k0slab wrote.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `contents` to `path` with `mode`, atomically. A file that already holds exactly
/// `contents` is left alone (its mode is still corrected).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<Written> {
    write_atomic_if(path, contents, mode, || true).map(|w| w.expect("no precondition"))
}

/// [`write_atomic`], but the file is replaced only if `still` says so right before the rename
/// (for a file another program rewrites too: read it, compute, then check it is unchanged).
/// `None` when `still` said no and nothing was replaced.
pub fn write_atomic_if(
    path: &Path,
    contents: &[u8],
    mode: u32,
    still: impl Fn() -> bool,
) -> Result<Option<Written>> {
    let existing = match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    if existing.as_deref() == Some(contents) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting the mode of", path, e))?;
        return Ok(Some(Written::Unchanged));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".k0slab-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting the mode of", tmp.path(), e))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("writing", tmp.path(), e))?;
    if !still() {
        return Ok(None);
    }
    tmp.persist(path)
        .map_err(|e| Error::io("replacing", path, e.error))?;
    Ok(Some(if existing.is_some() {
        Written::Updated
    } else {
        Written::Created
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_precondition_that_fails_replaces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"bootpd's").unwrap();
        assert_eq!(write_atomic_if(&p, b"ours", 0o644, || false).unwrap(), None);
        assert_eq!(fs::read(&p).unwrap(), b"bootpd's");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert_eq!(
            write_atomic_if(&p, b"ours", 0o644, || true).unwrap(),
            Some(Written::Updated)
        );
    }

    #[test]
    fn creates_updates_and_leaves_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert_eq!(write_atomic(&p, b"a", 0o600).unwrap(), Written::Created);
        assert_eq!(write_atomic(&p, b"a", 0o600).unwrap(), Written::Unchanged);
        assert_eq!(write_atomic(&p, b"b", 0o644).unwrap(), Written::Updated);
        assert_eq!(fs::read(&p).unwrap(), b"b");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
    }
}
