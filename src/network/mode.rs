//! How the lab's VMs are attached to the host's network (`K0SLAB_NETWORK`), and the `tart run`
//! arguments that attach them.
//!
//! Facts this rests on (see the README section "Networking on macOS" for the whole story):
//! - Tart's default shared (NAT) network puts every VM interface on `bridge100` as a private
//!   member on macOS 13+, so VMs reach the host and the internet but not each other
//!   (cirruslabs/tart#718, cirruslabs/tart#837, cirruslabs/softnet#37).
//! - Softnet (`tart run --net-softnet`) replaces that isolation with its own filter: with
//!   `--net-softnet-allow=0.0.0.0/0` a VM may reach any address, including other VMs, but every
//!   packet whose source is not the VM's own DHCP lease is dropped (cirruslabs/softnet
//!   `src/main.rs` `--allow`, `lib/proxy/vm.rs` `valid_ip_source`).
//! - vagrant-tart hands `extra_run_args` to `tart run` unchanged (letiemble/vagrant-tart
//!   `lib/vagrant-tart/config.rb`, `lib/vagrant-tart/util/driver.rb`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Softnet's allow rule that lets a VM reach every address, other VMs included.
pub const SOFTNET_ALLOW_ALL: &str = "0.0.0.0/0";

/// The network the lab's VMs are attached to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum NetworkMode {
    /// Tart's shared network through Softnet, with VM-to-VM traffic allowed (the default).
    #[default]
    Softnet,
    /// Tart's shared network as it is: VMs reach the host but, on macOS 13+, not each other.
    Nat,
    /// Bridged to a host interface (e.g. `en0`): the VMs sit on that LAN.
    Bridged(String),
}

impl NetworkMode {
    /// The arguments vagrant-tart passes on to `tart run` (`extra_run_args`).
    pub fn tart_run_args(&self) -> Vec<String> {
        match self {
            NetworkMode::Softnet => vec![
                "--net-softnet".into(),
                format!("--net-softnet-allow={SOFTNET_ALLOW_ALL}"),
            ],
            NetworkMode::Nat => Vec::new(),
            NetworkMode::Bridged(interface) => vec![format!("--net-bridged={interface}")],
        }
    }

    /// Whether the host's DHCP server (bootpd) hands out the VMs' addresses, so a bootptab
    /// binding decides them. On a bridged LAN some other DHCP server does.
    pub fn served_by_bootpd(&self) -> bool {
        !matches!(self, NetworkMode::Bridged(_))
    }

    /// Whether an address beside a VM's lease (such as a keepalived VIP) can work at all.
    /// Softnet drops it by design; on `nat` only the network probe can tell.
    pub fn extra_addresses(&self) -> ExtraAddresses {
        match self {
            NetworkMode::Softnet => ExtraAddresses::Dropped,
            NetworkMode::Nat => ExtraAddresses::Unknown,
            NetworkMode::Bridged(_) => ExtraAddresses::Allowed,
        }
    }
}

/// What the network does with a packet from an address that is not the VM's own lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraAddresses {
    Dropped,
    Unknown,
    Allowed,
}

/// What `K0SLAB_NETWORK` allows, for error messages.
pub const ALLOWED: &str =
    "softnet (the default: VMs reach each other through Softnet), nat (Tart's shared network: \
     VMs do not reach each other on macOS 13+) or bridged:<interface> such as bridged:en0";

fn valid_interface(name: &str) -> bool {
    // macOS interface names: a letter, then letters and digits (en0, bridge0, utun3), at most
    // 15 characters (IFNAMSIZ - 1).
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 15
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

impl FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "softnet" => Ok(Self::Softnet),
            "nat" | "shared" => Ok(Self::Nat),
            _ => match s.strip_prefix("bridged:") {
                Some(interface) if valid_interface(interface) => {
                    Ok(Self::Bridged(interface.to_string()))
                }
                Some(_) => Err(format!(
                    "{ALLOWED}; the interface is a macOS interface name like en0 (see \
                     `networksetup -listallhardwareports`)"
                )),
                None => Err(ALLOWED.to_string()),
            },
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkMode::Softnet => f.write_str("softnet"),
            NetworkMode::Nat => f.write_str("nat"),
            NetworkMode::Bridged(interface) => write!(f, "bridged:{interface}"),
        }
    }
}

impl TryFrom<String> for NetworkMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<NetworkMode> for String {
    fn from(m: NetworkMode) -> String {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_back() {
        for s in ["softnet", "nat", "bridged:en0", "bridged:bridge10"] {
            assert_eq!(s.parse::<NetworkMode>().unwrap().to_string(), s);
        }
        assert_eq!("shared".parse::<NetworkMode>().unwrap(), NetworkMode::Nat);
        for bad in [
            "",
            "Softnet",
            "bridged",
            "bridged:",
            "bridged:EN0",
            "bridged:en0;rm",
            "bridged:0en",
            "host",
        ] {
            assert!(bad.parse::<NetworkMode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tart_run_arguments() {
        assert_eq!(
            NetworkMode::Softnet.tart_run_args(),
            ["--net-softnet", "--net-softnet-allow=0.0.0.0/0"]
        );
        assert!(NetworkMode::Nat.tart_run_args().is_empty());
        assert_eq!(
            NetworkMode::Bridged("en0".into()).tart_run_args(),
            ["--net-bridged=en0"]
        );
    }
}
