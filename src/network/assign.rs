//! Giving every lab VM its planned address: after `vagrant up`, before `k0sctl apply`.
//!
//! On Tart's networks (softnet, nat) bootpd leases the addresses: read each VM's MAC, assign
//! the planned addresses in bootpd's files ([`super::dhcp`]), then make each guest that holds
//! another address start its DHCP client over (through Vagrant, at the address it still has),
//! and wait until the guest has exactly its planned address and `tart ip` reports it. On a
//! bridged LAN the guest takes its planned address as its only, static address instead.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;

use super::dhcp::{self, Change, Edit, Files};
use super::{leases, Binding, Mac};
use crate::commands::render;
use crate::error::{Error, Result};
use crate::lab::record::LabRecord;
use crate::progress::Progress;
use crate::tools::process::shell_quote;
use crate::tools::tart::{self, Tart};
use crate::tools::Tool;
use crate::topology::{Endpoint, EndpointKind, Node, NodeKind};
use crate::workflow::context::Context;
use crate::workflow::machines::machine_failures;
use crate::workflow::machines::per_machine;

/// How long a guest may take to reach its planned address, unless `K0SLAB_ADDRESS_TIMEOUT`.
const MOVE_TIMEOUT: Duration = Duration::from_secs(180);
/// How often k0slab puts back entries bootpd dropped before it gives up.
const MAX_RESTORES: u32 = 3;

fn move_timeout(ctx: &Context<'_>) -> Result<Duration> {
    Ok(crate::inputs::duration_var(
        ctx.env,
        "K0SLAB_ADDRESS_TIMEOUT",
        MOVE_TIMEOUT,
    )?)
}

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

/// The bootpd files for this lab's environment.
pub fn files(ctx: &Context<'_>) -> Files {
    Files::from_env(ctx.env)
}

/// The order to move machines in: a machine that holds another lab machine's planned address
/// moves first, so that the address is free when its owner asks bootpd for it (bootpd hands
/// out dynamic addresses from the start of its range, so a first lease can be a planned
/// address). Returns groups: each group moves once the groups before it have settled.
fn move_order<'a>(moving: &[&'a Node], from: &BTreeMap<String, Ipv4Addr>) -> Vec<Vec<&'a Node>> {
    let mut left: Vec<&Node> = moving.to_vec();
    let mut groups = Vec::new();
    while !left.is_empty() {
        // Who still blocks: the planned addresses the machines still to move sit on.
        let blocked: BTreeSet<Ipv4Addr> = left
            .iter()
            .filter_map(|n| from.get(&n.name).copied())
            .collect();
        let (now, later): (Vec<&Node>, Vec<&Node>) = left
            .iter()
            .partition(|n| !blocked.contains(&n.address) || from.get(&n.name) == Some(&n.address));
        if now.is_empty() {
            // A cycle (each holds another's address): move them together; the wait confirms
            // every guest by hostname and address.
            groups.push(later);
            break;
        }
        groups.push(now);
        left = later;
    }
    groups
}

/// Gives every machine of `record` its planned address; returns the record with the MACs the
/// addresses are assigned to.
pub fn planned_addresses(
    ctx: &Context<'_>,
    progress: &Progress,
    record: &LabRecord,
) -> Result<LabRecord> {
    let network = &record.inputs.network;
    let mut macs = BTreeMap::new();
    for node in &record.nodes {
        macs.insert(
            node.name.clone(),
            tart::mac_of(ctx.env, &record.vm_name(node))?,
        );
    }
    let planned = record.planned();
    let prefix = record.inputs.subnet.prefix_len();

    // Which machines must move, and the address each still has (to reach it through Vagrant).
    let mut from: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    let mut moving: Vec<&Node> = Vec::new();
    let change = network
        .served_by_bootpd()
        .then(|| assignment(record, &macs, false));
    if let Some(change) = &change {
        let files = files(ctx);
        let now = leases::now();
        let before = leases::read(&files.leases).unwrap_or_default();
        for node in &record.nodes {
            let current = leases::address_of(&before, macs[&node.name], now);
            if current != Some(node.address) {
                moving.push(node);
                if let Some(a) = current {
                    from.insert(node.name.clone(), a);
                }
            }
        }
        dhcp::apply(ctx.env, &ctx.out, change, ASSIGN_WHY)?;
    } else {
        moving = record
            .nodes
            .iter()
            .filter(|n| record.assigned.get(&n.name) != Some(&macs[&n.name]))
            .collect();
    }
    let mut updated = record.clone();
    updated.assigned = macs.clone();
    let restorer = Restorer {
        change: change.clone(),
        planned: &planned,
        macs: &macs,
        restores: Mutex::new(0),
    };

    let groups = move_order(&moving, &from);
    for (i, group) in groups.iter().enumerate() {
        // Reach the moving machines at the address they still have; Tart already reports the
        // planned one.
        render::write_lab_with(ctx, &planned, &record.assigned, &from)?;
        for node in group {
            ctx.out.detail(&format!(
                "moving {} to {} (from {})",
                node.name,
                node.address,
                from.get(&node.name)
                    .map_or_else(|| "no lease".to_string(), ToString::to_string)
            ));
        }
        // The group's moves are independent: started at once, not one SSH session after
        // another (benches/up_parallel.rs).
        std::thread::scope(|s| {
            let started: Vec<_> = group
                .iter()
                .map(|node| s.spawn(|| start_move(ctx, node, prefix, network.served_by_bootpd())))
                .collect();
            started
                .into_iter()
                .try_for_each(|h| h.join().expect("a move thread does not panic"))
        })?;
        if i + 1 < groups.len() {
            // The next group's addresses are free once this group is where it belongs.
            render::write_lab_with(ctx, &planned, &macs, &BTreeMap::new())?;
            wait_for_planned(ctx, progress, &updated, group, &restorer)?;
            for node in group {
                from.remove(&node.name);
            }
        }
    }
    // From now on Vagrant finds every machine at its planned address.
    render::write_lab_with(ctx, &planned, &macs, &BTreeMap::new())?;
    let nodes: Vec<&Node> = record.nodes.iter().collect();
    wait_for_planned(ctx, progress, &updated, &nodes, &restorer)?;
    if change.is_some() {
        // Every guest is at its address: the entries of the addresses they left go now.
        dhcp::apply(
            ctx.env,
            &ctx.out,
            &assignment(record, &macs, true),
            ASSIGN_WHY,
        )?;
    }
    Ok(updated)
}

const ASSIGN_WHY: &str = "bootpd, the DHCP server of Tart's network, then leases each VM its \
                          planned address, and no other machine gets them";

/// The change that assigns every machine of `record` its planned address; `settled` once every
/// guest has moved (see [`leases::with_assignments`]).
fn assignment(record: &LabRecord, macs: &BTreeMap<String, Mac>, settled: bool) -> Change {
    Change {
        lab: record.inputs.name.clone(),
        edit: Edit::Assign {
            subnet: record.inputs.subnet,
            bindings: record
                .nodes
                .iter()
                .map(|n| Binding {
                    hostname: record.vm_name(n),
                    mac: macs[&n.name],
                    address: n.address,
                })
                .collect(),
            settled,
        },
    }
}

fn start_move(ctx: &Context<'_>, node: &Node, prefix: u8, by_bootpd: bool) -> Result<()> {
    ctx.vagrant()?
        .ssh_output(&node.name, &move_command(node, prefix, by_bootpd))
        .map(|_| ())
        .map_err(|e| {
            Error::Step(format!(
                "could not make {} take its planned address {}: {e}",
                node.name, node.address
            ))
        })
}

/// Puts back the lab's entries when bootpd dropped them: it rewrites the leases file from its
/// memory after every lease it grants (`dhcpd.c` lines 225-242, 443-444, 1281-1284), so an
/// edit it had not read yet is lost, and a guest that started over meanwhile got its old
/// address again. At most [`MAX_RESTORES`] times.
struct Restorer<'a> {
    change: Option<Change>,
    planned: &'a crate::lab::record::Planned,
    macs: &'a BTreeMap<String, Mac>,
    /// How often the entries were put back; held while one machine is put back and moved.
    restores: Mutex<u32>,
}

impl Restorer<'_> {
    /// Whether `node`'s entry is still in the leases file (always, off bootpd's networks).
    fn entry_kept(&self, ctx: &Context<'_>, node: &Node) -> bool {
        if self.change.is_none() {
            return true;
        }
        let all = leases::read(&files(ctx).leases).unwrap_or_default();
        leases::holds(&all, self.macs[&node.name], node.address)
    }

    /// Writes the lab's entries again (once for all machines that found theirs gone), then
    /// makes every guest that bootpd gave another address meanwhile start over, reaching it
    /// at that address.
    fn restore(&self, ctx: &Context<'_>, node: &Node, prefix: u8) -> Result<()> {
        let Some(change) = &self.change else {
            return Ok(());
        };
        let mut restores = self.restores.lock().unwrap_or_else(|e| e.into_inner());
        let now = leases::now();
        let all = leases::read(&files(ctx).leases).unwrap_or_default();
        if leases::holds(&all, self.macs[&node.name], node.address) {
            return Ok(()); // another machine's wait put the entries back already
        }
        *restores += 1;
        if *restores > MAX_RESTORES {
            return Err(Error::Step(format!(
                "bootpd keeps dropping the lab's entries from {} (put back {MAX_RESTORES} \
                 times): it rewrites the file from its memory after every lease it grants, \
                 and it did not read k0slab's edit first. Is another program editing the \
                 file, or another bootpd running? `sudo launchctl kickstart -k \
                 system/com.apple.bootpd` restarts it; then run `k0slab up` again",
                files(ctx).leases.display()
            )));
        }
        ctx.out.warn(&format!(
            "bootpd rewrote its leases file from memory and dropped {}'s entry for {}: \
             putting the lab's entries back ({} of at most {MAX_RESTORES})",
            node.name, node.address, *restores
        ));
        dhcp::apply(ctx.env, &ctx.out, change, ASSIGN_WHY)?;
        // The guests hold what bootpd gave them without the entries: reach each there.
        for n in &self.planned.topology.nodes {
            let Some(current) =
                leases::address_of(&all, self.macs[&n.name], now).filter(|a| *a != n.address)
            else {
                continue;
            };
            let at = BTreeMap::from([(n.name.clone(), current)]);
            render::write_lab_with(ctx, self.planned, self.macs, &at)?;
            let moved = start_move(ctx, n, prefix, true);
            render::write_lab_with(ctx, self.planned, self.macs, &BTreeMap::new())?;
            moved?;
        }
        Ok(())
    }
}

/// Waits until every machine of `nodes` has exactly its planned address (and, on Tart's
/// networks, `tart ip` reports it), confirmed by its hostname.
fn wait_for_planned(
    ctx: &Context<'_>,
    progress: &Progress,
    record: &LabRecord,
    nodes: &[&Node],
    restorer: &Restorer<'_>,
) -> Result<()> {
    let vagrant = ctx.vagrant()?;
    let tart_path = ctx.tools.get(Tool::Tart)?;
    let tart = Tart {
        path: tart_path,
        env: ctx.env,
        out: &ctx.out,
    };
    let by_bootpd = record.inputs.network.served_by_bootpd();
    let prefix = record.inputs.subnet.prefix_len();
    let timeout = move_timeout(ctx)?;
    let results = per_machine(ctx, progress, nodes, |node, bar| {
        bar.message(&format!("waiting for {}", node.address));
        let extra = allowed_extra(&record.endpoint, node);
        let deadline = Instant::now() + timeout;
        loop {
            crate::tools::process::check_interrupted()?;
            if !restorer.entry_kept(ctx, node) {
                restorer.restore(ctx, node, prefix)?;
            }
            // The guest and Tart are asked at once: two process starts per poll, one wait.
            let (seen, tart_ip) = std::thread::scope(|s| {
                let tart_ip = s.spawn(|| {
                    if by_bootpd {
                        tart.ip(&record.vm_name(node)).ok()
                    } else {
                        Some(node.address.to_string())
                    }
                });
                let seen = vagrant
                    .ssh_output(&node.name, ADDRESS_QUERY)
                    .map(|o| guest_in(&o));
                (seen, tart_ip.join().expect("tart ip does not panic"))
            });
            match (&seen, &tart_ip) {
                (Ok((host, a)), Some(ip))
                    if host == &node.name
                        && only_planned(a, node.address, extra)
                        && *ip == node.address.to_string() =>
                {
                    bar.done(&format!("at {}", node.address));
                    return Ok(());
                }
                _ if Instant::now() >= deadline => {
                    bar.failed("not at its planned address");
                    let seen = match seen {
                        Ok((host, _)) if host != node.name => {
                            format!("{host:?} answering there instead")
                        }
                        Ok((_, a)) if a.is_empty() => "no address".to_string(),
                        Ok((_, a)) => a
                            .iter()
                            .map(|a| {
                                if a.secondary {
                                    format!("{} (secondary)", a.address)
                                } else {
                                    a.address.to_string()
                                }
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                        Err(e) => format!(
                            "not reachable ({})",
                            crate::output::first_line(&e.to_string())
                        ),
                    };
                    return Err(Error::Step(format!(
                        "{} did not take its planned address {} within {}s: the guest has {seen}, \
                         `tart ip` says {}. Restarting the VM makes its DHCP client start over: \
                         `k0slab halt` then `k0slab up`",
                        node.name,
                        node.address,
                        timeout.as_secs(),
                        tart_ip.unwrap_or_else(|| "nothing".into())
                    )));
                }
                _ => std::thread::sleep(ctx.poll_interval()),
            }
        }
    });
    machine_failures(
        ctx,
        "planned address",
        results,
        "Fix the cause and run `k0slab up` again.",
    )
    .map(|_| ())
}

/// Reserves the lab's planned addresses in bootptab before its VMs boot: bootpd then gives
/// none of them to a booting VM (of this lab or another) as its first lease.
pub fn reserve(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    if !record.inputs.network.served_by_bootpd() {
        return Ok(());
    }
    let change = Change {
        lab: record.inputs.name.clone(),
        edit: Edit::Reserve {
            subnet: record.inputs.subnet,
            reservations: record
                .nodes
                .iter()
                .map(|n| dhcp::Reservation {
                    hostname: record.vm_name(n),
                    address: n.address,
                })
                .collect(),
        },
    };
    let why = "bootpd then gives them to no other machine while the VMs boot";
    dhcp::apply(ctx.env, &ctx.out, &change, why).map(|_| ())
}

/// Releases the lab's addresses (after its VMs are gone): its bootptab block and the leases of
/// the MACs it had.
pub fn release(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    if !record.inputs.network.served_by_bootpd() {
        return Ok(());
    }
    release_addresses(
        ctx,
        &record.inputs.name,
        record.assigned.values().copied().collect(),
    )
}

/// Releases lab `lab`'s bootptab block and the leases of `macs` (also when `lab.json` is
/// gone and the lab is known only from the VMs k0slab recorded for it).
pub fn release_addresses(
    ctx: &Context<'_>,
    lab: &crate::inputs::LabName,
    macs: Vec<Mac>,
) -> Result<()> {
    let change = Change {
        lab: lab.clone(),
        edit: Edit::Release(macs),
    };
    let why = "the lab's VMs are gone, so their addresses go back to bootpd's pool";
    dhcp::apply(ctx.env, &ctx.out, &change, why).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn node(name: &str, address: &str) -> Node {
        Node {
            name: name.into(),
            kind: crate::topology::NodeKind::Worker,
            role: None,
            address: address.parse().unwrap(),
            cpus: 1,
            memory_mb: 1024,
            disk_gb: 20,
            no_taints: false,
        }
    }

    fn names(groups: &[Vec<&Node>]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|n| n.name.clone()).collect())
            .collect()
    }

    #[test]
    fn machines_on_another_machines_planned_address_move_first() {
        let (a, b, c) = (
            node("control-plane-1", "192.168.64.10"),
            node("control-plane-2", "192.168.64.11"),
            node("worker-1", "192.168.64.20"),
        );
        let from = |pairs: &[(&str, &str)]| -> BTreeMap<String, Ipv4Addr> {
            pairs
                .iter()
                .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
                .collect()
        };
        // worker-1's first lease is control-plane-1's planned address: worker-1 goes first.
        let order = move_order(
            &[&a, &b, &c],
            &from(&[
                ("control-plane-1", "192.168.64.2"),
                ("control-plane-2", "192.168.64.3"),
                ("worker-1", "192.168.64.10"),
            ]),
        );
        assert_eq!(
            names(&order),
            [vec!["control-plane-2", "worker-1"], vec!["control-plane-1"]]
        );
        // A chain: b sits on a's address, c on b's.
        let order = move_order(
            &[&a, &b, &c],
            &from(&[
                ("control-plane-2", "192.168.64.10"),
                ("worker-1", "192.168.64.11"),
            ]),
        );
        assert_eq!(
            names(&order),
            [
                vec!["worker-1"],
                vec!["control-plane-2"],
                vec!["control-plane-1"]
            ]
        );
        // A cycle moves together; nothing in the way, one group.
        let order = move_order(
            &[&a, &b],
            &from(&[
                ("control-plane-1", "192.168.64.11"),
                ("control-plane-2", "192.168.64.10"),
            ]),
        );
        assert_eq!(names(&order), [vec!["control-plane-1", "control-plane-2"]]);
        let order = move_order(&[&a, &b, &c], &BTreeMap::new());
        assert_eq!(
            names(&order),
            [vec!["control-plane-1", "control-plane-2", "worker-1"]]
        );
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
