//! One command at a time per lab: every command that changes a lab holds an exclusive lock on
//! it while it runs. The lock is an `flock` on `~/.k0slab/locks/<hash of the lab directory>`,
//! so the kernel releases it when the holder exits in any way (a killed process never blocks
//! the next run) and the lab directory holds no lock file. The holder writes its pid and
//! command into the file for the message a second command prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::environment::Environment;
use crate::error::{Error, Result};

/// How long a second command waits for the lock, unless `K0SLAB_LOCK_WAIT`.
const WAIT: Duration = Duration::from_secs(10);

/// Held while a command changes the lab; released on drop (or when the process ends).
#[derive(Debug)]
pub struct LabLock {
    _file: File,
}

/// The lab directory as the lock keys it: its parent resolved (the directory itself may not
/// exist yet), so that `lab`, `./lab` and a path through a symlink are one lab.
fn key(dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .unwrap_or_else(|_| parent.to_path_buf())
            .join(name),
        _ => absolute,
    }
}

fn lock_path(env: &Environment, dir: &Path) -> PathBuf {
    let digest = crate::fsutil::digest(key(dir).as_os_str().as_encoded_bytes());
    crate::tools::host::k0slab_home(env)
        .join("locks")
        .join(format!("{}.lock", &digest[..16]))
}

fn wait_limit(env: &Environment) -> Result<Duration> {
    Ok(crate::inputs::duration_var(env, "K0SLAB_LOCK_WAIT", WAIT)?)
}

/// Takes the lock of lab directory `dir` for `command` (e.g. "k0slab up"), waiting a short
/// while for a holder to finish; otherwise an error naming the holder.
pub fn acquire(env: &Environment, dir: &Path, command: &str) -> Result<LabLock> {
    let limit = wait_limit(env)?;
    let path = lock_path(env, dir);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if started.elapsed() < limit => {
                crate::tools::process::check_interrupted()?;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::Busy {
                    dir: dir.display().to_string(),
                    holder: describe_holder(&holder),
                    waited: limit.as_secs(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
        }
    }
    let record = format!(
        "pid={}\ncommand={command}\ndir={}\n",
        std::process::id(),
        key(dir).display()
    );
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(record.as_bytes()))
        .map_err(|e| Error::io("writing", &path, e))?;
    Ok(LabLock { _file: file })
}

/// "`k0slab up` (pid 123)" from the holder's record.
fn describe_holder(record: &str) -> String {
    let field = |k: &str| {
        record
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    match (field("command"), field("pid")) {
        (Some(c), Some(p)) => format!("`{c}` (pid {p})"),
        _ => "another k0slab command".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(home: &Path, wait: &str) -> Environment {
        Environment::from_pairs([
            ("K0SLAB_HOME", home.to_str().unwrap()),
            ("K0SLAB_LOCK_WAIT", wait),
        ])
    }

    #[test]
    fn a_second_holder_is_refused_naming_the_first_and_gets_it_once_released() {
        let home = tempfile::tempdir().unwrap();
        let env = env(home.path(), "200ms");
        let lab = home.path().join("lab");
        let first = acquire(&env, &lab, "k0slab up").unwrap();
        let err = acquire(&env, &home.path().join("./lab"), "k0slab destroy").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("`k0slab up` (pid {})", std::process::id())),
            "{message}"
        );
        // Another lab is not blocked.
        let other = acquire(&env, &home.path().join("lab2"), "k0slab up").unwrap();
        drop(first);
        drop(other);
        assert!(acquire(&env, &lab, "k0slab destroy").is_ok());
    }

    #[test]
    fn a_bad_wait_is_bad_input() {
        let home = tempfile::tempdir().unwrap();
        let err = acquire(&env(home.path(), "soon"), home.path(), "k0slab up").unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_INPUT);
    }
}
