//! Kubeconfig files: the lab's own (`lab/kubeconfig`) and merging it into the user's.
//!
//! The lab's cluster, context and user are named after the lab (`<lab>`, `<lab>`,
//! `<lab>-admin`) so that several labs and other clusters live side by side. Merging keeps
//! every other entry, writes a backup first and replaces the file atomically (the target of a
//! symbolic link, so the link stays; never a read-only file).
//!
//! # Which entries are k0slab's
//!
//! A user's kubeconfig may hold a cluster, user or context that happens to have the lab's name
//! but that k0slab did not write: `--merge` must not replace it, nor `destroy` delete it. So
//! every entry k0slab merges carries a marker, a named extension in its body:
//!
//! ```yaml
//! contexts:
//! - name: k0slab
//!   context:
//!     cluster: k0slab
//!     user: k0slab-admin
//!     extensions:
//!     - name: k0slab
//!       extension: {lab: k0slab, dir: /Users/dev/lab, previous-context: prod}
//! ```
//!
//! `extensions` is a field of client-go's v1 `Cluster`, `AuthInfo` and `Context` (the same
//! place minikube keeps its `cluster_info`); kubectl keeps it when it rewrites the file
//! (`use-context`, `set-context`), so the marker travels with the entry, through edits, copies
//! and backups, with no second record to keep in step. An entry is this lab's when its marker
//! names the lab and its (canonical) directory; a marker with another directory is another lab
//! of the same name, which `--merge` may replace and `destroy` leaves alone. An entry without a
//! marker is the lab's only when it equals the entry of the lab's own kubeconfig (merged by a
//! k0slab that wrote no markers); anything else is the user's. The context's
//! `previous-context` is the context that was current before the merge: `destroy` makes it
//! current again if it still exists.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::environment::Environment;
use crate::error::{Error, InputError, Result};
use crate::fsutil::write_atomic;

fn bad(path: &str, reason: impl Into<String>) -> Error {
    Error::Unreadable {
        path: PathBuf::from(path),
        what: "a kubeconfig",
        reason: reason.into(),
    }
}

fn parse(text: &str, what: &str) -> Result<Mapping> {
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => Ok(m),
        Ok(Value::Null) => Ok(Mapping::new()),
        Ok(_) => Err(bad(what, "its top level is not a YAML mapping")),
        Err(e) => Err(bad(what, format!("it is not valid YAML: {e}"))),
    }
}

fn list<'a>(m: &'a Mapping, key: &str) -> Vec<&'a Value> {
    m.get(key)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn name_of(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

fn with_name(entry: &Value, name: &str) -> Value {
    let mut e = entry.clone();
    if let Value::Mapping(m) = &mut e {
        m.insert("name".into(), name.into());
    }
    e
}

fn to_yaml(m: &Mapping, what: &str) -> Result<String> {
    serde_yaml_ng::to_string(m).map_err(|e| bad(what, e.to_string()))
}

/// The user name of a lab's admin.
pub fn user_name(lab: &str) -> String {
    format!("{lab}-admin")
}

/// Renames the (single) cluster, user and context of k0sctl's kubeconfig after the lab and
/// makes the context current.
pub fn normalize(text: &str, lab: &str) -> Result<String> {
    let what = "the kubeconfig from k0sctl";
    let mut m = parse(text, what)?;
    let (clusters, users, contexts) = (
        list(&m, "clusters"),
        list(&m, "users"),
        list(&m, "contexts"),
    );
    if clusters.len() != 1 || users.len() != 1 {
        return Err(bad(
            what,
            format!(
                "expected one cluster and one user, found {} and {}",
                clusters.len(),
                users.len()
            ),
        ));
    }
    let user = user_name(lab);
    let cluster = with_name(clusters[0], lab);
    let user_entry = with_name(users[0], &user);
    let mut context = Mapping::new();
    context.insert("cluster".into(), lab.into());
    context.insert("user".into(), user.as_str().into());
    if let Some(ns) = contexts
        .first()
        .and_then(|c| c.get("context"))
        .and_then(|c| c.get("namespace"))
    {
        context.insert("namespace".into(), ns.clone());
    }
    let mut context_entry = Mapping::new();
    context_entry.insert("name".into(), lab.into());
    context_entry.insert("context".into(), Value::Mapping(context));
    m.insert("apiVersion".into(), "v1".into());
    m.insert("kind".into(), "Config".into());
    m.insert("clusters".into(), Value::Sequence(vec![cluster]));
    m.insert("users".into(), Value::Sequence(vec![user_entry]));
    m.insert(
        "contexts".into(),
        Value::Sequence(vec![Value::Mapping(context_entry)]),
    );
    m.insert("current-context".into(), lab.into());
    to_yaml(&m, what)
}

/// The name of the extension that marks the entries k0slab wrote (see the module doc).
pub const MARKER: &str = "k0slab";

/// The lists of a kubeconfig k0slab writes into, each with the key of an entry's body.
const LISTS: [(&str, &str); 3] = [
    ("clusters", "cluster"),
    ("users", "user"),
    ("contexts", "context"),
];

/// The lab whose entries k0slab merges into, and removes from, a user's kubeconfig.
#[derive(Debug, Clone, Copy)]
pub struct Lab<'a> {
    pub name: &'a str,
    /// The lab directory, canonical ([`canonical_dir`]): tells labs of the same name apart.
    pub dir: &'a Path,
    /// The lab's own (normalized) kubeconfig; empty when it is gone.
    pub kubeconfig: &'a str,
}

/// The lab directory as markers record it: with links resolved when it exists.
pub fn canonical_dir(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// One entry of a kubeconfig, for messages: `cluster "k0slab"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `cluster`, `user` or `context`.
    pub kind: &'static str,
    pub name: String,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// `a`, `a and b`, `a, b and c`.
pub fn and_list<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The cluster, user and context a lab's kubeconfig holds (see [`normalize`]).
pub fn lab_entries(lab: &str) -> Vec<Entry> {
    vec![
        Entry {
            kind: "cluster",
            name: lab.to_string(),
        },
        Entry {
            kind: "user",
            name: user_name(lab),
        },
        Entry {
            kind: "context",
            name: lab.to_string(),
        },
    ]
}

/// Who wrote an entry that has one of the lab's names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// k0slab, for this lab.
    Lab,
    /// k0slab, for a lab of the same name in this directory.
    OtherLab(String),
    /// Not k0slab.
    User,
}

/// The k0slab marker in an entry's body, if it has one.
fn marker<'a>(entry: &'a Value, body: &str) -> Option<&'a Mapping> {
    entry
        .get(body)?
        .get("extensions")?
        .as_sequence()?
        .iter()
        .find(|x| x.get("name").and_then(Value::as_str) == Some(MARKER))?
        .get("extension")?
        .as_mapping()
}

fn marker_str<'a>(marker: &'a Mapping, key: &str) -> Option<&'a str> {
    marker.get(key).and_then(Value::as_str)
}

/// Who wrote `entry` (a `body` entry with one of the lab's names); `theirs` is the lab's own
/// entry of that name, which an entry without a marker must equal to count as the lab's.
fn owner(entry: &Value, body: &str, lab: &Lab<'_>, theirs: Option<&Value>) -> Owner {
    match marker(entry, body) {
        Some(m) => {
            let dir = marker_str(m, "dir").unwrap_or("");
            if marker_str(m, "lab") == Some(lab.name) && Path::new(dir) == lab.dir {
                Owner::Lab
            } else {
                Owner::OtherLab(dir.to_string())
            }
        }
        None if theirs == Some(entry) => Owner::Lab,
        None => Owner::User,
    }
}

/// `entry` with k0slab's marker in its body (replacing an earlier one, keeping other
/// extensions).
fn with_marker(entry: &Value, body: &str, marker: &Mapping) -> Value {
    let mut e = entry.clone();
    if let Value::Mapping(m) = &mut e {
        let inner = m
            .entry(body.into())
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Value::Mapping(inner) = inner {
            let mut extensions: Vec<Value> = inner
                .get("extensions")
                .and_then(Value::as_sequence)
                .map(|s| {
                    s.iter()
                        .filter(|x| x.get("name").and_then(Value::as_str) != Some(MARKER))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mut named = Mapping::new();
            named.insert("name".into(), MARKER.into());
            named.insert("extension".into(), Value::Mapping(marker.clone()));
            extensions.push(Value::Mapping(named));
            inner.insert("extensions".into(), Value::Sequence(extensions));
        }
    }
    e
}

fn current_context(m: &Mapping) -> Option<&str> {
    m.get("current-context")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
}

/// Merges the lab's (normalized) kubeconfig into `existing` (the contents of `file`): the lab's
/// entries are written with k0slab's marker, every other entry and setting is kept, the lab's
/// context becomes current and its marker remembers the context that was current before.
///
/// Entries with the lab's names that k0slab did not write are not replaced: an input error
/// naming them and `file`, before anything is written.
pub fn merge(existing: &str, lab: &Lab<'_>, file: &Path) -> Result<String> {
    let what = file.display().to_string();
    let mut base = parse(existing, &what)?;
    let ours = parse(lab.kubeconfig, "the lab's kubeconfig")?;
    let mut foreign = Vec::new();
    for (key, body) in LISTS {
        for new in list(&ours, key) {
            let Some(name) = name_of(new) else { continue };
            let taken = list(&base, key)
                .into_iter()
                .filter(|old| name_of(old) == Some(name))
                .any(|old| owner(old, body, lab, Some(new)) == Owner::User);
            if taken {
                foreign.push(Entry {
                    kind: body,
                    name: name.to_string(),
                });
            }
        }
    }
    if !foreign.is_empty() {
        let them = if foreign.len() == 1 { "it" } else { "them" };
        return Err(InputError::Rule(format!(
            "{what} already has {} that k0slab did not create: refusing to replace {them}. \
             Rename or delete {them} (kubectl config rename-context, delete-context, \
             delete-cluster, delete-user) and merge again",
            and_list(&foreign)
        ))
        .into());
    }
    let previous = match current_context(&base) {
        Some(current) if current == lab.name => list(&base, "contexts")
            .into_iter()
            .find(|c| name_of(c) == Some(lab.name))
            .and_then(|c| marker(c, "context"))
            .and_then(|m| marker_str(m, "previous-context"))
            .map(str::to_string),
        other => other.map(str::to_string),
    };
    let mut mark = Mapping::new();
    mark.insert("lab".into(), lab.name.into());
    mark.insert("dir".into(), lab.dir.to_string_lossy().as_ref().into());
    for (key, body) in LISTS {
        let mut mark = mark.clone();
        if let (Some(previous), "contexts") = (&previous, key) {
            mark.insert("previous-context".into(), previous.as_str().into());
        }
        let new: Vec<Value> = list(&ours, key)
            .into_iter()
            .map(|e| with_marker(e, body, &mark))
            .collect();
        let new_names: Vec<&str> = new.iter().filter_map(name_of).collect();
        let mut merged: Vec<Value> = list(&base, key)
            .into_iter()
            .filter(|e| !name_of(e).is_some_and(|n| new_names.contains(&n)))
            .cloned()
            .collect();
        merged.extend(new.iter().cloned());
        base.insert(key.into(), Value::Sequence(merged));
    }
    base.entry("apiVersion".into()).or_insert("v1".into());
    base.entry("kind".into()).or_insert("Config".into());
    base.insert("current-context".into(), lab.name.into());
    to_yaml(&base, &what)
}

/// What happens to the current context when the lab's context goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// It was not the lab's.
    Untouched,
    /// It was the lab's and is now the one that was current before the merge.
    Restored(String),
    /// It was the lab's; the one before is unknown or gone.
    Unset,
}

/// The lab's entries taken out of a kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The new contents (only worth writing when `removed` is not empty).
    pub text: String,
    pub removed: Vec<Entry>,
    /// Entries with the lab's names that stay, each with the reason.
    pub kept: Vec<(Entry, String)>,
    pub current: Current,
}

/// Removes the lab's cluster, user and context from `existing` (the contents of `file`) if
/// k0slab wrote them for this lab; everything else is kept. When the lab's context was
/// current, the context current before the merge is restored if it still exists.
pub fn remove(existing: &str, lab: &Lab<'_>, file: &Path) -> Result<Removal> {
    let what = file.display().to_string();
    let mut base = parse(existing, &what)?;
    // A broken lab kubeconfig only means entries without a marker are not recognised.
    let ours = parse(lab.kubeconfig, "the lab's kubeconfig").unwrap_or_default();
    let (mut removed, mut kept, mut previous) = (Vec::new(), Vec::new(), None);
    for ((key, body), entry) in LISTS.into_iter().zip(lab_entries(lab.name)) {
        let theirs = list(&ours, key)
            .into_iter()
            .find(|t| name_of(t) == Some(entry.name.as_str()));
        let mut left = Vec::new();
        let mut gone = false;
        for e in list(&base, key) {
            if name_of(e) != Some(entry.name.as_str()) {
                left.push(e.clone());
                continue;
            }
            match owner(e, body, lab, theirs) {
                Owner::Lab => {
                    if key == "contexts" {
                        previous = marker(e, body)
                            .and_then(|m| marker_str(m, "previous-context"))
                            .map(str::to_string);
                    }
                    gone = true;
                }
                Owner::OtherLab(dir) => {
                    kept.push((
                        entry.clone(),
                        format!("k0slab wrote it for the lab in {dir}"),
                    ));
                    left.push(e.clone());
                }
                Owner::User => {
                    kept.push((entry.clone(), "k0slab did not create it".to_string()));
                    left.push(e.clone());
                }
            }
        }
        if gone {
            removed.push(entry);
            base.insert(key.into(), Value::Sequence(left));
        }
    }
    let context_removed = removed.iter().any(|e| e.kind == "context");
    let mut current = Current::Untouched;
    if context_removed && current_context(&base) == Some(lab.name) {
        let still_there = |name: &str| {
            list(&base, "contexts")
                .iter()
                .any(|c| name_of(c) == Some(name))
        };
        current = match previous {
            Some(p) if still_there(&p) => Current::Restored(p),
            _ => Current::Unset,
        };
        let value = match &current {
            Current::Restored(p) => p.as_str(),
            _ => "",
        };
        base.insert("current-context".into(), value.into());
    }
    Ok(Removal {
        text: to_yaml(&base, &what)?,
        removed,
        kept,
        current,
    })
}

/// What [`remove_from`] did to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The write, if an entry was removed.
    pub edited: Option<Edited>,
    pub removal: Removal,
}

/// Removes the lab's entries from the kubeconfig at `path`: `None` when the file is gone; the
/// file is only rewritten when one of the lab's entries goes.
pub fn remove_from(path: &Path, lab: &Lab<'_>) -> Result<Option<Removed>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let removal = remove(&text, lab, path)?;
    let edited = if removal.removed.is_empty() {
        None
    } else {
        Some(edit(path, |t| remove(t, lab, path).map(|r| r.text))?)
    };
    Ok(Some(Removed { edited, removal }))
}

/// The user's kubeconfig: the first path of `$KUBECONFIG`, else `~/.kube/config`.
pub fn user_kubeconfig(env: &Environment) -> Option<PathBuf> {
    first_of_kubeconfig_var(env).or_else(|| home_kubeconfig(env))
}

fn first_of_kubeconfig_var(env: &Environment) -> Option<PathBuf> {
    env.get("KUBECONFIG")
        .and_then(|k| k.split(':').find(|p| !p.is_empty()))
        .map(PathBuf::from)
}

fn home_kubeconfig(env: &Environment) -> Option<PathBuf> {
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(h).join(".kube").join("config"))
}

/// Whether `a` and `b` are one existing file (through links, hard or symbolic).
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Where `kubeconfig --merge` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeTarget {
    pub path: PathBuf,
    /// `$KUBECONFIG`'s first file when it is the lab's own kubeconfig (`up` suggests exporting
    /// it), which `path` is used instead of.
    pub instead_of: Option<PathBuf>,
}

/// The user's kubeconfig to merge into ([`user_kubeconfig`]), but never the lab's own
/// kubeconfig `lab_file`: when `$KUBECONFIG` names it, `~/.kube/config`.
pub fn merge_target(env: &Environment, lab_file: &Path) -> Result<MergeTarget> {
    let home = home_kubeconfig(env);
    let (path, instead_of) = match first_of_kubeconfig_var(env) {
        Some(first) if same_file(&first, lab_file) => (home, Some(first)),
        Some(first) => (Some(first), None),
        None => (home, None),
    };
    let Some(path) = path else {
        return Err(Error::Step(match instead_of {
            Some(first) => format!(
                "KUBECONFIG names the lab's own kubeconfig ({}) and HOME is not set: no \
                 kubeconfig to merge into",
                first.display()
            ),
            None => "neither KUBECONFIG nor HOME is set: no kubeconfig to merge into".into(),
        }));
    };
    if same_file(&path, lab_file) {
        return Err(Error::Step(format!(
            "{} is the lab's own kubeconfig ({}): there is no other kubeconfig to merge into",
            path.display(),
            lab_file.display()
        )));
    }
    Ok(MergeTarget { path, instead_of })
}

/// What a change of the user's kubeconfig did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    /// The file as named.
    pub path: PathBuf,
    /// The file written: `path` with symbolic links followed.
    pub written: PathBuf,
    /// The copy of the file as it was, if there was one.
    pub backup: Option<PathBuf>,
    /// The file's mode now.
    pub mode: u32,
    /// The file's mode before, when k0slab changed it.
    pub mode_before: Option<u32>,
}

/// `path` with symbolic links followed, also a last link whose target does not exist yet.
fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    // Linux's limit (MAXSYMLINKS in include/linux/namei.h); macOS' is 32.
    for _ in 0..40 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&p).map_err(|e| Error::io("reading the link", &p, e))?;
                let next = match p.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
                // The directory as the system sees it, for messages (no `..`).
                p = match (next.parent().map(fs::canonicalize), next.file_name()) {
                    (Some(Ok(dir)), Some(name)) => dir.join(name),
                    _ => next,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(Error::io(
        "following the links of",
        path,
        std::io::Error::other("too many levels of symbolic links"),
    ))
}

/// Refuses a kubeconfig that must not be written: read-only by its mode (which a rename would
/// go around, and root's writes would ignore), or not writable by this user. kubectl, which
/// writes in place, fails on such a file too.
fn check_writable(file: &Path, mode: u32) -> Result<()> {
    let refused = |reason: String| {
        Error::io(
            "writing",
            file,
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, reason),
        )
    };
    if mode & 0o200 == 0 {
        return Err(refused(format!(
            "the file is read-only (mode {mode:04o}): k0slab leaves it alone, as kubectl does; \
             make it writable (chmod u+w) to change it"
        )));
    }
    fs::OpenOptions::new()
        .write(true)
        .open(file)
        .map(drop)
        .map_err(|e| refused(format!("{e}: k0slab leaves it alone, as kubectl does")))
}

/// Applies `change` to the kubeconfig at `path`: a backup first (`<path>.k0slab-backup-N`),
/// then an atomic replace that keeps the file's mode (0600 for a new file). A symbolic link
/// stays a link: its target is replaced. A read-only file is refused, unchanged.
pub fn edit(path: &Path, change: impl FnOnce(&str) -> Result<String>) -> Result<Edited> {
    edit_with(path, false, change)
}

/// [`edit`] for a change that puts the lab's admin key into the file: the file (and its
/// backup) keep only the owner's permissions, 0600 for a usual kubeconfig, as kubectl gives
/// the files it creates (kubernetes/client-go `tools/clientcmd/loader.go`, `WriteToFile`:
/// line 466: `os.WriteFile(filename, content, 0600)`, client-go 32ce75a).
pub fn edit_private(path: &Path, change: impl FnOnce(&str) -> Result<String>) -> Result<Edited> {
    edit_with(path, true, change)
}

fn edit_with(
    path: &Path,
    private: bool,
    change: impl FnOnce(&str) -> Result<String>,
) -> Result<Edited> {
    let file = follow_links(path)?;
    let existing = match fs::read_to_string(&file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading", &file, e)),
    };
    let mode = match &existing {
        Some(_) => {
            let mode = fs::metadata(&file)
                .map_err(|e| Error::io("reading", &file, e))?
                .permissions()
                .mode()
                & 0o777;
            check_writable(&file, mode)?;
            mode
        }
        None => 0o600,
    };
    let before = existing.as_ref().map(|_| mode);
    let mode = if private { mode & 0o700 } else { mode };
    let updated = change(existing.as_deref().unwrap_or(""))?;
    let edited = |backup| Edited {
        path: path.to_path_buf(),
        written: file.clone(),
        backup,
        mode_before: before.filter(|b| *b != mode),
        mode,
    };
    if existing.as_deref() == Some(updated.as_str()) {
        if before.is_some_and(|b| b != mode) {
            fs::set_permissions(&file, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting the mode of", &file, e))?;
        }
        return Ok(edited(None));
    }
    let backup = match &existing {
        Some(text) => {
            let backup = free_backup_name(path);
            fs::write(&backup, text).map_err(|e| Error::io("backing up", &backup, e))?;
            fs::set_permissions(&backup, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting the mode of", &backup, e))?;
            Some(backup)
        }
        None => {
            if let Some(dir) = file.parent() {
                fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
            }
            None
        }
    };
    write_atomic(&file, updated.as_bytes(), mode)?;
    Ok(edited(backup))
}

fn free_backup_name(path: &Path) -> PathBuf {
    let base = path.as_os_str().to_string_lossy().into_owned();
    (1..)
        .map(|n| PathBuf::from(format!("{base}.k0slab-backup-{n}")))
        .find(|p| fs::symlink_metadata(p).is_err())
        .expect("a free backup name")
}

#[cfg(test)]
mod tests {
    use super::*;

    const K0SCTL: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://192.168.64.100:6443
  name: k0s-cluster
contexts:
- context:
    cluster: k0s-cluster
    user: admin
  name: k0s-cluster
current-context: k0s-cluster
kind: Config
preferences: {}
users:
- name: admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
";

    const USER: &str = "apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: 'https://prod:6443'}
- name: kind-dev
  cluster: {server: 'https://127.0.0.1:4000'}
contexts:
- name: prod
  context: {cluster: prod, user: prod}
- name: kind-dev
  context: {cluster: kind-dev, user: kind-dev}
users:
- name: prod
  user: {token: secret}
- name: kind-dev
  user: {token: other}
current-context: prod
preferences: {colors: true}
";

    fn names(text: &str, key: &str) -> Vec<String> {
        let m = parse(text, "t").unwrap();
        list(&m, key)
            .iter()
            .filter_map(|e| name_of(e))
            .map(str::to_string)
            .collect()
    }

    const DIR: &str = "/Users/dev/lab";

    fn lab(kubeconfig: &str) -> Lab<'_> {
        Lab {
            name: "k0slab",
            dir: Path::new(DIR),
            kubeconfig,
        }
    }

    fn file() -> &'static Path {
        Path::new("/home/u/.kube/config")
    }

    fn current(text: &str) -> Option<String> {
        current_context(&parse(text, "t").unwrap()).map(str::to_string)
    }

    #[test]
    fn normalize_names_everything_after_the_lab() {
        let n = normalize(K0SCTL, "k0slab").unwrap();
        assert_eq!(names(&n, "clusters"), ["k0slab"]);
        assert_eq!(names(&n, "users"), ["k0slab-admin"]);
        assert_eq!(names(&n, "contexts"), ["k0slab"]);
        assert!(n.contains("current-context: k0slab\n"));
        assert!(n.contains("client-key-data: S0VZ"));
        assert!(n.contains("server: https://192.168.64.100:6443"), "{n}");
        assert!(normalize("clusters: []", "x").is_err());
    }

    #[test]
    fn merge_keeps_every_other_entry_and_replaces_the_labs() {
        let ours = normalize(K0SCTL, "k0slab").unwrap();
        let lab = lab(&ours);
        let merged = merge(USER, &lab, file()).unwrap();
        assert_eq!(names(&merged, "clusters"), ["prod", "kind-dev", "k0slab"]);
        assert_eq!(
            names(&merged, "users"),
            ["prod", "kind-dev", "k0slab-admin"]
        );
        assert_eq!(names(&merged, "contexts"), ["prod", "kind-dev", "k0slab"]);
        assert!(merged.contains("current-context: k0slab"));
        assert!(merged.contains("colors: true"));
        assert!(merged.contains("token: secret"));
        // Merging again replaces rather than duplicates, and keeps the context from before.
        let again = merge(&merged, &lab, file()).unwrap();
        assert_eq!(again, merged);
        // Into nothing.
        let fresh = merge("", &lab, file()).unwrap();
        assert_eq!(names(&fresh, "contexts"), ["k0slab"]);
        // And out again: the context current before is current again.
        let removed = remove(&merged, &lab, file()).unwrap();
        assert_eq!(names(&removed.text, "clusters"), ["prod", "kind-dev"]);
        assert_eq!(names(&removed.text, "users"), ["prod", "kind-dev"]);
        assert_eq!(names(&removed.text, "contexts"), ["prod", "kind-dev"]);
        assert_eq!(removed.removed, lab_entries("k0slab"));
        assert_eq!(removed.kept, []);
        assert_eq!(removed.current, Current::Restored("prod".into()));
        assert_eq!(current(&removed.text).as_deref(), Some("prod"));
        let removed = remove(&fresh, &lab, file()).unwrap();
        assert_eq!(
            removed.current,
            Current::Unset,
            "nothing was current before"
        );
        assert_eq!(current(&removed.text), None);
    }

    #[test]
    fn every_merged_entry_carries_the_marker() {
        let ours = normalize(K0SCTL, "k0slab").unwrap();
        let merged = parse(&merge(USER, &lab(&ours), file()).unwrap(), "t").unwrap();
        for (key, body) in LISTS {
            let entry = list(&merged, key).into_iter().last().unwrap();
            let m = marker(entry, body).unwrap_or_else(|| panic!("{key} marked"));
            assert_eq!(marker_str(m, "lab"), Some("k0slab"));
            assert_eq!(marker_str(m, "dir"), Some(DIR));
            let previous = marker_str(m, "previous-context");
            assert_eq!(previous, (key == "contexts").then_some("prod"), "{key}");
        }
        // The user's entries are not marked.
        assert!(marker(list(&merged, "clusters")[0], "cluster").is_none());
    }

    #[test]
    fn the_users_entries_with_the_labs_names_are_refused_and_kept() {
        let ours = normalize(K0SCTL, "k0slab").unwrap();
        let lab = lab(&ours);
        let users = USER.replace("name: kind-dev\n  cluster", "name: k0slab\n  cluster");
        let e = merge(&users, &lab, file()).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_INPUT);
        let msg = e.to_string();
        assert!(
            msg.starts_with("/home/u/.kube/config already has cluster \"k0slab\" that k0slab"),
            "{msg}"
        );
        // Removing keeps them, and says why.
        let removed = remove(&users, &lab, file()).unwrap();
        assert_eq!(removed.removed, []);
        assert_eq!(
            removed.kept,
            [(
                lab_entries("k0slab")[0].clone(),
                "k0slab did not create it".into()
            )]
        );
        // A lab of the same name in another directory: merge replaces, remove keeps.
        let other_dir = Path::new("/elsewhere/lab");
        let other = Lab {
            dir: other_dir,
            ..lab
        };
        let merged = merge(USER, &other, file()).unwrap();
        let replaced = merge(&merged, &lab, file()).unwrap();
        assert!(replaced.contains(&format!("dir: {DIR}")), "{replaced}");
        let removed = remove(&merged, &lab, file()).unwrap();
        assert_eq!(removed.removed, []);
        assert_eq!(removed.kept.len(), 3);
        assert!(removed.kept[0].1.contains("/elsewhere/lab"));
        // Merged by a k0slab without markers: entries equal to the lab's own are the lab's.
        let unmarked = merge_unmarked(USER, &ours);
        assert!(merge(&unmarked, &lab, file()).is_ok());
        assert_eq!(
            remove(&unmarked, &lab, file()).unwrap().removed,
            lab_entries("k0slab")
        );
        let no_lab_file = Lab {
            kubeconfig: "",
            ..lab
        };
        assert_eq!(remove(&unmarked, &no_lab_file, file()).unwrap().removed, []);
    }

    /// What merging did before entries were marked.
    fn merge_unmarked(existing: &str, ours: &str) -> String {
        let mut base = parse(existing, "t").unwrap();
        let ours = parse(ours, "t").unwrap();
        for (key, _) in LISTS {
            let mut all: Vec<Value> = list(&base, key).into_iter().cloned().collect();
            all.extend(list(&ours, key).into_iter().cloned());
            base.insert(key.into(), Value::Sequence(all));
        }
        base.insert("current-context".into(), "k0slab".into());
        to_yaml(&base, "t").unwrap()
    }

    #[test]
    fn the_previous_context_survives_a_second_merge_and_must_still_exist() {
        let ours = normalize(K0SCTL, "k0slab").unwrap();
        let lab = lab(&ours);
        let merged = merge(USER, &lab, file()).unwrap();
        let twice = merge(&merged, &lab, file()).unwrap();
        assert_eq!(
            remove(&twice, &lab, file()).unwrap().current,
            Current::Restored("prod".into())
        );
        // The user deleted prod meanwhile: nothing is current.
        let gone = merged.replace(
            "- name: prod\n  context:\n    cluster: prod\n    user: prod\n",
            "",
        );
        assert_ne!(gone, merged);
        let removed = remove(&gone, &lab, file()).unwrap();
        assert_eq!(removed.current, Current::Unset);
        assert_eq!(current(&removed.text), None);
        // The user switched away meanwhile: their choice stays.
        let switched = merged.replace("current-context: k0slab", "current-context: kind-dev");
        let removed = remove(&switched, &lab, file()).unwrap();
        assert_eq!(removed.current, Current::Untouched);
        assert_eq!(current(&removed.text).as_deref(), Some("kind-dev"));
    }

    #[test]
    fn a_broken_user_kubeconfig_is_refused_not_replaced() {
        let ours = normalize(K0SCTL, "k0slab").unwrap();
        let e = merge("clusters: [unclosed", &lab(&ours), file()).unwrap_err();
        assert!(e.to_string().starts_with("/home/u/.kube/config "), "{e}");
        assert!(merge("- a list", &lab(&ours), file()).is_err());
        assert!(remove("- a list", &lab(&ours), file()).is_err());
    }

    #[test]
    fn which_file_is_the_users() {
        let env = Environment::from_pairs([("KUBECONFIG", ":/a/one:/b/two"), ("HOME", "/home/u")]);
        assert_eq!(user_kubeconfig(&env), Some(PathBuf::from("/a/one")));
        let env = Environment::from_pairs([("HOME", "/home/u")]);
        assert_eq!(
            user_kubeconfig(&env),
            Some(PathBuf::from("/home/u/.kube/config"))
        );
    }

    #[test]
    fn the_labs_own_kubeconfig_is_never_the_merge_target() {
        let dir = tempfile::tempdir().unwrap();
        let lab_file = dir.path().join("lab/kubeconfig");
        fs::create_dir_all(lab_file.parent().unwrap()).unwrap();
        fs::write(&lab_file, "x").unwrap();
        let home = dir.path().join("home");
        let home_s = home.display().to_string();
        // Named through a link and a relative-looking detour, it is still the lab's file.
        let via = dir.path().join("lab/../lab/kubeconfig");
        let env =
            Environment::from_pairs([("KUBECONFIG", via.to_str().unwrap()), ("HOME", &home_s)]);
        assert_eq!(
            merge_target(&env, &lab_file).unwrap(),
            MergeTarget {
                path: home.join(".kube/config"),
                instead_of: Some(via.clone())
            }
        );
        let env = Environment::from_pairs([("KUBECONFIG", via.to_str().unwrap())]);
        assert!(merge_target(&env, &lab_file).is_err());
        let env = Environment::from_pairs([("HOME", &home_s)]);
        assert_eq!(merge_target(&env, &lab_file).unwrap().instead_of, None);
    }

    #[test]
    fn edit_backs_up_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, USER).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let ours = normalize(K0SCTL, "k0slab").unwrap();
        let lab = lab(&ours);
        let edited = edit(&path, |t| merge(t, &lab, &path)).unwrap();
        let backup = edited.backup.unwrap();
        assert_eq!(fs::read_to_string(&backup).unwrap(), USER);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let second = edit(&path, |t| merge(t, &lab, &path)).unwrap();
        assert_eq!(second.backup, None, "no change, no backup");
        let new = dir.path().join("sub/dir/config");
        let made = edit(&new, |t| merge(t, &lab, &new)).unwrap();
        assert_eq!(made.backup, None);
        assert_eq!(
            fs::metadata(&new).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A failing change leaves the file alone.
        let before = fs::read_to_string(&path).unwrap();
        assert!(edit(&path, |_| Err(Error::Step("no".into()))).is_err());
        assert_eq!(fs::read_to_string(&path).unwrap(), before);
    }

    #[test]
    fn edit_writes_through_links_and_refuses_read_only_files() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/kubeconfig");
        fs::create_dir_all(real.parent().unwrap()).unwrap();
        fs::write(&real, USER).unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink("dotfiles/kubeconfig", &link).unwrap();
        let ours = normalize(K0SCTL, "k0slab").unwrap();
        let lab = lab(&ours);
        let edited = edit(&link, |t| merge(t, &lab, &link)).unwrap();
        assert_eq!(edited.written, fs::canonicalize(&real).unwrap());
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(fs::read_to_string(&real).unwrap().contains("k0slab-admin"));
        assert_eq!(
            fs::read_to_string(edited.backup.unwrap()).unwrap(),
            USER,
            "the backup is beside the link"
        );
        // A link to a file that does not exist yet: the file is created where it points.
        let dangling = dir.path().join("new-config");
        std::os::unix::fs::symlink("made/here", &dangling).unwrap();
        edit(&dangling, |t| merge(t, &lab, &dangling)).unwrap();
        assert!(fs::symlink_metadata(&dangling).unwrap().is_symlink());
        assert!(dir.path().join("made/here").is_file());

        for mode in [0o400, 0o444, 0o440] {
            fs::set_permissions(&real, fs::Permissions::from_mode(mode)).unwrap();
            let before = fs::read(&real).unwrap();
            let e = edit(&link, |_| Ok("changed".into())).unwrap_err();
            assert!(e.to_string().contains("is read-only"), "{mode:o}: {e}");
            assert!(e.to_string().contains(&real.display().to_string()), "{e}");
            assert_eq!(fs::read(&real).unwrap(), before);
            assert_eq!(
                fs::metadata(&real).unwrap().permissions().mode() & 0o777,
                mode
            );
        }
    }
}
