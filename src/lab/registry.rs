//! The Tart VMs k0slab created on this host, and for which lab directory:
//! `~/.k0slab/vms.json`. Tart VM names are global on a host, so a VM with a lab's name may
//! belong to another lab (or to no lab at all): `up` refuses to use such a VM, and `destroy`
//! deletes only VMs recorded here for its own lab directory.
//!
//! A VM is recorded before `vagrant up` clones it (so an interrupted `up` leaves no VM
//! unaccounted for) and forgotten once it is deleted. Writers hold an exclusive lock on
//! `vms.json.lock`; the file is replaced atomically.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Who a VM was created for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub lab: String,
    /// The lab directory, canonical.
    pub lab_dir: PathBuf,
}

/// The record: Tart VM name → owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub vms: BTreeMap<String, Owner>,
}

impl Registry {
    pub fn owner(&self, vm: &str) -> Option<&Owner> {
        self.vms.get(vm)
    }

    /// The VMs recorded for lab directory `dir`.
    pub fn of_lab(&self, dir: &Path) -> Vec<(String, Owner)> {
        let dir = canonical(dir);
        self.vms
            .iter()
            .filter(|(_, o)| o.lab_dir == dir)
            .map(|(vm, o)| (vm.clone(), o.clone()))
            .collect()
    }
}

/// The lab directory as the registry keys it: canonical when it exists.
pub fn canonical(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn path(env: &Environment) -> PathBuf {
    crate::tools::host::k0slab_home(env).join("vms.json")
}

/// The registry as it is now (empty when there is none yet).
pub fn load(env: &Environment) -> Result<Registry> {
    let path = path(env);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::Step(format!(
                "{} is not k0slab's record of the VMs it created ({e}); move it away to \
                 start a new one",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

/// Changes the registry under its lock.
fn update(env: &Environment, change: impl FnOnce(&mut Registry)) -> Result<()> {
    let path = path(env);
    let dir = path.parent().expect("vms.json has a parent");
    fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let lock_path = dir.join("vms.json.lock");
    let lock = File::create(&lock_path).map_err(|e| Error::io("creating", &lock_path, e))?;
    lock.lock()
        .map_err(|e| Error::io("locking", &lock_path, e))?;
    let mut registry = load(env)?;
    change(&mut registry);
    let mut json = serde_json::to_string_pretty(&registry).expect("registry serialises");
    json.push('\n');
    write_atomic(&path, json.as_bytes(), crate::lab::files::MODE_PUBLIC).map(|_| ())
}

/// Records `vms` as created for the lab `lab` in `dir`.
pub fn claim(env: &Environment, dir: &Path, lab: &str, vms: &[String]) -> Result<()> {
    let owner = Owner {
        lab: lab.to_string(),
        lab_dir: canonical(dir),
    };
    update(env, |r| {
        for vm in vms {
            r.vms.insert(vm.clone(), owner.clone());
        }
    })
}

/// Forgets `vms` (deleted).
pub fn forget(env: &Environment, vms: &[String]) -> Result<()> {
    update(env, |r| {
        for vm in vms {
            r.vms.remove(vm);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_forget_and_ownership_by_directory() {
        let home = tempfile::tempdir().unwrap();
        let env = Environment::from_pairs([("K0SLAB_HOME", home.path().to_str().unwrap())]);
        let a = home.path().join("a");
        let b = home.path().join("b");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        claim(&env, &a, "lab-a", &["lab-a-worker-1".into()]).unwrap();
        claim(&env, &b, "lab-b", &["lab-b-worker-1".into()]).unwrap();
        let r = load(&env).unwrap();
        assert_eq!(r.owner("lab-a-worker-1").unwrap().lab, "lab-a");
        assert_eq!(r.of_lab(&a).len(), 1);
        // The same directory by another spelling is the same lab.
        assert_eq!(r.of_lab(&a.join("..").join("a")).len(), 1);
        forget(&env, &["lab-a-worker-1".into()]).unwrap();
        let r = load(&env).unwrap();
        assert!(r.owner("lab-a-worker-1").is_none());
        assert_eq!(r.of_lab(&b)[0].0, "lab-b-worker-1");
    }

    #[test]
    fn a_damaged_record_is_an_error_not_an_empty_one() {
        let home = tempfile::tempdir().unwrap();
        fs::write(home.path().join("vms.json"), "{").unwrap();
        let env = Environment::from_pairs([("K0SLAB_HOME", home.path().to_str().unwrap())]);
        assert!(load(&env).is_err());
        assert!(claim(&env, home.path(), "x", &["x-a".into()]).is_err());
    }
}
