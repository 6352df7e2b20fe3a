//! What `k0slab doctor --network` measures and keeps: the checks, their observations and
//! the report saved in `~/.k0slab/network-probe.json` (`plan`/`up` read it to decide whether
//! `K0SLAB_ENDPOINT=cplb` on `nat` deserves a warning), and the commands the probe runs in its
//! guests. The probe's run is [`crate::workflow::probe`].

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::network::NetworkMode;

/// The probe's VXLAN device, VNI and port. k0s' Calico uses VXLAN on UDP 4789 by default
/// (k0sproject/k0s `pkg/apis/k0s/v1beta1/calico.go` lines 43-49, 68-77); another VNI keeps the
/// probe apart from a lab's. `dstport` is given explicitly: without it Linux picks a
/// non-standard port (iproute2 `ip/iplink_vxlan.c` lines 423-431).
pub const VXLAN_DEVICE: &str = "k0slab-probe";
pub const VXLAN_VNI: u32 = 4242;
pub const VXLAN_PORT: u16 = 4789;
pub const VXLAN_INNER: [Ipv4Addr; 2] =
    [Ipv4Addr::new(10, 255, 42, 1), Ipv4Addr::new(10, 255, 42, 2)];

/// The guest's interface with the default route, as a shell expression.
const IFACE: &str = "\"$(ip -4 route show default | awk '{print $5; exit}')\"";

/// One thing the probe measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Each VM pings the other at its DHCP lease.
    VmToVm,
    /// A VXLAN tunnel between the two leases carries a ping (how Calico carries pod traffic).
    Vxlan,
    /// An address added beside VM A's lease, pinged from VM B.
    ExtraFromVm,
    /// The same address, pinged from the host.
    ExtraFromHost,
    /// A /32 moved from VM A to VM B with gratuitous ARP (as keepalived does), pinged from the
    /// host and from VM A.
    VipMoved,
    /// Each VM at the address k0slab assigned it in bootpd's files.
    ReservedAddress,
}

impl Check {
    pub fn label(self) -> &'static str {
        match self {
            Check::VmToVm => "VM to VM on leases",
            Check::Vxlan => "VXLAN tunnel between leases",
            Check::ExtraFromVm => "extra address, from the other VM",
            Check::ExtraFromHost => "extra address, from the host",
            Check::VipMoved => "VIP moved by gratuitous ARP",
            Check::ReservedAddress => "bootptab-reserved address",
        }
    }

    /// What the sources say should happen under `mode`, and why.
    pub fn expected(self, mode: &NetworkMode) -> (bool, &'static str) {
        const ISOLATED: &str = "macOS 13+ adds each VM to bridge100 as a PRIVATE member \
                                (cirruslabs/tart#718, #837; cirruslabs/softnet#37)";
        const SOFTNET_SOURCE: &str = "Softnet drops packets whose source is not the VM's lease \
                                      (cirruslabs/softnet lib/proxy/vm.rs lines 50-64)";
        match (mode, self) {
            (_, Check::ReservedAddress) => (
                true,
                "bootpd offers a client its entry in dhcpd_leases (apple-oss-distributions/bootp \
                 bootpd.tproj/dhcpd.c lines 752-800)",
            ),
            (NetworkMode::Softnet, Check::VmToVm | Check::Vxlan) => (
                true,
                "--net-softnet-allow=0.0.0.0/0 lifts the isolation (cirruslabs/softnet \
                 src/main.rs, lib/proxy/mod.rs lines 70-73)",
            ),
            (NetworkMode::Softnet, _) => (false, SOFTNET_SOURCE),
            (NetworkMode::Nat, Check::ExtraFromHost) => (
                false,
                "macOS filters ARP replies for extra addresses (canonical/multipass#1298)",
            ),
            (NetworkMode::Nat, _) => (false, ISOLATED),
            (NetworkMode::Bridged(_), _) => (
                true,
                "Tart bridges the VM onto the LAN and filters nothing (the LAN itself may)",
            ),
        }
    }
}

/// One observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    pub network: String,
    pub check: Check,
    pub expected: bool,
    /// `None`: could not be measured (see `detail`).
    pub observed: Option<bool>,
    pub detail: String,
    pub reason: String,
}

impl Measurement {
    pub fn new(mode: &NetworkMode, check: Check, observed: Option<bool>, detail: String) -> Self {
        let (expected, reason) = check.expected(mode);
        Measurement {
            network: mode.to_string(),
            check,
            expected,
            observed,
            detail,
            reason: reason.to_string(),
        }
    }

    /// Observed, and not what the sources say.
    pub fn surprising(&self) -> bool {
        self.observed.is_some_and(|o| o != self.expected)
    }
}

/// What `doctor --network` found; kept in `~/.k0slab/network-probe.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub k0slab_version: String,
    /// Unix seconds.
    pub measured_at: u64,
    pub image: String,
    pub measurements: Vec<Measurement>,
}

impl Report {
    /// Whether the probe saw `check` work under `mode`.
    pub fn works(&self, mode: &NetworkMode, check: Check) -> bool {
        let network = mode.to_string();
        self.measurements
            .iter()
            .any(|m| m.network == network && m.check == check && m.observed == Some(true))
    }

    /// The checks the lab's default design relies on that did not work.
    pub fn missing_for_default(&self) -> Vec<String> {
        let softnet = NetworkMode::Softnet.to_string();
        self.measurements
            .iter()
            .filter(|m| {
                (m.network == softnet && matches!(m.check, Check::VmToVm | Check::Vxlan))
                    || m.check == Check::ReservedAddress
            })
            .filter(|m| m.observed != Some(true))
            .map(|m| format!("{}: {} ({})", m.network, m.check.label(), m.detail))
            .collect()
    }

    pub fn table(&self) -> String {
        let yes_no = |b: bool| if b { "works" } else { "blocked" };
        crate::output::table(
            &["network", "check", "expected", "observed", "detail"],
            self.measurements
                .iter()
                .map(|m| {
                    vec![
                        m.network.clone(),
                        m.check.label().to_string(),
                        yes_no(m.expected).to_string(),
                        match m.observed {
                            None => "not measured".to_string(),
                            Some(o) if m.surprising() => format!("{} (UNEXPECTED)", yes_no(o)),
                            Some(o) => yes_no(o).to_string(),
                        },
                        m.detail.clone(),
                    ]
                })
                .collect(),
            &[],
        )
    }
}

pub fn report_path(env: &Environment) -> PathBuf {
    crate::tools::host::k0slab_home(env).join("network-probe.json")
}

/// The last report on this host, if any.
pub fn saved(env: &Environment) -> Option<Report> {
    let text = std::fs::read_to_string(report_path(env)).ok()?;
    serde_json::from_str(&text).ok()
}

// --- what runs in the guests (iputils, iproute2: the image is Ubuntu) ------------------------

/// One echo request, two seconds for the reply; exit 1 without one (iputils `ping/ping.c`
/// lines 464-466, 590-600; `ping_common.c` lines 914-919).
pub fn guest_ping(address: Ipv4Addr) -> String {
    format!("ping -c 1 -W 2 {address}")
}

pub fn add_address(address: Ipv4Addr, prefix: u8) -> String {
    format!("sudo ip address add {address}/{prefix} dev {IFACE}")
}

pub fn delete_address(address: Ipv4Addr, prefix: u8) -> String {
    format!("sudo ip address del {address}/{prefix} dev {IFACE}")
}

/// Takes `address` as a /32 and announces it with unsolicited ARP, as keepalived does on
/// failover (iputils `arping.c` line 894, `-U`). The cirruslabs image installs nothing but
/// its kernel and the Tart guest agent (cirruslabs/linux-image-templates `playbook.yml`), so
/// arping is installed when missing.
pub fn take_vip(address: Ipv4Addr) -> String {
    format!(
        "{} && (command -v arping >/dev/null || sudo DEBIAN_FRONTEND=noninteractive apt-get \
         install -y -qq iputils-arping >/dev/null) && sudo arping -U -c 2 -I {IFACE} {address}",
        add_address(address, 32)
    )
}

/// A VXLAN device to `remote` with inner address `inner` (iproute2 `man/man8/ip-link.8.in`
/// lines 645-757).
pub fn vxlan_up(local: Ipv4Addr, remote: Ipv4Addr, inner: Ipv4Addr) -> String {
    format!(
        "sudo ip link add {VXLAN_DEVICE} type vxlan id {VXLAN_VNI} dstport {VXLAN_PORT} local \
         {local} remote {remote} dev {IFACE} && sudo ip address add {inner}/30 dev \
         {VXLAN_DEVICE} && sudo ip link set {VXLAN_DEVICE} up"
    )
}

pub fn vxlan_down() -> String {
    format!("sudo ip link del {VXLAN_DEVICE}")
}
