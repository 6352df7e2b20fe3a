//! Facts about the machine k0slab runs on: CPUs, memory, DHCP leases of Tart's network.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::environment::Environment;

/// Where macOS' DHCP server (used by Tart's shared network) keeps its leases.
pub const DEFAULT_DHCP_LEASES: &str = "/var/db/dhcpd_leases";

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

/// The DHCP leases file: `K0SLAB_DHCP_LEASES`, else macOS' default.
pub fn dhcp_leases_path(env: &Environment) -> PathBuf {
    env.get("K0SLAB_DHCP_LEASES")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_DHCP_LEASES), PathBuf::from)
}

/// A DHCP lease: the name the client gave and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub address: Ipv4Addr,
}

/// Parses macOS' `dhcpd_leases` (`{ name=… ip_address=… … }` blocks).
pub fn parse_leases(text: &str) -> Vec<Lease> {
    let mut leases = Vec::new();
    let (mut name, mut address) = (String::new(), None);
    for line in text.lines().map(str::trim) {
        if line == "{" {
            name.clear();
            address = None;
        } else if let Some(v) = line.strip_prefix("name=") {
            name = v.to_string();
        } else if let Some(v) = line.strip_prefix("ip_address=") {
            address = v.parse().ok();
        } else if line == "}" {
            if let Some(address) = address.take() {
                leases.push(Lease {
                    name: std::mem::take(&mut name),
                    address,
                });
            }
        }
    }
    leases
}

/// The leases in `path`; `None` when the host has no such file.
pub fn read_leases(path: &Path) -> Option<Vec<Lease>> {
    std::fs::read_to_string(path).ok().map(|t| parse_leases(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_parse() {
        let text = "{\n\tname=ubuntu\n\tip_address=192.168.64.2\n\thw_address=1,a:b:c:d:e:f\n\tlease=0x6\n}\n{\n\tname=other\n\tip_address=192.168.64.10\n}\n{\n\tname=broken\n}\n";
        assert_eq!(
            parse_leases(text),
            vec![
                Lease {
                    name: "ubuntu".into(),
                    address: "192.168.64.2".parse().unwrap()
                },
                Lease {
                    name: "other".into(),
                    address: "192.168.64.10".parse().unwrap()
                },
            ]
        );
    }

    #[test]
    fn host_has_cpus_and_memory() {
        assert!(cpus() >= 1);
        assert!(memory_mb().unwrap_or(1) > 0);
    }
}
