//! Kubeconfig files: the lab's own (`lab/kubeconfig`) and merging it into the user's.
//!
//! The lab's cluster, context and user are named after the lab (`<lab>`, `<lab>`,
//! `<lab>-admin`) so that several labs and other clusters live side by side. Merging keeps
//! every other entry, writes a backup first and replaces the file atomically.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The lab's kubeconfig, inside the lab directory.
pub const FILE_NAME: &str = "kubeconfig";

fn bad(path: &str, reason: impl Into<String>) -> Error {
    Error::LabFile {
        path: PathBuf::from(path),
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
        Ok(_) => Err(bad(what, "not a kubeconfig (a YAML mapping)")),
        Err(e) => Err(bad(what, format!("not valid YAML: {e}"))),
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

/// Merges the lab's (normalized) kubeconfig into `existing`: entries with the lab's names are
/// replaced, every other entry and setting is kept, the lab's context becomes current.
pub fn merge(existing: &str, lab_kubeconfig: &str, lab: &str) -> Result<String> {
    let what = "your kubeconfig";
    let mut base = parse(existing, what)?;
    let ours = parse(lab_kubeconfig, "the lab's kubeconfig")?;
    for key in ["clusters", "users", "contexts"] {
        let new: Vec<Value> = list(&ours, key).into_iter().cloned().collect();
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
    base.insert("current-context".into(), lab.into());
    to_yaml(&base, what)
}

/// Removes the lab's cluster, user and context from `existing`; everything else is kept.
pub fn remove(existing: &str, lab: &str) -> Result<String> {
    let what = "your kubeconfig";
    let mut base = parse(existing, what)?;
    let user = user_name(lab);
    for (key, name) in [
        ("clusters", lab),
        ("users", user.as_str()),
        ("contexts", lab),
    ] {
        let kept: Vec<Value> = list(&base, key)
            .into_iter()
            .filter(|e| name_of(e) != Some(name))
            .cloned()
            .collect();
        base.insert(key.into(), Value::Sequence(kept));
    }
    if base.get("current-context").and_then(Value::as_str) == Some(lab) {
        base.insert("current-context".into(), "".into());
    }
    to_yaml(&base, what)
}

/// Whether `existing` holds the lab's context.
pub fn has_context(existing: &str, lab: &str) -> bool {
    parse(existing, "kubeconfig")
        .map(|m| list(&m, "contexts").iter().any(|c| name_of(c) == Some(lab)))
        .unwrap_or(false)
}

/// The user's kubeconfig: the first path of `$KUBECONFIG`, else `~/.kube/config`.
pub fn user_kubeconfig(env: &Environment) -> Option<PathBuf> {
    if let Some(first) = env
        .get("KUBECONFIG")
        .and_then(|k| k.split(':').find(|p| !p.is_empty()))
    {
        return Some(PathBuf::from(first));
    }
    env.get("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(h).join(".kube").join("config"))
}

/// What a change of the user's kubeconfig did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub path: PathBuf,
    /// The copy of the file as it was, if there was one.
    pub backup: Option<PathBuf>,
}

/// Applies `change` to the kubeconfig at `path`: a backup first (`<file>.k0slab-backup-N`),
/// then an atomic replace that keeps the file's mode (0600 for a new file).
pub fn edit(path: &Path, change: impl FnOnce(&str) -> Result<String>) -> Result<Edited> {
    let existing = match fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    let updated = change(existing.as_deref().unwrap_or(""))?;
    if existing.as_deref() == Some(updated.as_str()) {
        return Ok(Edited {
            path: path.to_path_buf(),
            backup: None,
        });
    }
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let backup = match &existing {
        Some(text) => {
            let backup = free_backup_name(path);
            fs::write(&backup, text).map_err(|e| Error::io("backing up", &backup, e))?;
            fs::set_permissions(&backup, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting the mode of", &backup, e))?;
            Some(backup)
        }
        None => {
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
            }
            None
        }
    };
    write_atomic(path, updated.as_bytes(), mode)?;
    Ok(Edited {
        path: path.to_path_buf(),
        backup,
    })
}

fn free_backup_name(path: &Path) -> PathBuf {
    let base = path.as_os_str().to_string_lossy().into_owned();
    (1..)
        .map(|n| PathBuf::from(format!("{base}.k0slab-backup-{n}")))
        .find(|p| !p.exists())
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
        let lab = normalize(K0SCTL, "k0slab").unwrap();
        let merged = merge(USER, &lab, "k0slab").unwrap();
        assert_eq!(names(&merged, "clusters"), ["prod", "kind-dev", "k0slab"]);
        assert_eq!(
            names(&merged, "users"),
            ["prod", "kind-dev", "k0slab-admin"]
        );
        assert_eq!(names(&merged, "contexts"), ["prod", "kind-dev", "k0slab"]);
        assert!(merged.contains("current-context: k0slab"));
        assert!(merged.contains("colors: true"));
        assert!(merged.contains("token: secret"));
        // Merging again replaces rather than duplicates.
        let again = merge(&merged, &lab, "k0slab").unwrap();
        assert_eq!(names(&again, "clusters"), ["prod", "kind-dev", "k0slab"]);
        // Into nothing.
        let fresh = merge("", &lab, "k0slab").unwrap();
        assert_eq!(names(&fresh, "contexts"), ["k0slab"]);
        assert!(has_context(&fresh, "k0slab"));
        // And out again.
        let removed = remove(&merged, "k0slab").unwrap();
        assert_eq!(names(&removed, "clusters"), ["prod", "kind-dev"]);
        assert_eq!(names(&removed, "users"), ["prod", "kind-dev"]);
        assert!(!has_context(&removed, "k0slab"));
    }

    #[test]
    fn a_broken_user_kubeconfig_is_refused_not_replaced() {
        let lab = normalize(K0SCTL, "k0slab").unwrap();
        assert!(merge("clusters: [unclosed", &lab, "k0slab").is_err());
        assert!(merge("- a list", &lab, "k0slab").is_err());
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
    fn edit_backs_up_and_keeps_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, USER).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let lab = normalize(K0SCTL, "k0slab").unwrap();
        let edited = edit(&path, |t| merge(t, &lab, "k0slab")).unwrap();
        let backup = edited.backup.unwrap();
        assert_eq!(fs::read_to_string(&backup).unwrap(), USER);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let second = edit(&path, |t| merge(t, &lab, "k0slab")).unwrap();
        assert_eq!(second.backup, None, "no change, no backup");
        let new = dir.path().join("sub/dir/config");
        let made = edit(&new, |t| merge(t, &lab, "k0slab")).unwrap();
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
}
