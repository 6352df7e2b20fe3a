//! macOS bootpd's leases file, `/var/db/dhcpd_leases`: which address each VM holds now.
//!
//! The format is blocks of `key=value` lines between `{` and `}`, among them `name=`,
//! `ip_address=`, `hw_address=1,<mac>` (hardware type 1 is Ethernet; bytes without leading
//! zeros) and `lease=0x<hex seconds since the epoch>` when it expires. Tart's `dhcp` resolver
//! reads the same file: it skips expired leases and keeps the newest lease per MAC
//! (cirruslabs/tart `Sources/tart/DHCPLeases/Leases.swift` and `Lease.swift`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::bootptab::Mac;
use crate::environment::Environment;

/// Where macOS' DHCP server keeps its leases.
pub const DEFAULT_PATH: &str = "/var/db/dhcpd_leases";

/// The leases file: `K0SLAB_DHCP_LEASES`, else macOS' default.
pub fn path(env: &Environment) -> PathBuf {
    env.get("K0SLAB_DHCP_LEASES")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_PATH), PathBuf::from)
}

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The host name the client sent.
    pub name: String,
    pub address: Ipv4Addr,
    /// The client's Ethernet address, when the lease records one.
    pub mac: Option<Mac>,
    /// When the lease ends, in seconds since the epoch.
    pub expires: Option<u64>,
}

impl Lease {
    /// Whether the lease still holds at `now` (seconds since the epoch); one without an end does.
    pub fn active_at(&self, now: u64) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

/// Parses the `{ name=… ip_address=… hw_address=1,… lease=0x… }` blocks.
pub fn parse(text: &str) -> Vec<Lease> {
    let mut leases = Vec::new();
    let mut current: Option<(String, Option<Ipv4Addr>, Option<Mac>, Option<u64>)> = None;
    for line in text.lines().map(str::trim) {
        if line == "{" {
            current = Some((String::new(), None, None, None));
            continue;
        }
        let Some((name, address, mac, expires)) = current.as_mut() else {
            continue;
        };
        if line == "}" {
            if let Some(address) = *address {
                leases.push(Lease {
                    name: std::mem::take(name),
                    address,
                    mac: *mac,
                    expires: *expires,
                });
            }
            current = None;
        } else if let Some(v) = line.strip_prefix("name=") {
            *name = v.to_string();
        } else if let Some(v) = line.strip_prefix("ip_address=") {
            *address = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("hw_address=") {
            // `1,<mac>`: only Ethernet (type 1) addresses are MACs.
            *mac = v.strip_prefix("1,").and_then(|m| m.parse().ok());
        } else if let Some(v) = line.strip_prefix("lease=") {
            *expires = u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
        }
    }
    leases
}

/// The leases in `path`; `None` when the host has no such file.
pub fn read(path: &Path) -> Option<Vec<Lease>> {
    std::fs::read_to_string(path).ok().map(|t| parse(&t))
}

/// Seconds since the epoch, now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The address `mac` holds at `now`, as Tart's `dhcp` resolver would pick it: the active lease
/// that comes last in the file (bootpd writes the newest last).
pub fn address_of(leases: &[Lease], mac: Mac, now: u64) -> Option<Ipv4Addr> {
    leases
        .iter()
        .filter(|l| l.mac == Some(mac) && l.active_at(now))
        .next_back()
        .map(|l| l.address)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "{\n\tname=ubuntu\n\tip_address=192.168.64.2\n\thw_address=1,7e:1:c:d:e:f\n\tidentifier=1,7e:1:c:d:e:f\n\tlease=0x6\n}\n{\n\tname=other\n\tip_address=192.168.64.10\n\thw_address=1,7e:1:c:d:e:f\n\tlease=0x10\n}\n{\n\tname=broken\n}\n{\n\tname=duid\n\tip_address=192.168.64.3\n\thw_address=ff,1:2\n}\n";

    #[test]
    fn leases_parse() {
        let leases = parse(TEXT);
        let mac: Mac = "7e:01:0c:0d:0e:0f".parse().unwrap();
        assert_eq!(leases.len(), 3);
        assert_eq!(
            leases[0],
            Lease {
                name: "ubuntu".into(),
                address: "192.168.64.2".parse().unwrap(),
                mac: Some(mac),
                expires: Some(6),
            }
        );
        assert_eq!(leases[2].mac, None, "a DUID is not a MAC");
        assert_eq!(
            address_of(&leases, mac, 5),
            Some("192.168.64.10".parse().unwrap())
        );
        assert_eq!(
            address_of(&leases, mac, 7),
            Some("192.168.64.10".parse().unwrap())
        );
        assert_eq!(address_of(&leases, mac, 16), None, "both expired");
    }
}
