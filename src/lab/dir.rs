//! The lab directory on disk: reading `lab.json`, seeing which machines Vagrant created, and
//! writing rendered files.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use rand_core::{OsRng, RngCore};

use crate::environment::Environment;
use crate::error::{Error, InputError, Result};
use crate::fsutil::{write_all_or_none, Planned, Written};
use crate::inputs;
use crate::lab::files::{
    DEFAULT_DIR, GITIGNORE, KAIROS_DIR, LAB_JSON, LAB_JSON_COPY, PRIVATE_KEY, PUBLIC_KEY,
    RUNTIME_FILES, VAGRANT_DIR,
};
use crate::lab::record::{self, LabRecord, Secrets};
use crate::lab::sshkey;

/// A lab directory, as the user named it and as an absolute path.
#[derive(Debug, Clone)]
pub struct LabDir {
    shown: PathBuf,
    absolute: PathBuf,
}

impl LabDir {
    pub fn new(path: impl Into<PathBuf>) -> Result<Self> {
        let shown = path.into();
        let absolute =
            std::path::absolute(&shown).map_err(|e| Error::io("resolving", &shown, e))?;
        Ok(Self { shown, absolute })
    }

    /// The directory as the user gave it (for messages).
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    pub fn absolute(&self) -> &Path {
        &self.absolute
    }

    /// The last path component, for the default lab name.
    pub fn base_name(&self) -> String {
        self.absolute
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.absolute.join(name)
    }

    /// The lab's record, if the directory holds one.
    pub fn read_record(&self) -> Result<Option<LabRecord>> {
        let path = self.join(crate::lab::files::LAB_JSON);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        // Another k0slab version's record first: its layout may not parse here at all.
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            let schema = value.get("schema").and_then(serde_json::Value::as_u64);
            if let Some(schema) = schema.filter(|s| *s != u64::from(record::SCHEMA)) {
                let version = value
                    .get("k0slab_version")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("unknown");
                return Err(Error::LabFile {
                    path,
                    reason: format!(
                        "k0slab {version} wrote it (schema {schema}), and this k0slab ({}) \
                         reads schema {}: use k0slab {version} for this lab",
                        crate::environment::VERSION,
                        record::SCHEMA
                    ),
                });
            }
        }
        let record: LabRecord = serde_json::from_str(&text).map_err(|e| Error::DamagedRecord {
            path: path.clone(),
            reason: e.to_string(),
            copy: crate::lab::files::LAB_JSON_COPY,
        })?;
        Ok(Some(record))
    }

    /// Replaces `lab.json` and k0slab's copy of it ([`crate::lab::files::LAB_JSON_COPY`]), both or
    /// neither.
    pub fn write_record(&self, record: &LabRecord) -> Result<()> {
        let json = record_json(record).map_err(|reason| Error::LabFile {
            path: self.join(crate::lab::files::LAB_JSON),
            reason,
        })?;
        self.write_files(&[(
            crate::lab::files::LAB_JSON,
            json.as_bytes(),
            crate::lab::files::MODE_PRIVATE,
        )])?;
        Ok(())
    }

    /// k0slab's copy of `lab.json`, written with it: what `destroy` goes by when `lab.json`
    /// is gone or unreadable. `None` when there is no copy or it cannot be read either.
    pub fn read_copy(&self) -> Option<LabRecord> {
        let text = fs::read_to_string(self.join(crate::lab::files::LAB_JSON_COPY)).ok()?;
        serde_json::from_str::<LabRecord>(&text)
            .ok()
            .filter(|r| r.schema == record::SCHEMA)
    }

    /// Machines Vagrant has created in this directory (`.vagrant/machines/<name>/<provider>/id`).
    pub fn created_machines(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.join(VAGRANT_DIR).join("machines")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter(|machine| {
                fs::read_dir(machine.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|provider| provider.path().join("id").is_file())
            })
            .map(|m| m.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The Tart VMs Vagrant created in this directory: the content of each machine's `id`
    /// file (vagrant-tart stores the VM name there).
    pub fn tracked_vms(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.join(VAGRANT_DIR).join("machines")) else {
            return Vec::new();
        };
        let mut vms: Vec<String> = entries
            .flatten()
            .flat_map(|machine| fs::read_dir(machine.path()).into_iter().flatten().flatten())
            .filter_map(|provider| fs::read_to_string(provider.path().join("id")).ok())
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect();
        vms.sort();
        vms
    }

    /// Refuses (exit 2, before anything is written) when one of the files `names` that k0slab
    /// is about to write is not k0slab's: a file it did not write, one changed since it wrote
    /// it, or a symbolic link.
    pub fn check_ours(&self, names: &[&str], record: Option<&LabRecord>) -> Result<()> {
        let mut problems = Vec::new();
        for name in names {
            let path = self.join(name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("reading", path, e)),
            };
            if meta.file_type().is_symlink() {
                problems.push(format!("{name} (a symbolic link)"));
                continue;
            }
            let Some(record) = record else {
                problems.push(format!("{name} (k0slab did not write it)"));
                continue;
            };
            let current = fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
            match record.unchanged(name, &current) {
                Some(true) => {}
                Some(false) => problems.push(format!("{name} (changed since k0slab wrote it)")),
                // A lab from before k0slab kept digests: its list of files is trusted.
                None if record.files.iter().any(|f| f == name) => {}
                None => problems.push(format!("{name} (k0slab did not write it)")),
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(crate::error::InputError::Rule(format!(
            "{} holds files k0slab would overwrite but that are not k0slab's: {}. k0slab never \
             overwrites them: move them away, or use another lab directory (--dir)",
            self.shown.display(),
            problems.join(", ")
        ))
        .into())
    }

    /// Creates the directory if needed; returns the directories it created, outermost first
    /// (for [`LabDir::remove_created`] when what goes in them cannot be written).
    pub fn create_dirs(&self) -> Result<Vec<PathBuf>> {
        let mut missing: Vec<PathBuf> = self
            .absolute
            .ancestors()
            .take_while(|p| fs::symlink_metadata(p).is_err())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        fs::create_dir_all(&self.absolute)
            .map_err(|e| Error::io("creating the lab directory", &self.absolute, e))?;
        Ok(missing)
    }

    /// Removes `created` (from [`LabDir::create_dirs`]) again, innermost first, as far as
    /// they are empty.
    pub fn remove_created(&self, created: &[PathBuf]) {
        for dir in created.iter().rev() {
            if fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }

    /// Removes what k0slab wrote here: the files `record` lists and [`RUNTIME_FILES`] unless
    /// changed since k0slab wrote them (by their digests in `lab.json`), not symbolic links or
    /// anything but regular files; Vagrant's state and `kairos install`'s directory; `lab.json`
    /// and then its copy last (until they go, `destroy` can be run again); the directory
    /// itself when nothing else is left.
    pub fn remove_lab_files(&self, record: &LabRecord) -> Result<Removed> {
        let names: BTreeSet<&str> = record
            .files
            .iter()
            .map(String::as_str)
            .chain(RUNTIME_FILES)
            .collect();
        let mut removed = Removed::default();
        for name in names
            .iter()
            .filter(|n| ![LAB_JSON, LAB_JSON_COPY].contains(*n))
        {
            if !plain_name(name) {
                removed.not_in_dir.push((*name).to_string());
                continue;
            }
            let path = self.join(name);
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() || !meta.is_file() {
                removed.kept.push(format!("{name} (not a regular file)"));
                continue;
            }
            let current = fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
            match record.unchanged(name, &current) {
                Some(false) => removed
                    .kept
                    .push(format!("{name} (changed since k0slab wrote it)")),
                // k0slab removes a .gitignore only when it recorded writing it.
                None if *name == GITIGNORE => {}
                _ => self.remove_file(name)?,
            }
        }
        for dir in [VAGRANT_DIR, KAIROS_DIR] {
            let path = self.join(dir);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                fs::remove_dir_all(&path).map_err(|e| Error::io("removing", &path, e))?;
            }
        }
        self.remove_file(LAB_JSON)?;
        self.remove_file(LAB_JSON_COPY)?;
        removed.left = fs::read_dir(&self.absolute)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if removed.left.is_empty() {
            fs::remove_dir(&self.absolute).map_err(|e| Error::io("removing", &self.absolute, e))?;
        }
        Ok(removed)
    }

    /// Removes file `name` of the directory; one that is not there is fine.
    pub fn remove_file(&self, name: &str) -> Result<()> {
        let path = self.join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing", path, e)),
        }
    }

    /// The lab's key pair, created in memory on first use (see [`sshkey::key_pair`]).
    pub fn key_pair(&self, comment: &str) -> Result<sshkey::KeyPair> {
        sshkey::key_pair(&self.join(PRIVATE_KEY), &self.join(PUBLIC_KEY), comment)
    }

    /// Writes `files` (name, content, mode) into the directory, all or none
    /// ([`write_all_or_none`]); with `lab.json` goes k0slab's copy of it.
    pub fn write_files(&self, files: &[(&str, &[u8], u32)]) -> Result<Vec<(String, Written)>> {
        let paths: Vec<PathBuf> = files.iter().map(|(name, _, _)| self.join(name)).collect();
        let copy_path = self.join(crate::lab::files::LAB_JSON_COPY);
        let mut planned: Vec<Planned<'_>> = files
            .iter()
            .zip(&paths)
            .map(|((_, contents, mode), path)| Planned {
                path,
                contents,
                mode: *mode,
            })
            .collect();
        if let Some((_, record, mode)) = files
            .iter()
            .find(|(n, _, _)| *n == crate::lab::files::LAB_JSON)
        {
            planned.push(Planned {
                path: &copy_path,
                contents: record,
                mode: *mode,
            });
        }
        let written = write_all_or_none(&planned)?;
        Ok(files
            .iter()
            .zip(written)
            .map(|((name, _, _), w)| (name.to_string(), w))
            .collect())
    }
}

/// `record` as `lab.json` holds it.
fn record_json(record: &LabRecord) -> std::result::Result<String, String> {
    let mut json = serde_json::to_string_pretty(record).map_err(|e| e.to_string())?;
    json.push('\n');
    Ok(json)
}

/// Secrets of a new lab.
pub fn new_secrets() -> Secrets {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 8];
    OsRng.fill_bytes(&mut bytes);
    let pass = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    Secrets {
        vrrp_auth_pass: pass,
    }
}

/// What [`LabDir::remove_lab_files`] removed and kept.
#[derive(Debug, Default)]
pub struct Removed {
    /// Names `lab.json` lists that are no file directly in the directory: left alone.
    pub not_in_dir: Vec<String>,
    /// Files kept, each with why (`k0sctl.yaml (changed since k0slab wrote it)`).
    pub kept: Vec<String>,
    /// What is left in the directory; empty when the directory itself was removed.
    pub left: Vec<String>,
}

/// Whether `name` from lab.json names a file directly inside the lab directory (not `..`,
/// not absolute, not `.`, no subdirectory).
fn plain_name(name: &str) -> bool {
    let mut parts = Path::new(name).components();
    matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), None)
    )
}

/// The lab directory: `--dir`, else K0SLAB_DIR, else `lab`.
pub fn resolve(flag: Option<PathBuf>, env: &Environment) -> Result<LabDir> {
    let given = match flag {
        Some(p) => Some(inputs::Raw {
            value: p.display().to_string(),
            origin: inputs::Origin::Flag("--dir"),
        }),
        None => inputs::lookup_env(env, "K0SLAB_DIR")?,
    };
    let Some(raw) = given else {
        return LabDir::new(DEFAULT_DIR);
    };
    let path = PathBuf::from(&raw.value);
    let problem = if raw.value.is_empty() {
        Some("a directory path")
    } else if path.exists() && !path.is_dir() {
        Some("a directory, but this path is a file")
    } else {
        None
    };
    if let Some(allowed) = problem {
        return Err(InputError::Invalid {
            origin: raw.origin.to_string(),
            value: raw.value,
            allowed: allowed.into(),
        }
        .into());
    }
    LabDir::new(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_eight_random_characters() {
        let a = new_secrets().vrrp_auth_pass;
        let b = new_secrets().vrrp_auth_pass;
        assert_eq!(a.len(), 8);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn created_machines_are_read_from_vagrant_state() {
        let dir = tempfile::tempdir().unwrap();
        let lab = LabDir::new(dir.path()).unwrap();
        assert!(lab.created_machines().is_empty());
        let m = dir.path().join(".vagrant/machines/worker-1/tart");
        fs::create_dir_all(&m).unwrap();
        assert!(lab.created_machines().is_empty(), "no id yet");
        fs::write(m.join("id"), "k0slab-worker-1").unwrap();
        fs::create_dir_all(dir.path().join(".vagrant/machines/control-plane-1/tart")).unwrap();
        assert_eq!(lab.created_machines(), vec!["worker-1".to_string()]);
    }

    #[test]
    fn a_broken_record_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("lab.json"), "{not json").unwrap();
        let err = LabDir::new(dir.path()).unwrap().read_record().unwrap_err();
        assert!(err.to_string().contains("lab.json"), "{err}");
    }
}
