//! The host's download cache, shared by every lab: `~/.k0slab/cache/k0s/<version>/` holds a
//! k0s release's binary and airgap bundle for the VMs' architecture, with the release's
//! `sha256sums.txt`. A file under its release name is whole and was checked against that
//! list when it was written (it is checked again before each use); a download in progress is
//! `<name>.part` beside it. `<version>/.lock` is held by whoever fills or removes that
//! version, so two `up`s download once and `prune` never removes a file being fetched.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::inputs::K0sVersion;
use crate::release::{Asset, SUMS};

/// The suffix of a download in progress.
pub const PART_SUFFIX: &str = ".part";

const LOCK: &str = ".lock";

/// The cache of this host.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// Held while a version's files are fetched or removed; released on drop.
#[derive(Debug)]
pub struct VersionLock {
    _file: File,
}

/// One cached release, as `cache ls` and `doctor` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub version: K0sVersion,
    /// Both files are there under their release names.
    pub complete: bool,
    /// Bytes of the whole files and of downloads in progress.
    pub bytes: u64,
    pub partial_bytes: u64,
}

impl Cache {
    pub fn new(env: &Environment) -> Self {
        Self {
            root: crate::tools::host::k0slab_home(env).join("cache"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn k0s_dir(&self) -> PathBuf {
        self.root.join("k0s")
    }

    /// The directory of `version`.
    pub fn version_dir(&self, version: &K0sVersion) -> PathBuf {
        self.k0s_dir().join(version.as_str())
    }

    /// Where `asset` of `version` is kept once whole.
    pub fn path(&self, version: &K0sVersion, asset: Asset) -> PathBuf {
        self.version_dir(version).join(asset.file_name(version))
    }

    /// Where the release's checksums are kept.
    pub fn sums_path(&self, version: &K0sVersion) -> PathBuf {
        self.version_dir(version).join(SUMS)
    }

    /// Where a download of `file` (into `path`) goes until it is whole and checked.
    pub fn part_path(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(PART_SUFFIX);
        path.with_file_name(name)
    }

    fn open_lock(&self, version: &K0sVersion) -> Result<File> {
        let dir = self.version_dir(version);
        fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let path = dir.join(LOCK);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("opening", &path, e))
    }

    /// Takes `version`'s lock, waiting for another k0slab that holds it (a download of the
    /// same release by another `up`): `waiting` is called once if it has to wait.
    /// A lock file removed by [`Cache::remove`] while this waited for it is opened again, so
    /// that two holders never lock two different files.
    pub fn lock(&self, version: &K0sVersion, waiting: impl FnOnce()) -> Result<VersionLock> {
        let path = self.version_dir(version).join(LOCK);
        let mut waiting = Some(waiting);
        loop {
            let file = self.open_lock(version)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    if let Some(w) = waiting.take() {
                        w();
                    }
                    file.lock().map_err(|e| Error::io("locking", &path, e))?;
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
            }
            if same_file(&file, &path) {
                return Ok(VersionLock { _file: file });
            }
        }
    }

    /// `version`'s lock if nobody holds it now.
    pub fn try_lock(&self, version: &K0sVersion) -> Result<Option<VersionLock>> {
        let file = self.open_lock(version)?;
        match file.try_lock() {
            Ok(()) if same_file(&file, &self.version_dir(version).join(LOCK)) => {
                Ok(Some(VersionLock { _file: file }))
            }
            Ok(()) => Ok(None),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::io(
                "locking",
                self.version_dir(version).join(LOCK),
                e,
            )),
        }
    }

    /// Whether both files of `version` are there under their release names.
    pub fn has(&self, version: &K0sVersion) -> bool {
        Asset::ALL.iter().all(|a| self.path(version, *a).is_file())
    }

    /// The cached releases, newest first; directories that are no release are left out.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let dir = self.k0s_dir();
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading", &dir, e)),
        };
        let mut versions: Vec<K0sVersion> = listing
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| K0sVersion::try_from(e.file_name().to_string_lossy().into_owned()).ok())
            .collect();
        versions.sort_by(|a, b| b.cmp(a));
        Ok(versions
            .into_iter()
            .map(|v| {
                let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                let whole: u64 = Asset::ALL.iter().map(|a| size(&self.path(&v, *a))).sum();
                let partial: u64 = Asset::ALL
                    .iter()
                    .map(|a| size(&Self::part_path(&self.path(&v, *a))))
                    .sum();
                Entry {
                    version: v.clone(),
                    complete: self.has(&v),
                    bytes: whole + partial + size(&self.sums_path(&v)),
                    partial_bytes: partial,
                }
            })
            .collect())
    }

    /// The newest release whose files are all here.
    pub fn newest_complete(&self) -> Result<Option<K0sVersion>> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|e| e.complete)
            .map(|e| e.version))
    }

    /// Removes `version`'s files: the ones k0slab writes (the two assets, their downloads in
    /// progress, the checksums, the lock), then the directory if nothing else is in it. The
    /// caller holds the version's lock. Returns the bytes freed and whether anything else was
    /// left in the directory.
    pub fn remove(&self, version: &K0sVersion) -> Result<(u64, Vec<PathBuf>)> {
        let mut freed = 0;
        let mut names: Vec<PathBuf> = Asset::ALL
            .iter()
            .flat_map(|a| {
                let p = self.path(version, *a);
                [Self::part_path(&p), p]
            })
            .collect();
        names.push(self.sums_path(version));
        for p in &names {
            if let Ok(m) = fs::symlink_metadata(p) {
                if m.is_file() {
                    fs::remove_file(p).map_err(|e| Error::io("removing", p, e))?;
                    freed += m.len();
                }
            }
        }
        let dir = self.version_dir(version);
        let others: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|l| {
                l.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.file_name().is_some_and(|n| n != LOCK))
                    .collect()
            })
            .unwrap_or_default();
        if others.is_empty() {
            let _ = fs::remove_file(dir.join(LOCK));
            let _ = fs::remove_dir(&dir);
        }
        Ok((freed, others))
    }
}

/// Whether `file` is still the file at `path` (not one removed since it was opened).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> K0sVersion {
        K0sVersion::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn entries_newest_first_with_what_is_whole() {
        let home = tempfile::tempdir().unwrap();
        let env = Environment::from_pairs([("K0SLAB_HOME", home.path().to_str().unwrap())]);
        let cache = Cache::new(&env);
        let (old, new) = (v("v1.33.4+k0s.0"), v("v1.34.1+k0s.0"));
        for a in Asset::ALL {
            fs::create_dir_all(cache.version_dir(&old)).unwrap();
            fs::write(cache.path(&old, a), b"1234").unwrap();
        }
        fs::create_dir_all(cache.version_dir(&new)).unwrap();
        fs::write(cache.path(&new, Asset::Binary), b"12").unwrap();
        fs::write(Cache::part_path(&cache.path(&new, Asset::Bundle)), b"123").unwrap();
        fs::create_dir_all(cache.root().join("k0s/not-a-version")).unwrap();
        let entries = cache.entries().unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.version.as_str(), e.complete, e.bytes, e.partial_bytes))
                .collect::<Vec<_>>(),
            [
                ("v1.34.1+k0s.0", false, 5, 3),
                ("v1.33.4+k0s.0", true, 8, 0)
            ]
        );
        assert_eq!(cache.newest_complete().unwrap(), Some(old.clone()));
    }

    #[test]
    fn remove_keeps_files_k0slab_did_not_write() {
        let home = tempfile::tempdir().unwrap();
        let env = Environment::from_pairs([("K0SLAB_HOME", home.path().to_str().unwrap())]);
        let cache = Cache::new(&env);
        let version = v("v1.34.1+k0s.0");
        let _lock = cache.lock(&version, || {}).unwrap();
        fs::write(cache.path(&version, Asset::Binary), b"1234").unwrap();
        fs::write(cache.version_dir(&version).join("notes.txt"), b"mine").unwrap();
        let (freed, others) = cache.remove(&version).unwrap();
        assert_eq!(freed, 4);
        assert_eq!(others, [cache.version_dir(&version).join("notes.txt")]);
        assert!(cache.version_dir(&version).join("notes.txt").is_file());
        fs::remove_file(cache.version_dir(&version).join("notes.txt")).unwrap();
        assert_eq!(cache.remove(&version).unwrap(), (0, vec![]));
        assert!(!cache.version_dir(&version).exists());
    }

    #[test]
    fn a_held_lock_is_seen() {
        let home = tempfile::tempdir().unwrap();
        let env = Environment::from_pairs([("K0SLAB_HOME", home.path().to_str().unwrap())]);
        let cache = Cache::new(&env);
        let version = v("v1.34.1+k0s.0");
        let held = cache.lock(&version, || {}).unwrap();
        assert!(cache.try_lock(&version).unwrap().is_none());
        drop(held);
        assert!(cache.try_lock(&version).unwrap().is_some());
    }
}
