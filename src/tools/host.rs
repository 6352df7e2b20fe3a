//! Facts about the machine k0slab runs on: CPUs and memory, and k0slab's own directory.

use std::path::PathBuf;

use crate::environment::Environment;

/// k0slab's own directory on this host (the network probe, the record of the VMs k0slab
/// created): `K0SLAB_HOME`, else `~/.k0slab`.
pub fn k0slab_home(env: &Environment) -> PathBuf {
    env.get("K0SLAB_HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(
            || PathBuf::from(env.get("HOME").unwrap_or("/")).join(".k0slab"),
            PathBuf::from,
        )
}

/// Runs `f` holding the host-wide lock `name` in k0slab's directory (an exclusive lock on
/// `~/.k0slab/<name>`, released when `f` returns).
pub fn with_lock<T>(
    env: &Environment,
    name: &str,
    f: impl FnOnce() -> crate::Result<T>,
) -> crate::Result<T> {
    use crate::Error;
    let dir = k0slab_home(env);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let path = dir.join(name);
    let file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("opening", &path, e))?;
    file.lock().map_err(|e| Error::io("locking", &path, e))?;
    let result = f();
    let _ = file.unlock();
    result
}

/// Logical CPUs of the host.
pub fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Physical memory of the host in MB, if it can be read.
pub fn memory_mb() -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
        let kb: u64 = text
            .lines()
            .find(|l| l.starts_with("MemTotal:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        return Some(kb / 1024);
    }
    let out = std::process::Command::new("/usr/sbin/sysctl")
        .args(["-n", "hw.memsize"])
        .output()
        .ok()?;
    let bytes: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(bytes / 1024 / 1024)
}

/// The CPU's name as macOS gives it without root (`sysctl -n machdep.cpu.brand_string`, e.g.
/// "Apple M3 Pro"; a read-only sysctl, xnu `bsd/dev/arm64/sysctl.c` line 294), or `None`
/// where there is no such sysctl.
pub fn cpu_brand(env: &Environment, out: &crate::output::Output) -> Option<String> {
    let sysctl = crate::tools::on_path(env, "sysctl")?;
    crate::tools::process::Cmd::new(&sysctl, "asking macOS for the CPU's name")
        .args(["-n", "machdep.cpu.brand_string"])
        .output(env, out)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_has_cpus_and_memory() {
        assert!(cpus() >= 1);
        assert!(memory_mb().unwrap_or(1) > 0);
    }
}
