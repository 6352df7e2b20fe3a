//! `k0slab doctor`: is this host ready for the lab? macOS, tools with versions (each against the
//! oldest release k0slab works with), the vagrant-tart plugin, Softnet on the Softnet network,
//! CPUs and memory against the planned VMs, and DHCP leases that would collide with the lab's
//! static addresses.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::{plan_lab, Context};
use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use crate::host;
use crate::inputs::Flags;
use crate::k0sctl::K0sctl;
use crate::kubectl::Kubectl;
use crate::network::{softnet, NetworkMode};
use crate::output::{self, first_line};
use crate::tart::Tart;
use crate::tools::Tool;
use crate::topology::Node;
use crate::versions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Row {
    check: String,
    status: Status,
    detail: String,
}

fn row(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Row {
    Row {
        check: check.into(),
        status,
        detail: detail.into(),
    }
}

fn tool_rows(ctx: &Context<'_>) -> Vec<Row> {
    Tool::ALL
        .into_iter()
        .map(|tool| match ctx.tools.get(tool) {
            Err(_) => row(
                tool.name(),
                // curl only fetches release manifests for `kairos install`.
                if tool == Tool::Curl {
                    Status::Warn
                } else {
                    Status::Fail
                },
                format!("not found; install with: {}", tool.install_hint()),
            ),
            Ok(path) => {
                let version = match tool {
                    Tool::Vagrant => ctx.vagrant().and_then(|v| v.version()),
                    Tool::Tart => Tart {
                        path,
                        env: ctx.env,
                        out: &ctx.out,
                    }
                    .version(),
                    Tool::K0sctl => K0sctl::version(path, ctx.env, &ctx.out),
                    Tool::Kubectl => Kubectl::version(path, ctx.env, &ctx.out),
                    Tool::Curl => crate::process::Cmd::new(path, "asking curl for its version")
                        .arg("--version")
                        .output(ctx.env, &ctx.out),
                };
                match version.and_then(|v| crate::tools::check_version(tool, &v).map(|()| v)) {
                    Ok(v) => row(
                        tool.name(),
                        Status::Ok,
                        format!("{} ({})", first_line(&v), path.display()),
                    ),
                    Err(e) => row(
                        tool.name(),
                        Status::Fail,
                        format!("{}: {e}", path.display()),
                    ),
                }
            }
        })
        .collect()
}

fn plugin_row(ctx: &Context<'_>) -> Row {
    let Ok(vagrant) = ctx.vagrant() else {
        return row("vagrant-tart", Status::Fail, "needs Vagrant");
    };
    match vagrant.plugins() {
        Ok(list) => match list.lines().find(|l| l.trim_start().starts_with(super::plugin::PLUGIN)) {
            Some(line) => match versions::check_plugin(&list) {
                Ok(()) => row("vagrant-tart", Status::Ok, line.trim()),
                Err(e) => row("vagrant-tart", Status::Fail, e.to_string()),
            },
            None => row(
                "vagrant-tart",
                Status::Fail,
                "plugin not installed; install with: vagrant plugin install vagrant-tart (or `task vagrant:plugin`)",
            ),
        },
        Err(e) => row("vagrant-tart", Status::Fail, e.to_string()),
    }
}

/// This Mac's version against Tart's; also what Softnet's row compares with.
fn macos_row(ctx: &Context<'_>) -> (Row, Option<versions::Version>) {
    match versions::macos(ctx.env, &ctx.out) {
        None => (
            row(
                "macOS",
                Status::Warn,
                format!(
                    "sw_vers not found: not macOS? Tart runs on macOS {} or newer",
                    versions::shown(versions::MACOS_FOR_TART)
                ),
            ),
            None,
        ),
        Some(Err(e)) => (row("macOS", Status::Fail, e.to_string()), None),
        Some(Ok(m)) => (
            match versions::check_macos(m) {
                Ok(()) => row("macOS", Status::Ok, versions::shown_macos(m)),
                Err(e) => row("macOS", Status::Fail, e.to_string()),
            },
            Some(m),
        ),
    }
}

/// Softnet, on the Softnet network: there, set up (SUID bit or passwordless sudo), and a
/// release that lets VMs reach each other and runs on this Mac.
fn softnet_row(ctx: &Context<'_>, macos: Option<versions::Version>) -> Row {
    let Some(path) = softnet::find(ctx.env) else {
        return row(
            "softnet",
            Status::Fail,
            format!("not found; install with: {}", softnet::SETUP_HINT),
        );
    };
    if let Err(problem) = softnet::check(ctx.env, &ctx.out) {
        return row(
            "softnet",
            Status::Fail,
            format!("{problem}; set it up with: {}", softnet::SETUP_HINT),
        );
    }
    match versions::check_softnet(&path, macos) {
        Ok(None) => {
            let resolved = std::fs::canonicalize(&path).unwrap_or(path);
            let version = versions::softnet_version(&resolved)
                .map_or_else(String::new, |v| format!("{} ", versions::shown(v)));
            row(
                "softnet",
                Status::Ok,
                format!("{version}({})", resolved.display()),
            )
        }
        Ok(Some(warning)) => row("softnet", Status::Warn, warning),
        Err(e) => row("softnet", Status::Fail, e.to_string()),
    }
}

fn resource_rows(nodes: &[Node]) -> Vec<Row> {
    let mut rows = Vec::new();
    let cpus = host::cpus();
    let max_cpus = nodes.iter().map(|n| n.cpus).max().unwrap_or(0);
    rows.push(if max_cpus > cpus {
        row(
            "CPUs",
            Status::Fail,
            format!("a VM gets {max_cpus} CPUs, the host has {cpus} (vagrant-tart refuses that)"),
        )
    } else {
        row(
            "CPUs",
            Status::Ok,
            format!("host {cpus}, largest VM {max_cpus}"),
        )
    });
    let planned: u64 = nodes.iter().map(|n| u64::from(n.memory_mb)).sum();
    rows.push(match host::memory_mb() {
        None => row("memory", Status::Warn, format!("host memory unknown; VMs need {planned} MB")),
        Some(mb) if planned > mb => row(
            "memory",
            Status::Fail,
            format!("VMs need {planned} MB, the host has {mb} MB: lower memory_control / memory_worker or the counts"),
        ),
        Some(mb) if planned * 4 > mb * 3 => row(
            "memory",
            Status::Warn,
            format!("VMs need {planned} MB of the host's {mb} MB (over 75%)"),
        ),
        Some(mb) => row("memory", Status::Ok, format!("VMs need {planned} MB of the host's {mb} MB")),
    });
    rows
}

fn lease_row(ctx: &Context<'_>, nodes: &[Node], endpoint: Ipv4Addr) -> Row {
    let path = crate::network::leases::path(ctx.env);
    let Some(leases) = crate::network::leases::read(&path) else {
        return row(
            "DHCP leases",
            Status::Ok,
            format!(
                "{} not present on this host: nothing to compare",
                path.display()
            ),
        );
    };
    let ours: Vec<(Ipv4Addr, &str)> = nodes
        .iter()
        .map(|n| (n.address, n.name.as_str()))
        .chain(std::iter::once((endpoint, "the API endpoint")))
        .collect();
    let conflicts: Vec<String> = leases
        .iter()
        .filter_map(|l| {
            let (_, owner) = ours.iter().find(|(a, _)| *a == l.address)?;
            Some(format!(
                "{} is leased to {:?} but planned for {owner}",
                l.address, l.name
            ))
        })
        .collect();
    if conflicts.is_empty() {
        row(
            "DHCP leases",
            Status::Ok,
            format!(
                "{} leases in {}, none on a lab address",
                leases.len(),
                path.display()
            ),
        )
    } else {
        row("DHCP leases", Status::Warn, conflicts.join("; "))
    }
}

/// The subnet bootpd serves (`/etc/bootpd.plist`) against the lab's, on bootpd's networks.
fn served_subnet_row(ctx: &Context<'_>, topology: &crate::topology::Topology) -> Row {
    let files = crate::network::dhcp::Files::from_env(ctx.env);
    let Some(served) = files.served() else {
        return row(
            "bootpd subnet",
            Status::Ok,
            format!(
                "{} not present yet (macOS writes it when the first VM starts): the lab plans {}",
                files.plist.display(),
                topology.subnet
            ),
        );
    };
    let shown = crate::network::dhcp::shown_served(&served);
    match crate::network::bootpd_plist::serving(&served, topology.subnet) {
        Some(range) if topology.nodes.iter().all(|n| range.keeps(n.address)) => row(
            "bootpd subnet",
            Status::Ok,
            format!("bootpd serves {shown}; the lab's addresses are inside it"),
        ),
        _ => row(
            "bootpd subnet",
            Status::Fail,
            format!(
                "bootpd serves {shown}, the lab plans {}: bootpd would delete its addresses \
                 (unset K0SLAB_SUBNET for a new lab to follow bootpd)",
                topology.subnet
            ),
        ),
    }
}

/// The checks the network probe cannot run without.
const PROBE_NEEDS: [&str; 3] = ["vagrant", "tart", "vagrant-tart"];

pub fn run(ctx: &Context<'_>, flags: &Flags, format: OutputFormat, probe: bool) -> Result<()> {
    let planned = plan_lab(ctx, flags)?;
    let (macos, macos_version) = macos_row(ctx);
    let mut rows = vec![macos];
    rows.extend(tool_rows(ctx));
    rows.push(plugin_row(ctx));
    if planned.topology.network == NetworkMode::Softnet {
        rows.push(softnet_row(ctx, macos_version));
    }
    rows.extend(resource_rows(&planned.topology.nodes));
    if planned.topology.network.served_by_bootpd() {
        rows.push(served_subnet_row(ctx, &planned.topology));
    }
    rows.push(lease_row(
        ctx,
        &planned.topology.nodes,
        planned.topology.endpoint.address,
    ));
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == Status::Fail)
        .map(|r| r.check.as_str())
        .collect();
    let report = if probe {
        if let Some(missing) = failed.iter().find(|c| PROBE_NEEDS.contains(c)) {
            print_rows(ctx, format, &rows, None);
            return Err(Error::Step(format!(
                "the network probe needs {missing}, which failed above"
            )));
        }
        ctx.out.progress(
            "probing this host's network with two throwaway VMs (a few minutes; they are \
             deleted at the end)",
        );
        Some(crate::network::probe::run(ctx, &planned)?)
    } else {
        None
    };
    print_rows(ctx, format, &rows, report.as_ref());
    if let Some(report) = &report {
        let missing = report.missing_for_default();
        if !missing.is_empty() {
            return Err(Error::Step(format!(
                "this host's network does not give the lab what its default design needs: {}. \
                 Paste the JSON of `k0slab doctor --network -o json` into a bug report",
                missing.join("; ")
            )));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Step(format!(
            "this host is not ready for the lab: {}",
            failed.join(", ")
        )))
    }
}

#[derive(Serialize)]
struct WithProbe<'a> {
    host: &'a [Row],
    network: &'a crate::network::probe::Report,
}

fn print_rows(
    ctx: &Context<'_>,
    format: OutputFormat,
    rows: &[Row],
    report: Option<&crate::network::probe::Report>,
) {
    match format {
        OutputFormat::Json => ctx.out.result(
            &match report {
                None => serde_json::to_string_pretty(&rows),
                Some(network) => serde_json::to_string_pretty(&WithProbe {
                    host: rows,
                    network,
                }),
            }
            .expect("rows serialise"),
        ),
        OutputFormat::Table => ctx.out.result(&output::table(
            &["check", "status", "detail"],
            rows.iter()
                .map(|r| {
                    vec![
                        r.check.clone(),
                        match r.status {
                            Status::Ok => "ok",
                            Status::Warn => "warn",
                            Status::Fail => "FAIL",
                        }
                        .to_string(),
                        r.detail.clone(),
                    ]
                })
                .collect(),
            &[],
        )),
    }
    if let (OutputFormat::Table, Some(report)) = (format, report) {
        ctx.out.result("");
        ctx.out.result(&report.table());
        let surprising = report
            .measurements
            .iter()
            .filter(|m| m.surprising())
            .count();
        if surprising > 0 {
            ctx.out.warn(&format!(
                "{surprising} observation(s) differ from what the tools' sources say \
                 (UNEXPECTED above): please paste `k0slab doctor --network -o json` into an issue"
            ));
        }
    }
}
