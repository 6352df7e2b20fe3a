//! Giving every lab VM its planned address: after `vagrant up`, before `k0sctl apply`.
//!
//! On Tart's networks (softnet, nat) bootpd leases the addresses: read each VM's MAC, assign
//! the planned addresses in bootpd's files ([`super::dhcp`]), then make each guest that holds
//! another address start its DHCP client over (through Vagrant, at the address it still has),
//! and wait until the guest has exactly its planned address and `tart ip` reports it. On a
//! bridged LAN the guest takes its planned address as its only, static address instead.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::render;
use crate::error::{Error, Result};
use crate::lab::record::LabRecord;
use crate::network::dhcp::{self, Change, Edit, Files};
use crate::network::guest::{allowed_extra, guest_in, move_command, only_planned, ADDRESS_QUERY};
use crate::network::{leases, Binding, Mac};
use crate::progress::Progress;
use crate::tools::tart::{self, Tart};
use crate::tools::Tool;
use crate::topology::Node;
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
            tart::mac_of(ctx.env, &record.vm_name(node), str::parse)?,
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
    use crate::network::guest::tests::node;

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
}
