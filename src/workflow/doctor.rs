//! The host checks of `k0slab doctor`: is this host ready for the lab? macOS (and that this is macOS at all),
//! tools with versions (each against the oldest release k0slab works with), the vagrant-tart
//! plugin, Softnet and its one-time set-up on the Softnet network, sudo and bootpd on bootpd's
//! networks, CPUs and memory against the planned VMs, the subnet bootpd serves, DHCP leases
//! that would collide with the lab's addresses, and what the load balancer's first boot needs.
//! Nothing here needs root or a VM; `--network` boots two throwaway VMs.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::lab::record::Planned;
use crate::network::NetworkMode;
use crate::output::first_line;
use crate::tools::host;
use crate::tools::k0sctl::K0sctl;
use crate::tools::kubectl::Kubectl;
use crate::tools::softnet;
use crate::tools::tart::Tart;
use crate::tools::Tool;
use crate::topology::Node;
use crate::versions;
use crate::workflow::context::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub check: String,
    pub status: Status,
    pub detail: String,
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
                Status::Fail,
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
                    Tool::Curl => {
                        crate::tools::process::Cmd::new(path, "asking curl for its version")
                            .arg("--version")
                            .output(ctx.env, &ctx.out)
                    }
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
        Ok(list) => match crate::tools::vagrant::plugin_line(&list) {
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
        // Every Mac has /usr/bin/sw_vers; without it this is another system.
        None => (
            row(
                "macOS",
                Status::Fail,
                format!(
                    "this is not macOS ({}: no sw_vers): the lab's VMs need Tart, which runs on \
                     macOS {} or newer on Apple Silicon; `plan`, `render` and `up --dry-run` \
                     work here",
                    std::env::consts::OS,
                    versions::shown_macos(versions::MACOS_FOR_TART)
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

/// Softnet's one-time set-up, on the Softnet network: owned by root with the SUID bit, or run
/// by sudo without a password (see [`softnet::check`]).
fn softnet_setup_row(ctx: &Context<'_>) -> Row {
    if softnet::find(ctx.env).is_none() {
        return row("softnet set-up", Status::Fail, "needs softnet (above)");
    }
    match softnet::check(ctx.env, &ctx.out) {
        Ok(_) => row(
            "softnet set-up",
            Status::Ok,
            "Tart can start it for Vagrant's VMs (owned by root with the SUID bit, or sudo runs \
             it without a password)",
        ),
        Err(problem) => row(
            "softnet set-up",
            Status::Fail,
            format!(
                "{problem}; set it up once with: sudo chown root \"$(which softnet)\" && sudo \
                 chmod u+s \"$(which softnet)\""
            ),
        ),
    }
}

/// Softnet, on the Softnet network: a release that lets VMs reach each other and runs on this
/// Mac.
fn softnet_row(ctx: &Context<'_>, macos: Option<versions::Version>) -> Row {
    let Some(path) = softnet::find(ctx.env) else {
        return row(
            "softnet",
            Status::Fail,
            format!("not found; install with: {}", softnet::SETUP_HINT),
        );
    };
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

/// The root step of `up` and `destroy` (bootpd's files): root acts directly, otherwise sudo,
/// which asks for the password on a terminal (src/network/dhcp.rs `route`). `passwordless` is
/// asked only when there is a sudo.
fn sudo_row(
    root: bool,
    sudo: Option<&std::path::Path>,
    passwordless: impl FnOnce() -> bool,
) -> Row {
    const FILES: &str = "/etc/bootptab and /var/db/dhcpd_leases";
    match (root, sudo) {
        (true, _) => row(
            "sudo",
            Status::Ok,
            format!("k0slab runs as root: `up` and `destroy` edit {FILES} themselves"),
        ),
        (false, None) => row(
            "sudo",
            Status::Fail,
            format!(
                "sudo not found: `up` and `destroy` need root to edit {FILES} (sudo ships with \
                 macOS)"
            ),
        ),
        (false, Some(path)) if passwordless() => row(
            "sudo",
            Status::Ok,
            format!(
                "{} runs commands without a password: `up` and `destroy` edit {FILES} through \
                 `sudo k0slab bootptab apply`",
                path.display()
            ),
        ),
        (false, Some(path)) => row(
            "sudo",
            Status::Ok,
            format!(
                "{}: `up` and `destroy` say why, then ask for your password to edit {FILES}; \
                 without a terminal they stop and print the command (or see README, The root \
                 step, for a sudoers rule)",
                path.display()
            ),
        ),
    }
}

/// What can be told of bootpd without root and without a VM. launchd runs
/// `/usr/libexec/bootpd` for DHCP packets on the `bootps` socket (apple-oss-distributions/bootp
/// bootp-494.60.3 `bootpd.tproj/bootps.plist`: `ProgramArguments`, `Sockets`; the job ships
/// `Disabled`, enabled by macOS' network sharing, which Tart's shared network uses); bootpd
/// writes `/var/run/bootpd.pid` when it starts and leaves it when it exits after five idle
/// minutes (`bootpd.c` lines 163, 247-257, 1134-1169, 1319); it rewrites the leases file after
/// every lease it grants (`dhcpd.c` lines 1281-1284). Whether it answers a VM now, only
/// `doctor --network` can tell.
fn bootpd_row(ctx: &Context<'_>) -> Row {
    let files = crate::network::dhcp::Files::from_env(ctx.env);
    if !files.bootpd.exists() {
        return row(
            "bootpd",
            Status::Fail,
            format!(
                "{} not found: the lab's VMs get their addresses from macOS' DHCP server",
                files.bootpd.display()
            ),
        );
    }
    let now = match crate::network::dhcp::running_bootpd(&files) {
        Some(pid) => format!("running (pid {pid})"),
        None => format!(
            "not running now{}: launchd starts {} at the next DHCP packet",
            if files.pid_file.exists() {
                format!(
                    " ({} is left from an earlier run)",
                    files.pid_file.display()
                )
            } else {
                String::new()
            },
            files.bootpd.display()
        ),
    };
    let answered = match std::fs::metadata(&files.leases).and_then(|m| m.modified()) {
        Ok(written) => format!(
            "it last granted a lease {} ago ({} written)",
            crate::progress::format_duration(written.elapsed().unwrap_or_default()),
            files.leases.display()
        ),
        Err(_) => format!(
            "{} is not there yet: no VM had a lease on this host",
            files.leases.display()
        ),
    };
    row(
        "bootpd",
        Status::Ok,
        format!("{now}; {answered}; `k0slab doctor --network` measures that it answers"),
    )
}

/// The load balancer VM installs HAProxy from Ubuntu's archive on its first boot
/// (templates/load-balancer-setup.sh.tera: `apt-get install haproxy` unless it is there).
fn load_balancer_row() -> Row {
    row(
        "load balancer",
        Status::Ok,
        "not checked: its first boot runs apt-get install haproxy, so that boot needs the \
         internet once; later boots need none",
    )
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
/// The checks the network probe cannot run without.
pub const PROBE_NEEDS: [&str; 3] = ["vagrant", "tart", "vagrant-tart"];

/// Every check of the host for the lab `planned`, in the order `doctor` shows them.
pub fn host_rows(ctx: &Context<'_>, planned: &Planned) -> Vec<Row> {
    let (macos, macos_version) = macos_row(ctx);
    let mut rows = vec![macos];
    rows.extend(tool_rows(ctx));
    rows.push(plugin_row(ctx));
    if planned.topology.network == NetworkMode::Softnet {
        rows.push(softnet_row(ctx, macos_version));
        rows.push(softnet_setup_row(ctx));
    }
    let bootpd = planned.topology.network.served_by_bootpd();
    if bootpd {
        let root = crate::network::dhcp::is_root();
        let sudo = which::which("sudo").ok();
        rows.push(sudo_row(root, sudo.as_deref(), || {
            crate::network::dhcp::passwordless_sudo(ctx.env, &ctx.out)
        }));
        rows.push(bootpd_row(ctx));
    }
    rows.extend(resource_rows(&planned.topology.nodes));
    if bootpd {
        rows.push(served_subnet_row(ctx, &planned.topology));
    }
    rows.push(lease_row(
        ctx,
        &planned.topology.nodes,
        planned.topology.endpoint.address,
    ));
    if planned.topology.endpoint.kind == crate::topology::EndpointKind::Haproxy {
        rows.push(load_balancer_row());
    }
    rows.push(cache_row(ctx, planned));
    rows.push(nested_row(ctx, planned, macos_version));
    rows
}

/// Whether this Mac can give VMs nested virtualization (KubeVirt's workload VMs): a failure
/// when the lab asks for it (`K0SLAB_NESTED`), else what it would take.
fn nested_row(ctx: &Context<'_>, planned: &Planned, macos: Option<versions::Version>) -> Row {
    const CHECK: &str = "nested virtualization";
    let brand = host::cpu_brand(ctx.env, &ctx.out);
    let tart = ctx.tools.get(Tool::Tart).ok().and_then(|path| {
        Tart {
            path,
            env: ctx.env,
            out: &ctx.out,
        }
        .version()
        .ok()
    });
    let problems =
        crate::workflow::preflight::nested_problems(brand.as_deref(), macos, tart.as_deref());
    let asked = planned.topology.nodes.iter().any(|n| n.nested);
    match (problems.is_empty(), asked) {
        (true, _) => row(
            CHECK,
            Status::Ok,
            format!(
                "{} with macOS 15+ and Tart 2.20+: workers can host KubeVirt's VMs \
                 (K0SLAB_NESTED=workers){}",
                brand.as_deref().unwrap_or("this chip"),
                if asked { ", as this lab asks" } else { "" }
            ),
        ),
        (false, true) => row(
            CHECK,
            Status::Fail,
            format!(
                "K0SLAB_NESTED=workers cannot work here: {}",
                problems.join("; ")
            ),
        ),
        (false, false) => row(
            CHECK,
            Status::Ok,
            format!(
                "not asked for; KubeVirt's workload VMs (K0SLAB_NESTED=workers) would not run \
                 here: {}",
                problems.join("; ")
            ),
        ),
    }
}

/// The host's k0s cache: what it holds, and whether the lab's release is in it (then `up`
/// needs no internet for k0s).
fn cache_row(ctx: &Context<'_>, planned: &Planned) -> Row {
    const CHECK: &str = "k0s cache";
    if !crate::workflow::cache::enabled(ctx) {
        return row(
            CHECK,
            Status::Ok,
            "off (K0SLAB_K0S_CACHE=off): k0sctl downloads k0s and every node pulls its images",
        );
    }
    let cache = crate::lab::cache::Cache::new(ctx.env);
    let entries = match cache.entries() {
        Ok(e) => e,
        Err(e) => return row(CHECK, Status::Warn, e.to_string()),
    };
    let held = if entries.is_empty() {
        "empty".to_string()
    } else {
        entries
            .iter()
            .map(|e| {
                format!(
                    "{} ({}{})",
                    e.version.as_str(),
                    crate::output::bytes(e.bytes),
                    if e.complete { "" } else { ", incomplete" }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lab = match &planned.topology.k0s_version {
        Some(v) if cache.has(v) => format!(
            "the lab's {} is cached: `up` needs no internet for k0s",
            v.as_str()
        ),
        Some(v) => format!(
            "the lab's {} is not cached: the first `up` downloads its binary and images once",
            v.as_str()
        ),
        None => "the first `up` pins the newest stable release and downloads it once".into(),
    };
    row(
        CHECK,
        Status::Ok,
        format!("{held} in {}; {lab}", cache.root().display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_by_how_k0slab_gets_root() {
        let sudo = std::path::Path::new("/usr/bin/sudo");
        let asked = std::cell::Cell::new(false);
        let r = sudo_row(true, Some(sudo), || {
            asked.set(true);
            false
        });
        assert_eq!(r.status, Status::Ok);
        assert!(r.detail.starts_with("k0slab runs as root"), "{}", r.detail);
        assert!(!asked.get(), "root needs no sudo");
        let r = sudo_row(false, None, || true);
        assert_eq!(r.status, Status::Fail);
        assert!(r.detail.starts_with("sudo not found"), "{}", r.detail);
        let r = sudo_row(false, Some(sudo), || true);
        assert_eq!(r.status, Status::Ok);
        assert!(r.detail.contains("without a password"), "{}", r.detail);
        let r = sudo_row(false, Some(sudo), || false);
        assert_eq!(r.status, Status::Ok);
        assert!(r.detail.contains("ask for your password"), "{}", r.detail);
    }
}
