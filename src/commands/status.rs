//! `k0slab status`: the machines as Vagrant sees them and the nodes as the cluster sees them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::error::Result;
use crate::health;
use crate::output;
use crate::output::OutputFormat;
use crate::roles::Role;
use crate::tools::kubectl::Kubectl;
use crate::tools::Tool;
use crate::workflow::context::Context;

#[derive(Serialize)]
struct NodeStatus {
    ready: bool,
    internal_ip: Option<String>,
}

#[derive(Serialize)]
struct MachineStatus<'a> {
    name: &'a str,
    role: Option<Role>,
    address: Ipv4Addr,
    vm_name: String,
    vm_state: String,
    node: Option<NodeStatus>,
}

#[derive(Serialize)]
struct Status<'a> {
    lab: &'a str,
    endpoint: String,
    kubeconfig: Option<String>,
    cluster: String,
    machines: Vec<MachineStatus<'a>>,
}

fn nodes(ctx: &Context<'_>) -> std::result::Result<BTreeMap<String, NodeStatus>, String> {
    let path = ctx.dir.join(crate::lab::files::KUBECONFIG);
    if !path.is_file() {
        return Err("no kubeconfig yet".into());
    }
    let kubectl = Kubectl {
        path: ctx.tools.get(Tool::Kubectl).map_err(|e| e.to_string())?,
        kubeconfig: &path,
        env: ctx.env,
        out: &ctx.out,
    };
    let list = kubectl
        .get_json("listing the nodes", &["nodes"])
        .map_err(|e| output::last_line(&e.to_string()))?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let name = n.pointer("/metadata/name")?.as_str()?.to_string();
            let ready = health::condition_true(n, "Ready");
            let internal_ip = health::internal_ips(n).first().map(|ip| ip.to_string());
            Some((name, NodeStatus { ready, internal_ip }))
        })
        .collect())
}

pub fn run(ctx: &Context<'_>, format: OutputFormat) -> Result<()> {
    let record = ctx.record()?;
    let states = ctx.vagrant().and_then(|v| v.status());
    let (mut nodes, cluster) = match nodes(ctx) {
        Ok(n) => {
            let c = format!("reachable at {}", record.endpoint.url());
            (n, c)
        }
        Err(e) => (BTreeMap::new(), format!("not reachable: {e}")),
    };
    let machines: Vec<MachineStatus> = record
        .nodes
        .iter()
        .map(|n| MachineStatus {
            name: &n.name,
            role: n.role,
            address: n.address,
            vm_name: record.vm_name(n),
            vm_state: match &states {
                Ok(s) => s.get(&n.name).map_or("unknown".into(), ToString::to_string),
                Err(_) => "unknown (vagrant failed)".into(),
            },
            node: nodes.remove(&n.name),
        })
        .collect();
    let kubeconfig_path = ctx.dir.join(crate::lab::files::KUBECONFIG);
    let status = Status {
        lab: record.name(),
        endpoint: record.endpoint.url(),
        kubeconfig: kubeconfig_path
            .is_file()
            .then(|| kubeconfig_path.display().to_string()),
        cluster,
        machines,
    };
    if let Err(e) = &states {
        ctx.out
            .warn(&format!("Vagrant could not report the machines: {e}"));
    }
    match format {
        OutputFormat::Json => ctx
            .out
            .result(&serde_json::to_string_pretty(&status).expect("status serialises")),
        OutputFormat::Table => {
            let rows = status
                .machines
                .iter()
                .map(|m| {
                    let node = match (&m.node, m.role) {
                        (Some(n), _) => format!(
                            "{} {}",
                            if n.ready { "Ready" } else { "NotReady" },
                            n.internal_ip.as_deref().unwrap_or("-")
                        ),
                        (None, Some(Role::Controller)) => "- (controller only: no kubelet)".into(),
                        (None, None) => "- (load balancer)".into(),
                        (None, _) => "-".into(),
                    };
                    vec![
                        m.name.to_string(),
                        m.role.map_or("haproxy".into(), |r| r.to_string()),
                        m.address.to_string(),
                        m.vm_state.clone(),
                        node,
                    ]
                })
                .collect();
            ctx.out.result(&output::table(
                &["name", "role", "address", "vm", "node"],
                rows,
                &[],
            ));
            ctx.out
                .result(&format!("\nlab {}: cluster {}", status.lab, status.cluster));
            if let Ok(states) = &states {
                let down: Vec<String> = status
                    .machines
                    .iter()
                    .filter(|m| {
                        states.get(m.name) != Some(&crate::tools::vagrant::MachineState::Running)
                    })
                    .map(|m| format!("{} ({})", m.name, m.vm_state))
                    .collect();
                if !down.is_empty() {
                    ctx.out.result(&format!(
                        "not running: {}: {}",
                        down.join(", "),
                        health::START_HINT
                    ));
                }
            }
        }
    }
    Ok(())
}
