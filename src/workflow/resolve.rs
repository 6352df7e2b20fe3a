//! The first step of every command that makes or changes a lab: the inputs resolved (flags >
//! environment > existing lab > defaults) and the topology planned, before anything is
//! written.

use super::context::Context;
use crate::error::Result;
use crate::inputs::{self, Change, Flags, LabName};
use crate::lab::record::Planned;
use crate::topology::Topology;

/// Resolves inputs (flags > environment > existing lab > defaults) and the topology.
pub fn plan_lab(ctx: &Context<'_>, flags: &Flags) -> Result<Planned> {
    let record = ctx.dir.read_record()?;
    let default_name = LabName::for_directory(ctx.dir.absolute());
    let lab = record.as_ref().map(|r| &r.inputs);
    let mut resolved = inputs::resolve(flags, ctx.env, lab, &default_name)?;
    // A new lab on bootpd's network with no subnet chosen follows the subnet bootpd serves
    // (vmnet moves to 192.168.65.0/24 when another program holds bridge100 first).
    let mut followed = None;
    if lab.is_none()
        && resolved.inputs.network.served_by_bootpd()
        && !inputs::is_given(inputs::Key::Subnet, flags, ctx.env)?
    {
        let served = crate::network::dhcp::Files::from_env(ctx.env).served();
        if let Some(s) = served
            .as_deref()
            .and_then(|s| crate::network::bootpd_plist::follow(s, resolved.inputs.subnet))
            .filter(|s| s.net != resolved.inputs.subnet)
        {
            resolved = inputs::resolve_with_subnet(flags, ctx.env, lab, &default_name, s.net)?;
            followed = Some(s);
        }
    }
    // The lab's own addresses stay; a new machine avoids what other labs on this host hold.
    let hosts = crate::topology::Hosts {
        kept: record
            .as_ref()
            .map(|r| crate::topology::Hosts::kept_from(&r.nodes, &r.endpoint))
            .unwrap_or_default(),
        held: crate::lab::host_addresses::held_by_others(
            ctx.env,
            ctx.dir.absolute(),
            resolved.inputs.name.as_str(),
        )?,
    };
    let mut topology = Topology::resolve_on(&resolved.inputs, &hosts)?;
    if let Some(s) = followed {
        topology.warnings.push(format!(
            "bootpd serves {s} on this host, not {}: the lab uses {} (set {} to choose)",
            inputs::DEFAULT_SUBNET,
            s.net,
            inputs::Key::Subnet.env_name()
        ));
    }
    if topology.endpoint.kind == crate::topology::EndpointKind::Cplb
        && topology.network == crate::network::NetworkMode::Nat
    {
        let proven = crate::network::probe::saved(ctx.env).is_some_and(|r| {
            r.works(
                &crate::network::NetworkMode::Nat,
                crate::network::probe::Check::VipMoved,
            ) && r.works(
                &crate::network::NetworkMode::Nat,
                crate::network::probe::Check::VmToVm,
            )
        });
        if !proven {
            topology.warnings.push(
                "K0SLAB_ENDPOINT=cplb on K0SLAB_NETWORK=nat: on macOS 13+ VMs on Tart's shared \
                 network do not reach each other, and macOS filters ARP replies for a VIP \
                 (canonical/multipass#1298); `k0slab doctor --network` has not shown that both \
                 work on this host. Run it, or use K0SLAB_NETWORK=bridged:<interface>"
                    .to_string(),
            );
        }
    }
    Ok(Planned {
        inputs: resolved.inputs,
        topology,
        changes: resolved.changes,
        record,
    })
}

/// The list of differences, one per line, for messages.
pub fn describe_changes(changes: &[Change]) -> String {
    changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
