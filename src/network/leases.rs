//! macOS bootpd's leases file, `/var/db/dhcpd_leases`: which address each VM holds now.
//!
//! The format is blocks of `key=value` lines between `{` and `}`, among them `name=`,
//! `ip_address=`, `hw_address=1,<mac>` (hardware type 1 is Ethernet; bytes without leading
//! zeros) and `lease=0x<hex seconds since the epoch>` when it expires. Tart's `dhcp` resolver
//! reads the same file: it skips expired leases and keeps the newest lease per MAC
//! (cirruslabs/tart `Sources/tart/DHCPLeases/Leases.swift` and `Lease.swift`).
//!
//! This file is also where k0slab *assigns* each VM its planned address (see [`assign`]):
//! bootpd looks a client up by its identifier (option 61) and offers the address of that
//! entry, active or expired, with a finite lease (apple-oss-distributions/bootp
//! `bootpd.tproj/dhcpd.c` lines 752-800); it re-reads the file on SIGHUP, replacing its table
//! (`dhcpd.c` lines 187-209). bootpd matches `identifier=` with `strcmp`, so bytes are written
//! as bootpd writes them, without leading zeros (`bootplib/host_identifier.c` lines 83-86).

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
        !matches!(self.expires, Some(e) if e <= now)
    }
}

/// A MAC as bootpd writes it in `hw_address=` and `identifier=`: hex bytes without leading
/// zeros, joined by `:`.
pub fn bootpd_bytes(mac: Mac) -> String {
    mac.octets()
        .iter()
        .map(|b| format!("{b:x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One `{ … }` block of the file as it was written, with the fields k0slab reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    text: String,
    lease: Option<Lease>,
    identifier: Option<String>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line == "{" {
            current = Some(vec![line]);
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
            if line == "}" {
                let raw = format!("{}\n", lines.join("\n"));
                let lease = parse(&raw).into_iter().next();
                let identifier = lines
                    .iter()
                    .find_map(|l| l.trim().strip_prefix("identifier=").map(str::to_string));
                out.push(Block {
                    text: raw,
                    lease,
                    identifier,
                });
                current = None;
            }
        }
    }
    out
}

/// Another client's lease on one of the addresses k0slab assigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub address: Ipv4Addr,
    pub by: String,
    pub until: Option<u64>,
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is leased to {} until {}",
            self.address,
            self.by,
            self.until.map_or_else(
                || "forever".to_string(),
                |t| format!("{t} (seconds since the epoch)")
            )
        )
    }
}

/// How long a lease k0slab writes lasts: bootpd's default `lease_max` (one day). bootpd offers
/// the remaining time, then renews with its own `lease_max` (`dhcpd.c` lines 785-800,
/// 1138-1148). Never infinite: an entry without `lease=` is infinite to bootpd, and Softnet
/// overflows on an infinite lease and then drops all of the VM's traffic (cirruslabs/softnet
/// `lib/dhcp_snooper.rs` line 86).
pub const ASSIGNED_LEASE_SECONDS: u64 = 86_400;

/// `text` with one entry per assignment `(hostname, mac, address)`, placed first (bootpd keeps
/// the most recently used first, and looks a client up from the head: `bootplib/NICache.c`
/// lines 533-580, so the assigned entry is the one it finds). Expired entries of other clients
/// on those addresses are dropped. The MACs' other entries are dropped when `settled` (every
/// guest has moved); until then they stay, behind the assigned ones: bootpd counts an address
/// in use only while some entry names it (`dhcpd.c` `S_ipinuse`, lines 357-390), and the guest
/// still uses its old address until it moves, so dropping that entry early would let bootpd
/// hand it to the next new VM. An *active* lease of another client on one of the addresses is
/// returned instead, and nothing changes.
pub fn with_assignments(
    text: &str,
    assignments: &[(String, Mac, Ipv4Addr)],
    now: u64,
    settled: bool,
) -> Result<String, Vec<Taken>> {
    let ours = |mac: Mac| assignments.iter().any(|(_, m, _)| *m == mac);
    let identifiers: Vec<String> = assignments
        .iter()
        .map(|(_, m, _)| format!("1,{}", bootpd_bytes(*m)))
        .collect();
    let mut taken = Vec::new();
    let mut kept = Vec::new();
    let assigned = |b: &Block| {
        b.lease.as_ref().is_some_and(|l| {
            assignments
                .iter()
                .any(|(_, m, a)| l.mac == Some(*m) && l.address == *a)
        })
    };
    for block in blocks(text) {
        let mine = block
            .identifier
            .as_ref()
            .is_some_and(|i| identifiers.contains(i))
            || block.lease.as_ref().and_then(|l| l.mac).is_some_and(ours);
        if mine {
            // The assigned entry is written anew; an old one stays until the guests moved.
            if !settled && !assigned(&block) {
                kept.push(block.text);
            }
            continue;
        }
        if let Some(lease) = &block.lease {
            if assignments.iter().any(|(_, _, a)| *a == lease.address) {
                if lease.active_at(now) {
                    taken.push(Taken {
                        address: lease.address,
                        by: if lease.name.is_empty() {
                            block
                                .identifier
                                .clone()
                                .unwrap_or_else(|| "an unnamed client".into())
                        } else {
                            format!(
                                "{} ({})",
                                lease.name,
                                block.identifier.clone().unwrap_or_default()
                            )
                        },
                        until: lease.expires,
                    });
                }
                continue;
            }
        }
        kept.push(block.text);
    }
    if !taken.is_empty() {
        return Err(taken);
    }
    let mut out = String::new();
    for (hostname, mac, address) in assignments {
        let bytes = bootpd_bytes(*mac);
        out.push_str(&format!(
            "{{\n\tname={hostname}\n\tip_address={address}\n\thw_address=1,{bytes}\n\tidentifier=1,{bytes}\n\tlease={:#x}\n}}\n",
            now + ASSIGNED_LEASE_SECONDS
        ));
    }
    for block in kept {
        out.push_str(&block);
    }
    Ok(out)
}

/// `text` without the entries of these MACs (every other line kept as it was).
pub fn without_macs(text: &str, macs: &[Mac]) -> String {
    let identifiers: Vec<String> = macs
        .iter()
        .map(|m| format!("1,{}", bootpd_bytes(*m)))
        .collect();
    blocks(text)
        .into_iter()
        .filter(|b| {
            !(b.identifier
                .as_ref()
                .is_some_and(|i| identifiers.contains(i))
                || b.lease
                    .as_ref()
                    .and_then(|l| l.mac)
                    .is_some_and(|m| macs.contains(&m)))
        })
        .map(|b| b.text)
        .collect()
}

/// Parses the `{ name=… ip_address=… hw_address=1,… lease=0x… }` blocks.
pub fn parse(text: &str) -> Vec<Lease> {
    let mut leases = Vec::new();
    #[derive(Default)]
    struct Partial {
        name: String,
        address: Option<Ipv4Addr>,
        mac: Option<Mac>,
        expires: Option<u64>,
    }
    let mut current: Option<Partial> = None;
    for line in text.lines().map(str::trim) {
        if line == "{" {
            current = Some(Partial::default());
            continue;
        }
        let Some(p) = current.as_mut() else {
            continue;
        };
        if line == "}" {
            if let Some(address) = p.address {
                leases.push(Lease {
                    name: std::mem::take(&mut p.name),
                    address,
                    mac: p.mac,
                    expires: p.expires,
                });
            }
            current = None;
        } else if let Some(v) = line.strip_prefix("name=") {
            p.name = v.to_string();
        } else if let Some(v) = line.strip_prefix("ip_address=") {
            p.address = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("hw_address=") {
            // `1,<mac>`: only Ethernet (type 1) addresses are MACs.
            p.mac = v.strip_prefix("1,").and_then(|m| m.parse().ok());
        } else if let Some(v) = line.strip_prefix("lease=") {
            p.expires = u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
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

/// The address `mac` holds at `now`, as Tart's `dhcp` resolver picks it: only entries with a
/// `lease=` count (cirruslabs/tart `Sources/tart/MACAddressResolver/Lease.swift` line 14),
/// expired ones are dropped, and of several the one that lasts longest wins (`Leases.swift`
/// lines 40-51), wherever it stands in the file.
pub fn address_of(leases: &[Lease], mac: Mac, now: u64) -> Option<Ipv4Addr> {
    leases
        .iter()
        .filter(|l| l.mac == Some(mac))
        .filter_map(|l| Some((l.expires.filter(|e| *e > now)?, l.address)))
        .max_by_key(|(expires, _)| *expires)
        .map(|(_, address)| address)
}

/// Whether the file still has an entry that gives `mac` the address `address`, active or not:
/// bootpd offers an expired entry's address too (`dhcpd.c` lines 752-800), and a client's
/// RELEASE only sets the expiry to now (lines 1242-1252). bootpd rewrites the file from its
/// memory after every lease it grants (lines 225-242, 443-444, 1281-1284): an edit it had
/// not read yet is gone then.
pub fn holds(leases: &[Lease], mac: Mac, address: Ipv4Addr) -> bool {
    leases
        .iter()
        .any(|l| l.mac == Some(mac) && l.address == address)
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
        // Tart ignores an entry without `lease=` and prefers the longest lease, not the last.
        let text = "{\n\tip_address=192.168.64.9\n\thw_address=1,7e:1:c:d:e:f\n}\n{\n\tip_address=192.168.64.20\n\thw_address=1,7e:1:c:d:e:f\n\tlease=0x90\n}\n{\n\tip_address=192.168.64.5\n\thw_address=1,7e:1:c:d:e:f\n\tlease=0x30\n}\n";
        assert_eq!(
            address_of(&parse(text), mac, 0x10),
            Some("192.168.64.20".parse().unwrap())
        );
        // An expired entry still holds its address: bootpd offers it again.
        assert!(holds(&parse(text), mac, "192.168.64.5".parse().unwrap()));
        assert!(!holds(&parse(text), mac, "192.168.64.6".parse().unwrap()));
    }

    fn mac(s: &str) -> Mac {
        s.parse().unwrap()
    }

    #[test]
    fn assignments_replace_our_entries_drop_expired_ones_and_keep_the_rest() {
        let ours = mac("7e:01:0c:0d:0e:0f");
        let text = format!(
            "{{\n\tname=other\n\tip_address=192.168.64.3\n\thw_address=1,aa:bb:c:d:e:f\n\tidentifier=1,aa:bb:c:d:e:f\n\tlease=0x100\n}}\n{TEXT}"
        );
        let assigned = with_assignments(
            &text,
            &[(
                "lab-worker-1".into(),
                ours,
                "192.168.64.20".parse().unwrap(),
            )],
            0x20,
            true,
        )
        .unwrap();
        let leases = parse(&assigned);
        assert_eq!(leases[0].name, "lab-worker-1");
        assert_eq!(leases[0].expires, Some(0x20 + ASSIGNED_LEASE_SECONDS));
        assert!(assigned.starts_with("{\n\tname=lab-worker-1\n\tip_address=192.168.64.20\n\thw_address=1,7e:1:c:d:e:f\n\tidentifier=1,7e:1:c:d:e:f\n"), "{assigned}");
        assert_eq!(
            address_of(&leases, ours, 0x21),
            Some("192.168.64.20".parse().unwrap())
        );
        assert_eq!(
            leases.iter().filter(|l| l.mac == Some(ours)).count(),
            1,
            "exactly one entry per MAC"
        );
        assert!(assigned.contains("name=other"), "other clients stay");
        assert!(
            assigned.contains("name=duid"),
            "entries k0slab cannot read stay"
        );
        assert_eq!(
            without_macs(&assigned, &[ours]),
            assigned.split_once("}\n").unwrap().1
        );
    }

    #[test]
    fn an_active_lease_of_another_client_on_an_assigned_address_is_refused() {
        let text = "{\n\tname=someone\n\tip_address=192.168.64.10\n\thw_address=1,aa:0:0:0:0:1\n\tidentifier=1,aa:0:0:0:0:1\n\tlease=0x100\n}\n";
        let a = [(
            "lab-control-plane-1".to_string(),
            mac("7e:00:00:00:00:01"),
            "192.168.64.10".parse().unwrap(),
        )];
        let err = with_assignments(text, &a, 0x50, true).unwrap_err();
        assert_eq!(err[0].to_string(), "192.168.64.10 is leased to someone (1,aa:0:0:0:0:1) until 256 (seconds since the epoch)");
        let expired = with_assignments(text, &a, 0x200, true).unwrap();
        assert!(
            !expired.contains("someone"),
            "an expired lease on our address is dropped"
        );
    }

    #[test]
    fn a_moving_guests_old_entry_stays_behind_the_assigned_one_until_settled() {
        let ours = mac("7e:01:0c:0d:0e:0f");
        let text = "{\n\tname=ubuntu\n\tip_address=192.168.64.2\n\thw_address=1,7e:1:c:d:e:f\n\tidentifier=1,7e:1:c:d:e:f\n\tlease=0x300\n}\n";
        let a = [(
            "lab-worker-1".to_string(),
            ours,
            "192.168.64.20".parse().unwrap(),
        )];
        let moving = with_assignments(text, &a, 0x20, false).unwrap();
        let l = parse(&moving);
        assert_eq!(
            l.iter().map(|l| l.address.to_string()).collect::<Vec<_>>(),
            ["192.168.64.20", "192.168.64.2"],
            "assigned first (bootpd finds it), the old one still counts as in use"
        );
        assert_eq!(
            address_of(&l, ours, 0x21),
            Some("192.168.64.20".parse().unwrap()),
            "Tart: the longer lease"
        );
        assert_eq!(
            with_assignments(&moving, &a, 0x21, false)
                .unwrap()
                .matches("ip_address=")
                .count(),
            2
        );
        let settled = with_assignments(&moving, &a, 0x22, true).unwrap();
        assert_eq!(parse(&settled).len(), 1);
    }
}
