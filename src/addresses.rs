//! Static addresses in the lab subnet: controllers from host .10, workers from host .20, the HA
//! endpoint at host .100. Every address is claimed once; a second claim is an input error.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::error::InputError;

/// Host number of control-plane-1 (control-plane-N is at .10 + N - 1).
pub const FIRST_CONTROLLER_HOST: u32 = 10;
/// Host number of worker-1.
pub const FIRST_WORKER_HOST: u32 = 20;
/// Host number of the HA endpoint unless K0SLAB_ENDPOINT_IP says otherwise.
pub const DEFAULT_ENDPOINT_HOST: u32 = 100;
/// The first host of the subnet is the gateway (on macOS, the host's bridge).
const GATEWAY_HOST: u32 = 1;

/// Host number `n` of `subnet` (network address + n), if it is a usable host address.
pub fn host(subnet: Ipv4Net, n: u32) -> Option<Ipv4Addr> {
    let addr = u32::from(subnet.network()).checked_add(n)?;
    let addr = Ipv4Addr::from(addr);
    (n > 0 && subnet.contains(&addr) && addr != subnet.broadcast()).then_some(addr)
}

/// Addresses handed out so far, with the machine (or role) that holds each.
#[derive(Debug, Default)]
pub struct Allocation {
    subnet: Option<Ipv4Net>,
    owners: BTreeMap<Ipv4Addr, String>,
}

impl Allocation {
    pub fn new(subnet: Ipv4Net) -> Self {
        let mut owners = BTreeMap::new();
        if let Some(gw) = host(subnet, GATEWAY_HOST) {
            owners.insert(gw, "the gateway (the host's bridge)".to_string());
        }
        Self {
            subnet: Some(subnet),
            owners,
        }
    }

    /// Claims host number `n` for `owner`.
    pub fn claim_host(&mut self, n: u32, owner: &str) -> Result<Ipv4Addr, InputError> {
        let subnet = self.subnet.expect("allocation has a subnet");
        let addr = host(subnet, n).ok_or_else(|| {
            InputError::Rule(format!(
                "{owner} would get host .{n} of {subnet}, which is outside the subnet"
            ))
        })?;
        self.claim(addr, owner)
    }

    /// Marks `addr` as held by `holder` (another lab on this host), if it lies in the subnet.
    pub fn hold(&mut self, addr: Ipv4Addr, holder: &str) {
        if self.subnet.is_some_and(|s| s.contains(&addr)) {
            self.owners
                .entry(addr)
                .or_insert_with(|| holder.to_string());
        }
    }

    /// Claims the first host number from `n` on that nobody holds, for `owner`.
    pub fn claim_first_free(&mut self, n: u32, owner: &str) -> Result<Ipv4Addr, InputError> {
        let subnet = self.subnet.expect("allocation has a subnet");
        let free = (n..)
            .map_while(|h| host(subnet, h))
            .find(|a| !self.owners.contains_key(a))
            .ok_or_else(|| {
                InputError::Rule(format!(
                    "{owner} would get host .{n} of {subnet} or a later one, but other labs on \
                     this host hold every one of them: destroy one, or choose another \
                     K0SLAB_SUBNET"
                ))
            })?;
        self.claim(free, owner)
    }

    /// Claims `addr` for `owner`: it must be a host address of the subnet that nobody holds.
    pub fn claim(&mut self, addr: Ipv4Addr, owner: &str) -> Result<Ipv4Addr, InputError> {
        let subnet = self.subnet.expect("allocation has a subnet");
        if !subnet.contains(&addr) {
            return Err(InputError::Rule(format!(
                "{owner} would get {addr}, which is outside the lab subnet {subnet}"
            )));
        }
        if addr == subnet.network() || addr == subnet.broadcast() {
            return Err(InputError::Rule(format!(
                "{owner} would get {addr}, the {} address of {subnet}",
                if addr == subnet.network() {
                    "network"
                } else {
                    "broadcast"
                }
            )));
        }
        if let Some(holder) = self.owners.get(&addr) {
            return Err(InputError::Rule(format!(
                "{owner} would get {addr}, which is already {holder}'s address"
            )));
        }
        self.owners.insert(addr, owner.to_string());
        Ok(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn hosts_count_from_the_network_address() {
        let n = net("192.168.64.0/24");
        assert_eq!(host(n, 10), Some(Ipv4Addr::new(192, 168, 64, 10)));
        assert_eq!(host(n, 100), Some(Ipv4Addr::new(192, 168, 64, 100)));
        assert_eq!(host(n, 254), Some(Ipv4Addr::new(192, 168, 64, 254)));
        assert_eq!(host(n, 255), None, "broadcast");
        assert_eq!(host(n, 256), None, "outside");
        assert_eq!(host(n, 0), None, "network");
        assert_eq!(
            host(net("10.1.0.0/16"), 20),
            Some(Ipv4Addr::new(10, 1, 0, 20))
        );
        assert_eq!(
            host(net("10.1.0.0/16"), 300),
            Some(Ipv4Addr::new(10, 1, 1, 44))
        );
    }

    #[test]
    fn a_second_claim_names_the_holder() {
        let mut a = Allocation::new(net("192.168.64.0/24"));
        a.claim_host(20, "worker-1").unwrap();
        let err = a.claim_host(20, "control-plane-11").unwrap_err();
        assert_eq!(
            err.to_string(),
            "control-plane-11 would get 192.168.64.20, which is already worker-1's address"
        );
    }

    #[test]
    fn the_first_free_host_skips_what_others_hold() {
        let mut a = Allocation::new(net("192.168.64.0/24"));
        a.hold("192.168.64.10".parse().unwrap(), "lab a");
        a.hold("192.168.64.11".parse().unwrap(), "lab a");
        a.hold("10.0.0.1".parse().unwrap(), "elsewhere");
        assert_eq!(
            a.claim_first_free(10, "control-plane-1")
                .unwrap()
                .to_string(),
            "192.168.64.12"
        );
        let err = a.claim(Ipv4Addr::new(192, 168, 64, 10), "x").unwrap_err();
        assert!(err.to_string().contains("lab a"), "{err}");
        for h in 13..=254 {
            a.hold(Ipv4Addr::new(192, 168, 64, h), "lab b");
        }
        let err = a.claim_first_free(20, "worker-1").unwrap_err();
        assert!(err.to_string().contains("other labs on this host"), "{err}");
    }

    #[test]
    fn gateway_network_broadcast_and_outside_are_refused() {
        let mut a = Allocation::new(net("192.168.64.0/24"));
        for (ip, what) in [
            ("192.168.64.1", "gateway"),
            ("192.168.64.0", "network"),
            ("192.168.64.255", "broadcast"),
            ("192.168.65.10", "outside"),
        ] {
            let err = a.claim(ip.parse().unwrap(), "the endpoint").unwrap_err();
            assert!(err.to_string().contains(what), "{ip}: {err}");
        }
    }
}
