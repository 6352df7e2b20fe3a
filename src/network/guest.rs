//! What a guest says about its addresses (`ip -4 -o addr show`, iproute2's format) and the
//! commands k0slab runs there to move it to its planned address. Pure: the step that runs
//! them is [`crate::workflow::assign`].

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use regex::Regex;

use crate::tools::process::shell_quote;
use crate::topology::{Endpoint, EndpointKind, Node, NodeKind};

/// The guest command that prints the guest's hostname, then the IPv4 addresses of the
/// interface with the default route: k0slab confirms a guest by both (another lab VM may
/// answer at an address for a moment while the moves go on).
pub const ADDRESS_QUERY: &str =
    "hostname; ip -4 -o addr show scope global dev \"$(ip -4 route show default | awk '{print $5; exit}')\"";

static INET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\binet (\d+\.\d+\.\d+\.\d+)/\d+").expect("valid regex"));

/// The addresses in `ip -4 -o addr show` output.
pub fn addresses_in(output: &str) -> Vec<Ipv4Addr> {
    INET.captures_iter(output)
        .filter_map(|c| c[1].parse().ok())
        .collect()
}

/// One IPv4 address in `ip -4 -o addr show` output, and whether the kernel lists it as a
/// secondary address (one added in the subnet of an address the interface already has).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestAddress {
    pub address: Ipv4Addr,
    pub secondary: bool,
}

/// The addresses of `ip -4 -o addr show` output with their flags. One line per address: the
/// flags follow `scope global` (iproute2/iproute2 ip/ipaddress.c line 1680; print_ifa_flags,
/// lines 1427-1448 with the table at 1397-1412: `secondary` for IFA_F_SECONDARY, `dynamic`
/// for an address that is not permanent), then the label, then with `-o` a `\` instead of
/// the new line before `valid_lft` (lines 1698-1700; ip/ip.c line 302).
pub fn guest_addresses(output: &str) -> Vec<GuestAddress> {
    output
        .lines()
        .filter_map(|line| {
            let c = INET.captures(line)?;
            let flags = line[c.get(0)?.end()..]
                .split('\\')
                .next()
                .unwrap_or_default();
            Some(GuestAddress {
                address: c[1].parse().ok()?,
                secondary: flags.split_whitespace().any(|f| f == "secondary"),
            })
        })
        .collect()
}

/// The hostname and addresses in [`ADDRESS_QUERY`]'s output.
pub fn guest_in(output: &str) -> (String, Vec<GuestAddress>) {
    let hostname = output.lines().next().unwrap_or_default().trim().to_string();
    (hostname, guest_addresses(output))
}

/// The one address beside its planned address that a machine may have: the lab's VIP on a
/// controller in `cplb` mode. keepalived (run by k0s on every controller) puts the VIP on
/// the interface of the default route of the controller that is VRRP master, as a second
/// address in the lab's subnet (k0sproject/k0s pkg/component/controller/cplb/
/// cplb_templates.go lines 17 and 37-41: `interface`, `virtual_ipaddress` with the VIP/prefix;
/// pkg/apis/k0s/v1beta1/cplb.go lines 92-96, 146-151: the interface of the default route;
/// the kernel marks an address in the subnet of one the interface has `secondary`: k0s
/// docs/cplb.md lines 403-404 show `inet <VIP>/24 scope global secondary eth0`).
pub fn allowed_extra(endpoint: &Endpoint, node: &Node) -> Option<Ipv4Addr> {
    (endpoint.kind == EndpointKind::Cplb && node.kind == NodeKind::Controller)
        .then_some(endpoint.address)
}

/// Whether the guest holds exactly its planned address: as its one primary address, with no
/// other address but `extra` (see [`allowed_extra`]), which may only be secondary.
pub fn only_planned(
    addresses: &[GuestAddress],
    planned: Ipv4Addr,
    extra: Option<Ipv4Addr>,
) -> bool {
    let mut primary = addresses.iter().filter(|a| !a.secondary);
    let planned_primary =
        primary.next().map(|a| a.address) == Some(planned) && primary.next().is_none();
    planned_primary
        && addresses
            .iter()
            .filter(|a| a.secondary)
            .all(|a| Some(a.address) == extra && a.address != planned)
}

/// The guest command that moves a VM to its planned address, detached so that the SSH session
/// that starts it can end first (the session goes with the old address): a timer one second
/// later. `AccuracySec`: a timer's default accuracy is a minute, which made the one second up
/// to a minute (27 to 30 s in the real guest of tests/guest_move.rs; 1.5 s with 100 ms).
pub fn move_command(node: &Node, prefix: u8, served_by_bootpd: bool) -> String {
    let args = if served_by_bootpd {
        "dhcp".to_string()
    } else {
        format!(
            "static {}",
            shell_quote(&format!("{}/{prefix}", node.address))
        )
    };
    format!(
        "sudo systemd-run --collect --on-active=1 --timer-property=AccuracySec=100ms \
         /usr/local/sbin/k0slab-address {args}"
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A worker named `name` at `address`, for tests of this module and of the assign step.
    pub(crate) fn node(name: &str, address: &str) -> Node {
        Node {
            name: name.into(),
            kind: crate::topology::NodeKind::Worker,
            role: None,
            address: address.parse().unwrap(),
            cpus: 1,
            memory_mb: 1024,
            disk_gb: 20,
            no_taints: false,
            nested: false,
        }
    }

    #[test]
    fn addresses_from_ip_output() {
        let out = "2: enp0s1    inet 192.168.64.10/24 metric 100 brd 192.168.64.255 scope global dynamic enp0s1\\       valid_lft 86388sec preferred_lft 86388sec\n2: enp0s1    inet 192.168.64.3/24 brd 192.168.64.255 scope global secondary enp0s1\\       valid_lft forever preferred_lft forever\n";
        assert_eq!(
            addresses_in(out),
            [
                "192.168.64.10".parse::<Ipv4Addr>().unwrap(),
                "192.168.64.3".parse().unwrap()
            ]
        );
        assert!(addresses_in("").is_empty());
    }

    #[test]
    fn the_query_names_the_guest_and_its_addresses() {
        let (host, addresses) = guest_in("worker-1\n2: enp0s1    inet 192.168.64.20/24 brd 192.168.64.255 scope global dynamic enp0s1\n");
        assert_eq!(host, "worker-1");
        assert_eq!(
            addresses,
            [GuestAddress {
                address: "192.168.64.20".parse().unwrap(),
                secondary: false
            }]
        );
    }

    /// A controller holding keepalived's VIP, in the format k0s' own docs show (k0sproject/k0s
    /// docs/cplb.md lines 403-404): the lease, then the VIP as a permanent secondary address.
    const WITH_VIP: &str = "control-plane-1\n\
        2: enp0s1    inet 192.168.64.10/24 metric 100 brd 192.168.64.255 scope global dynamic enp0s1\\       valid_lft 2381sec preferred_lft 2381sec\n\
        2: enp0s1    inet 192.168.64.100/24 scope global secondary enp0s1\\       valid_lft forever preferred_lft forever\n";

    #[test]
    fn only_the_labs_vip_may_be_beside_the_planned_address() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let (host, with_vip) = guest_in(WITH_VIP);
        assert_eq!(host, "control-plane-1");
        assert_eq!(
            with_vip,
            [
                GuestAddress {
                    address: ip("192.168.64.10"),
                    secondary: false
                },
                GuestAddress {
                    address: ip("192.168.64.100"),
                    secondary: true
                }
            ]
        );
        let planned = ip("192.168.64.10");
        let vip = Some(ip("192.168.64.100"));
        assert!(only_planned(&with_vip, planned, vip), "the lab's VIP");
        assert!(!only_planned(&with_vip, planned, None), "no VIP allowed");
        assert!(
            !only_planned(&with_vip, planned, Some(ip("192.168.64.101"))),
            "another lab's VIP"
        );
        assert!(
            only_planned(&with_vip[..1], planned, vip),
            "no VIP here now"
        );
        // The VIP as the primary address (the lease lost) or the planned address only beside
        // another lease: not at the planned address.
        let swapped = [
            GuestAddress {
                address: ip("192.168.64.100"),
                secondary: false,
            },
            GuestAddress {
                address: planned,
                secondary: true,
            },
        ];
        assert!(!only_planned(&swapped, planned, vip));
        let (_, beside) = guest_in(&WITH_VIP.replace("192.168.64.100/24", "192.168.64.3/24"));
        assert!(
            !only_planned(&beside, planned, vip),
            "an old lease beside it"
        );
        assert!(!only_planned(&[], planned, vip));
    }

    #[test]
    fn the_vip_is_allowed_on_controllers_of_a_cplb_lab_only() {
        let endpoint = |kind| Endpoint {
            kind,
            address: "192.168.64.100".parse().unwrap(),
        };
        let mut controller = node("control-plane-1", "192.168.64.10");
        controller.kind = NodeKind::Controller;
        let worker = node("worker-1", "192.168.64.20");
        let mut lb = node("load-balancer", "192.168.64.100");
        lb.kind = NodeKind::LoadBalancer;
        assert_eq!(
            allowed_extra(&endpoint(EndpointKind::Cplb), &controller),
            Some("192.168.64.100".parse().unwrap())
        );
        assert_eq!(allowed_extra(&endpoint(EndpointKind::Cplb), &worker), None);
        for kind in [EndpointKind::Haproxy, EndpointKind::None] {
            for n in [&controller, &worker, &lb] {
                assert_eq!(allowed_extra(&endpoint(kind), n), None, "{kind} {}", n.name);
            }
        }
    }
}
