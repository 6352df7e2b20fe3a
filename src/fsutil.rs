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

/// The SHA-256 of the file at `path`, in hex, read in 1 MiB pieces (release files are
/// hundreds of MiB).
pub fn file_digest(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(|e| Error::io("reading", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("reading", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
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
    let tmp = temporary_with(path, contents, mode)?;
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

/// One file of a set that is written whole or not at all ([`write_all_or_none`]).
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub path: &'a Path,
    pub contents: &'a [u8],
    pub mode: u32,
}

/// A file staged by [`write_all_or_none`]: the new content in a temporary file beside it.
struct Staged<'a> {
    planned: &'a Planned<'a>,
    tmp: Option<tempfile::NamedTempFile>,
    /// A hard link to the file as it was, to put back if a later rename fails.
    previous: Option<std::path::PathBuf>,
    existed: bool,
}

/// Writes every file of `files` or, when anything fails, none of them: each new content goes
/// to a temporary file beside its target first (this is where a full disk fails, and then
/// only temporary files are dropped), the files that are replaced keep a hard link to what
/// they held, and only then is each temporary file renamed over its target, in order. A
/// rename that fails puts back what the earlier renames replaced. Files that already hold
/// their content are left alone (their mode is still corrected).
pub fn write_all_or_none(files: &[Planned<'_>]) -> Result<Vec<Written>> {
    let mut staged = Vec::with_capacity(files.len());
    for planned in files {
        let existing = match fs::read(planned.path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("reading", planned.path, e)),
        };
        if existing.as_deref() == Some(planned.contents) {
            fs::set_permissions(planned.path, fs::Permissions::from_mode(planned.mode))
                .map_err(|e| Error::io("setting the mode of", planned.path, e))?;
            staged.push(Staged {
                planned,
                tmp: None,
                previous: None,
                existed: true,
            });
            continue;
        }
        let tmp = temporary_with(planned.path, planned.contents, planned.mode)?;
        staged.push(Staged {
            planned,
            tmp: Some(tmp),
            previous: None,
            existed: existing.is_some(),
        });
    }
    // Keep what each replaced file holds until every rename is done.
    for i in 0..staged.len() {
        if staged[i].tmp.is_none() || !staged[i].existed {
            continue;
        }
        match keep_previous(staged[i].planned.path) {
            Ok(link) => staged[i].previous = Some(link),
            Err(e) => {
                drop_previous(&staged);
                return Err(e);
            }
        }
    }
    for i in 0..staged.len() {
        let Some(tmp) = staged[i].tmp.take() else {
            continue;
        };
        if let Err(e) = tmp.persist(staged[i].planned.path) {
            put_back(&staged[..i]);
            drop_previous(&staged);
            return Err(Error::io("replacing", staged[i].planned.path, e.error));
        }
    }
    drop_previous(&staged);
    Ok(staged
        .iter()
        .map(|s| match (&s.previous, s.existed) {
            (_, false) => Written::Created,
            (Some(_), true) => Written::Updated,
            (None, true) => Written::Unchanged,
        })
        .collect())
}

/// A temporary file beside `path` that holds `contents` with `mode`, synced.
fn temporary_with(path: &Path, contents: &[u8], mode: u32) -> Result<tempfile::NamedTempFile> {
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
    Ok(tmp)
}

/// A hard link beside `path` to what it holds now (a link takes no room for the content).
fn keep_previous(path: &Path) -> Result<std::path::PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    for _ in 0..100 {
        let n = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
        let link = dir.join(format!(".k0slab-previous-{n:016x}"));
        match fs::hard_link(path, &link) {
            Ok(()) => return Ok(link),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io("keeping the previous content of", path, e)),
        }
    }
    Err(Error::io(
        "keeping the previous content of",
        path,
        std::io::Error::other("no free temporary name"),
    ))
}

/// After a failed rename: the files renamed so far get back what they held (or go, when new).
fn put_back(done: &[Staged<'_>]) {
    for s in done.iter().rev() {
        if !s.existed {
            let _ = fs::remove_file(s.planned.path);
        } else if let Some(previous) = &s.previous {
            let _ = fs::rename(previous, s.planned.path);
        }
    }
}

fn drop_previous(staged: &[Staged<'_>]) {
    for link in staged.iter().filter_map(|s| s.previous.as_ref()) {
        let _ = fs::remove_file(link);
    }
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
    fn a_set_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&b, b"old").unwrap();
        // The third file cannot be staged (its directory does not exist): nothing changes.
        let missing = dir.path().join("no/such/c");
        fn set<'a>(a: &'a Path, b: &'a Path, third: &'a Path) -> Vec<Planned<'a>> {
            let planned = |path, contents, mode| Planned {
                path,
                contents,
                mode,
            };
            vec![
                planned(a, b"new a", 0o600),
                planned(b, b"new b", 0o644),
                planned(third, b"c", 0o600),
            ]
        }
        assert!(write_all_or_none(&set(&a, &b, &missing)).is_err());
        assert!(!a.exists());
        assert_eq!(fs::read(&b).unwrap(), b"old");
        let names = |d: &Path| -> Vec<String> {
            let mut n: Vec<String> = fs::read_dir(d)
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(dir.path()), ["b"], "no temporary file left");
        let c = dir.path().join("c");
        assert_eq!(
            write_all_or_none(&set(&a, &b, &c)).unwrap(),
            [Written::Created, Written::Updated, Written::Created]
        );
        assert_eq!(fs::read(&b).unwrap(), b"new b");
        assert_eq!(
            names(dir.path()),
            ["a", "b", "c"],
            "no link to the old b left"
        );
        assert_eq!(
            write_all_or_none(&set(&a, &b, &c)).unwrap(),
            [Written::Unchanged; 3]
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
