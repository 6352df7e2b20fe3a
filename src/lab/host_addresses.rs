//! Where a lab's addresses are reserved on this host, among labs: `~/.k0slab/addresses.json`.
//!
//! Two labs on one Mac share bootpd's network, so they must not plan the same .10/.20/.100.
//! The first lab keeps the PRD's host numbers; a later one gets the first numbers from those
//! on that no other lab holds ([`crate::topology::Topology::resolve_on`]), chosen at its first
//! `up` and kept in its `lab.json`. Held are the addresses of every other lab recorded here
//! (while its `lab.json` exists) and every line of `/etc/bootptab` outside this lab's own block
//! (other labs' reservations, also of other users, and the user's own bindings).
//!
//! `up` plans, renders and records under one host-wide lock ([`with_lock`]), so two labs
//! started at once never pick the same numbers; `destroy` forgets the lab's record.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::network::{bootptab, dhcp};

/// One lab's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub lab: String,
    pub addresses: Vec<Ipv4Addr>,
}

/// The record: canonical lab directory → its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub labs: BTreeMap<PathBuf, Held>,
}

fn path(env: &Environment) -> PathBuf {
    crate::tools::host::k0slab_home(env).join("addresses.json")
}

fn load(env: &Environment) -> Result<Record> {
    let path = path(env);
    match fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::Step(format!(
                "{} is not k0slab's record of the labs' addresses ({e}); move it away to start \
                 a new one",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
        Err(e) => Err(Error::io("reading", path, e)),
    }
}

fn save(env: &Environment, record: &Record) -> Result<()> {
    let mut json = serde_json::to_string_pretty(record).expect("the record serialises");
    json.push('\n');
    write_atomic(&path(env), json.as_bytes(), crate::lab::files::MODE_PUBLIC).map(|_| ())
}

/// Runs `f` holding the host-wide lock on the record (`addresses.json.lock`).
pub fn with_lock<T>(env: &Environment, f: impl FnOnce() -> Result<T>) -> Result<T> {
    crate::tools::host::with_lock(env, "addresses.json.lock", f)
}

/// The addresses other labs (and the user's own bootptab lines) hold, with who holds each, as
/// seen from lab `lab` in `lab_dir`.
pub fn held_by_others(
    env: &Environment,
    lab_dir: &Path,
    lab: &str,
) -> Result<BTreeMap<Ipv4Addr, String>> {
    let here = crate::lab::registry::canonical(lab_dir);
    let mut held = BTreeMap::new();
    for (dir, h) in load(env)?.labs {
        // A lab whose directory lost its lab.json is gone (or never got past render).
        if dir == here || !dir.join(crate::lab::files::LAB_JSON).is_file() {
            continue;
        }
        for a in h.addresses {
            held.insert(a, format!("lab {} in {}", h.lab, dir.display()));
        }
    }
    let text = fs::read_to_string(dhcp::Files::from_env(env).bootptab).unwrap_or_default();
    let ours = bootptab::lab_block(&text, lab).unwrap_or_default();
    for b in bootptab::entries(&text) {
        if !ours.contains(&b) {
            held.entry(b.address)
                .or_insert_with(|| format!("{} in bootptab", b.hostname));
        }
    }
    Ok(held)
}

/// Records `addresses` as lab `lab`'s in `lab_dir`. Call it inside [`with_lock`], with the
/// plan made there.
pub fn record(
    env: &Environment,
    lab_dir: &Path,
    lab: &str,
    addresses: Vec<Ipv4Addr>,
) -> Result<()> {
    let mut record = load(env)?;
    let held = Held {
        lab: lab.to_string(),
        addresses,
    };
    let dir = crate::lab::registry::canonical(lab_dir);
    if record.labs.get(&dir) == Some(&held) {
        return Ok(());
    }
    record.labs.insert(dir, held);
    save(env, &record)
}

/// The directories of the labs on this host (from `up` until `destroy`).
pub fn lab_dirs(env: &Environment) -> Result<Vec<PathBuf>> {
    Ok(load(env)?.labs.into_keys().collect())
}

/// Forgets the addresses of the lab in `lab_dir` (`destroy`).
pub fn forget(env: &Environment, lab_dir: &Path) -> Result<()> {
    with_lock(env, || {
        let mut record = load(env)?;
        if record
            .labs
            .remove(&crate::lab::registry::canonical(lab_dir))
            .is_some()
        {
            save(env, &record)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_labs_and_bootptab_lines_are_held_and_a_lab_sees_past_its_own() {
        let home = tempfile::tempdir().unwrap();
        let a = home.path().join("a");
        let b = home.path().join("b");
        fs::create_dir_all(&a).unwrap();
        fs::create_dir_all(&b).unwrap();
        fs::write(a.join("lab.json"), "{}").unwrap();
        let bootptab_path = home.path().join("bootptab");
        fs::write(
            &bootptab_path,
            "%%\nprinter 1 0:1:2:3:4:5 192.168.64.40\n# k0slab lab b: begin (written by k0slab; `k0slab destroy` removes it)\nb-worker-1\t1\t02:6b:30:a8:40:15\t192.168.64.21\n# k0slab lab b: end\n",
        )
        .unwrap();
        let env = Environment::from_pairs([
            ("K0SLAB_HOME", home.path().to_str().unwrap()),
            ("K0SLAB_BOOTPTAB", bootptab_path.to_str().unwrap()),
        ]);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        with_lock(&env, || record(&env, &a, "a", vec![ip("192.168.64.10")])).unwrap();
        with_lock(&env, || record(&env, &b, "b", vec![ip("192.168.64.11")])).unwrap();
        let seen_by_b = held_by_others(&env, &b, "b").unwrap();
        assert_eq!(
            seen_by_b.keys().copied().collect::<Vec<_>>(),
            [ip("192.168.64.10"), ip("192.168.64.40")],
            "a's record and the user's printer; not b's own block"
        );
        // b has no lab.json: a does not see its record, only its bootptab block.
        let seen_by_a = held_by_others(&env, &a, "a").unwrap();
        assert_eq!(
            seen_by_a.keys().copied().collect::<Vec<_>>(),
            [ip("192.168.64.21"), ip("192.168.64.40")]
        );
        forget(&env, &a).unwrap();
        assert!(held_by_others(&env, &b, "b")
            .unwrap()
            .keys()
            .all(|a| *a != ip("192.168.64.10")));
    }
}
