//! Giving every lab VM its planned address: after `vagrant up`, before `k0sctl apply`.
//!
//! On Tart's networks (softnet, nat) bootpd leases the addresses: read each VM's MAC, assign
//! the planned addresses in bootpd's files ([`super::dhcp`]), then make each guest that holds
//! another address start its DHCP client over (through Vagrant, at the address it still has),
//! and wait until the guest has exactly its planned address and `tart ip` reports it. On a
//! bridged LAN the guest takes its planned address as its only, static address instead.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;

use super::dhcp::{self, Change, Edit, Paths};
use super::{leases, Binding, Mac};
use crate::commands::{machine_failures, per_machine, render, Context};
use crate::error::{Error, Result};
use crate::lab_json::LabRecord;
use crate::process::shell_quote;
use crate::progress::Progress;
use crate::tart::{self, Tart};
use crate::tools::Tool;
use crate::topology::Node;

/// Where a change for the root half of [`dhcp::apply`] is staged, inside the lab directory.
pub const STAGED: &str = ".k0slab-bootpd-change.json";
/// How long a guest may take to reach its planned address, unless `K0SLAB_ADDRESS_TIMEOUT`.
const MOVE_TIMEOUT: Duration = Duration::from_secs(180);

fn move_timeout(ctx: &Context<'_>) -> Result<Duration> {
    Ok(crate::inputs::duration_var(
        ctx.env,
        "K0SLAB_ADDRESS_TIMEOUT",
        MOVE_TIMEOUT,
    )?)
}

/// The guest command that lists the IPv4 addresses of the interface with the default route.
pub const ADDRESS_QUERY: &str =
    "ip -4 -o addr show scope global dev \"$(ip -4 route show default | awk '{print $5; exit}')\"";

static INET: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\binet (\d+\.\d+\.\d+\.\d+)/\d+").expect("valid regex"));

/// The addresses in `ip -4 -o addr show` output.
pub fn addresses_in(output: &str) -> Vec<Ipv4Addr> {
    INET.captures_iter(output)
        .filter_map(|c| c[1].parse().ok())
        .collect()
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
pub fn paths(ctx: &Context<'_>) -> Paths {
    Paths::from_env(ctx.env)
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
    if network.served_by_bootpd() {
        let paths = paths(ctx);
        let now = leases::now();
        let before = leases::read(&paths.leases).unwrap_or_default();
        for node in &record.nodes {
            let current = leases::address_of(&before, macs[&node.name], now);
            if current != Some(node.address) {
                moving.push(node);
                if let Some(a) = current {
                    from.insert(node.name.clone(), a);
                }
            }
        }
        let bindings: Vec<Binding> = record
            .nodes
            .iter()
            .map(|n| Binding {
                hostname: record.vm_name(n),
                mac: macs[&n.name],
                address: n.address,
            })
            .collect();
        let change = Change {
            lab: record.name().to_string(),
            edit: Edit::Assign(bindings),
            paths,
        };
        let why = "bootpd, the DHCP server of Tart's network, then leases each VM its planned \
                   address, and no other machine gets them";
        dhcp::apply(ctx.env, &ctx.out, &change, why, &ctx.dir.join(STAGED))?;
    } else {
        moving = record
            .nodes
            .iter()
            .filter(|n| record.assigned.get(&n.name) != Some(&macs[&n.name]))
            .collect();
    }
    let mut updated = record.clone();
    updated.assigned = macs.clone();

    if !moving.is_empty() {
        // Reach the moving machines at the address they still have; Tart already reports the
        // planned one.
        render::write_lab_with(ctx, &planned, &record.assigned, &from)?;
        let vagrant = ctx.vagrant()?;
        for node in &moving {
            ctx.out.detail(&format!(
                "moving {} to {} (from {})",
                node.name,
                node.address,
                from.get(&node.name)
                    .map_or_else(|| "no lease".to_string(), ToString::to_string)
            ));
            vagrant
                .ssh_output(
                    &node.name,
                    &move_command(node, prefix, network.served_by_bootpd()),
                )
                .map_err(|e| {
                    Error::Step(format!(
                        "could not make {} take its planned address {}: {e}",
                        node.name, node.address
                    ))
                })?;
        }
    }
    // From now on Vagrant finds every machine at its planned address.
    render::write_lab_with(ctx, &planned, &macs, &BTreeMap::new())?;
    wait_for_planned(ctx, progress, &updated)?;
    Ok(updated)
}

/// Waits until every machine has exactly its planned address (and, on Tart's networks,
/// `tart ip` reports it).
pub fn wait_for_planned(ctx: &Context<'_>, progress: &Progress, record: &LabRecord) -> Result<()> {
    let vagrant = ctx.vagrant()?;
    let tart_path = ctx.tools.get(Tool::Tart)?;
    let tart = Tart {
        path: tart_path,
        env: ctx.env,
        out: &ctx.out,
    };
    let by_bootpd = record.inputs.network.served_by_bootpd();
    let timeout = move_timeout(ctx)?;
    let nodes: Vec<&Node> = record.nodes.iter().collect();
    let results = per_machine(ctx, progress, &nodes, |node, bar| {
        bar.message(&format!("waiting for {}", node.address));
        let deadline = Instant::now() + timeout;
        loop {
            crate::process::check_interrupted()?;
            let seen = vagrant
                .ssh_output(&node.name, ADDRESS_QUERY)
                .map(|o| addresses_in(&o));
            let tart_ip = if by_bootpd {
                tart.ip(&record.vm_name(node)).ok()
            } else {
                Some(node.address.to_string())
            };
            match (&seen, &tart_ip) {
                (Ok(a), Some(ip)) if a == &[node.address] && *ip == node.address.to_string() => {
                    bar.done(&format!("at {}", node.address));
                    return Ok(());
                }
                _ if Instant::now() >= deadline => {
                    bar.failed("not at its planned address");
                    let seen = match seen {
                        Ok(a) if a.is_empty() => "no address".to_string(),
                        Ok(a) => a
                            .iter()
                            .map(ToString::to_string)
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

/// Releases the lab's addresses (after its VMs are gone): its bootptab block and the leases of
/// the MACs it had.
pub fn release(ctx: &Context<'_>, record: &LabRecord) -> Result<()> {
    if !record.inputs.network.served_by_bootpd() {
        return Ok(());
    }
    release_addresses(
        ctx,
        record.name(),
        record.assigned.values().copied().collect(),
    )
}

/// Releases lab `lab`'s bootptab block and the leases of `macs` (also when `lab.json` is
/// gone and the lab is known only from the VMs k0slab recorded for it).
pub fn release_addresses(ctx: &Context<'_>, lab: &str, macs: Vec<Mac>) -> Result<()> {
    let change = Change {
        lab: lab.to_string(),
        edit: Edit::Release(macs),
        paths: paths(ctx),
    };
    let why = "the lab's VMs are gone, so their addresses go back to bootpd's pool";
    dhcp::apply(ctx.env, &ctx.out, &change, why, &ctx.dir.join(STAGED)).map(|_| ())
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
}
