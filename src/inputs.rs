//! Inputs: flags and environment variables turned into typed, validated values.
//!
//! Precedence is flag > environment variable > the existing lab (`lab.json`) > default. Each
//! environment variable may be spelled lower- or upper-case (`control_plane_count` as in the PRD,
//! or `CONTROL_PLANE_COUNT`); both set to different values is an error. Every bad value becomes
//! an [`InputError`] naming where it came from, the value and what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::LazyLock;

use ipnet::Ipv4Net;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::error::InputError;
use crate::network::NetworkMode;

/// One setting of a lab, with its environment variable and flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    ControlPlaneCount,
    WorkerCount,
    MemoryControl,
    MemoryWorker,
    CpuControl,
    CpuWorker,
    DiskSize,
    Name,
    Subnet,
    Network,
    Endpoint,
    EndpointIp,
    Image,
    Provider,
    K0sVersion,
    ControllerWorkloads,
    Nested,
}

impl Key {
    /// Every lab setting, in the order they are shown.
    pub const ALL: [Key; 17] = [
        Key::ControlPlaneCount,
        Key::WorkerCount,
        Key::MemoryControl,
        Key::MemoryWorker,
        Key::CpuControl,
        Key::CpuWorker,
        Key::DiskSize,
        Key::Name,
        Key::Subnet,
        Key::Network,
        Key::Endpoint,
        Key::EndpointIp,
        Key::Image,
        Key::Provider,
        Key::K0sVersion,
        Key::ControllerWorkloads,
        Key::Nested,
    ];

    /// The environment variable, in its documented spelling.
    pub fn env_name(self) -> &'static str {
        match self {
            Key::ControlPlaneCount => "control_plane_count",
            Key::WorkerCount => "worker_count",
            Key::MemoryControl => "memory_control",
            Key::MemoryWorker => "memory_worker",
            Key::CpuControl => "cpu_control",
            Key::CpuWorker => "cpu_worker",
            Key::DiskSize => "disk_size",
            Key::Name => "K0SLAB_NAME",
            Key::Subnet => "K0SLAB_SUBNET",
            Key::Network => "K0SLAB_NETWORK",
            Key::Endpoint => "K0SLAB_ENDPOINT",
            Key::EndpointIp => "K0SLAB_ENDPOINT_IP",
            Key::Image => "K0SLAB_IMAGE",
            Key::Provider => "K0SLAB_PROVIDER",
            Key::K0sVersion => "K0S_VERSION",
            Key::ControllerWorkloads => "K0SLAB_CONTROLLER_WORKLOADS",
            Key::Nested => "K0SLAB_NESTED",
        }
    }

    /// The command-line flag.
    pub fn flag(self) -> &'static str {
        match self {
            Key::ControlPlaneCount => "--control-plane-count",
            Key::WorkerCount => "--worker-count",
            Key::MemoryControl => "--memory-control",
            Key::MemoryWorker => "--memory-worker",
            Key::CpuControl => "--cpu-control",
            Key::CpuWorker => "--cpu-worker",
            Key::DiskSize => "--disk-size",
            Key::Name => "--name",
            Key::Subnet => "--subnet",
            Key::Network => "--network",
            Key::Endpoint => "--endpoint",
            Key::EndpointIp => "--endpoint-ip",
            Key::Image => "--image",
            Key::Provider => "--provider",
            Key::K0sVersion => "--k0s-version",
            Key::ControllerWorkloads => "--controller-workloads",
            Key::Nested => "--nested",
        }
    }
}

/// Where a raw value came from; shown in error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// A value as the user gave it, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    pub value: String,
    pub origin: Origin,
}

impl Raw {
    fn invalid(&self, allowed: impl Into<String>) -> InputError {
        InputError::Invalid {
            origin: self.origin.to_string(),
            value: self.value.clone(),
            allowed: allowed.into(),
        }
    }
}

/// Reads environment variable `name` in either spelling (as written, lower- or upper-case).
/// Both spellings set to different values is an error.
pub fn lookup_env(env: &Environment, name: &str) -> Result<Option<Raw>, InputError> {
    let lower = name.to_ascii_lowercase();
    let upper = name.to_ascii_uppercase();
    let found = |n: &str| env.get(n).map(|v| (n.to_string(), v.to_string()));
    match (found(&lower), found(&upper)) {
        (Some((l, lv)), Some((u, uv))) if lv != uv => Err(InputError::Conflict {
            lower: l,
            lower_value: lv,
            upper: u,
            upper_value: uv,
        }),
        (Some((n, v)), _) | (None, Some((n, v))) => Ok(Some(Raw {
            value: v,
            origin: Origin::Env(n),
        })),
        (None, None) => Ok(None),
    }
}

/// Values given on the command line, by setting. Flags win over environment variables.
#[derive(Debug, Clone, Default)]
pub struct Flags(pub BTreeMap<Key, String>);

/// The name of a lab: a DNS label, used for VM names, the k0sctl cluster and the kube context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LabName(String);

/// The longest lab name: VM names append up to 17 characters (`-control-plane-10`).
pub const LAB_NAME_MAX: usize = 40;

static LAB_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z]([-a-z0-9]*[a-z0-9])?$").expect("valid regex"));

impl LabName {
    /// The default name of a lab kept in directory `dir` (an absolute path): `k0slab` for the
    /// usual `lab`, otherwise `k0slab-<dir name>` cleaned into a DNS label, then `-` and six
    /// hex digits of a hash of the path. Tart VM names are global on a host, so two checkouts
    /// that both use `lab/` must not share a name; the name is chosen once and kept in
    /// `lab.json`.
    pub fn for_directory(dir: &std::path::Path) -> LabName {
        use sha2::{Digest, Sha256};
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Letters beyond ASCII are transliterated ("Ünïcødé" → "unicode"); what is left that a
        // DNS label cannot hold becomes one dash between words.
        let ascii = deunicode::deunicode(&dir_name).to_ascii_lowercase();
        let cleaned = ascii
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|word| !word.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let cleaned = cleaned.as_str();
        let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
        let hash: String = digest[..3].iter().map(|b| format!("{b:02x}")).collect();
        let mut base = if cleaned.is_empty() || cleaned == "lab" || cleaned == "k0slab" {
            "k0slab".to_string()
        } else {
            format!("k0slab-{cleaned}")
        };
        base.truncate(LAB_NAME_MAX - hash.len() - 1);
        // Cut in the middle of a word, the label must not end with its dash; the hash keeps
        // it unique.
        let base = base.trim_end_matches('-');
        LabName(format!("{base}-{hash}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LabName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() <= LAB_NAME_MAX && LAB_NAME_RE.is_match(&s) {
            Ok(LabName(s))
        } else {
            Err(format!(
                "a name of 1 to {LAB_NAME_MAX} characters: lower-case letters, digits and '-', \
                 starting with a letter and not ending with '-'"
            ))
        }
    }
}

impl From<LabName> for String {
    fn from(n: LabName) -> String {
        n.0
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the Kubernetes API is reached, as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    /// `none` for one controller, `haproxy` for several.
    Auto,
    /// The API at control-plane-1's address.
    None,
    /// k0s control-plane load balancing: a keepalived VIP on the controllers.
    Cplb,
    /// A separate HAProxy VM in front of the controllers.
    Haproxy,
}

impl FromStr for EndpointMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            "cplb" => Ok(Self::Cplb),
            "haproxy" => Ok(Self::Haproxy),
            _ => Err("one of auto, none, cplb, haproxy".into()),
        }
    }
}

impl fmt::Display for EndpointMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::None => "none",
            Self::Cplb => "cplb",
            Self::Haproxy => "haproxy",
        })
    }
}

/// Which machines get nested virtualization (Tart's `--nested`), so that KubeVirt can run
/// workload VMs on them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nested {
    /// No machine (labs from before the setting existed too).
    #[default]
    None,
    /// Every worker.
    Workers,
}

impl FromStr for Nested {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "workers" => Ok(Self::Workers),
            _ => Err(
                "none, or workers (nested virtualization on every worker, for KubeVirt: \
                      an Apple M3 or later with macOS 15 and Tart 2.20)"
                    .into(),
            ),
        }
    }
}

impl fmt::Display for Nested {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Workers => "workers",
        })
    }
}

/// The Vagrant provider that runs the VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Tart,
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tart" => Ok(Self::Tart),
            _ => Err("tart (the only provider so far)".into()),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tart")
    }
}

/// A k0s release such as `v1.33.4+k0s.0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct K0sVersion {
    text: String,
    major: u32,
    minor: u32,
    patch: u32,
}

static K0S_VERSION_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^v(\d{1,4})\.(\d{1,4})\.(\d{1,4})(-(alpha|beta|rc)\.\d{1,4})?\+k0s\.\d{1,4}$")
        .expect("valid regex")
});

impl K0sVersion {
    /// Whether this release is at least `major.minor.patch` (pre-releases count as the release).
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Releases in order: by number, a pre-release before its release.
    fn sort_key(&self) -> (u32, u32, u32, bool, &str) {
        (
            self.major,
            self.minor,
            self.patch,
            !self.text.contains('-'),
            &self.text,
        )
    }
}

impl PartialOrd for K0sVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for K0sVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl TryFrom<String> for K0sVersion {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let caps = K0S_VERSION_RE.captures(&text).ok_or_else(|| {
            "a k0s release like v1.33.4+k0s.0, or empty for the newest stable release".to_string()
        })?;
        let num = |i: usize| {
            caps[i]
                .parse::<u32>()
                .expect("digits checked by the pattern")
        };
        let (major, minor, patch) = (num(1), num(2), num(3));
        Ok(Self {
            text,
            major,
            minor,
            patch,
        })
    }
}

impl From<K0sVersion> for String {
    fn from(v: K0sVersion) -> String {
        v.text
    }
}

/// An OCI image reference (`registry/path:tag` or `…@sha256:digest`).
static IMAGE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    let host = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?";
    Regex::new(&format!(
        r"^(?:{host}/)?{component}(?:/{component})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
    ))
    .expect("valid regex")
});

/// The validated inputs of a lab: everything `lab.json` records and the topology is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub name: LabName,
    pub control_plane_count: u32,
    pub worker_count: u32,
    /// Memory of each controller, MB.
    pub memory_control: u32,
    /// Memory of each worker, MB.
    pub memory_worker: u32,
    pub cpu_control: u32,
    pub cpu_worker: u32,
    /// Disk of each VM, GB.
    pub disk_size: u32,
    pub subnet: Ipv4Net,
    /// How the VMs are attached to the host's network (labs from before it existed: softnet).
    #[serde(default)]
    pub network: NetworkMode,
    pub endpoint: EndpointMode,
    /// The HA endpoint's address; `None` means host .100 of the subnet.
    pub endpoint_ip: Option<Ipv4Addr>,
    pub image: String,
    pub provider: Provider,
    /// `None` lets k0sctl pick the newest stable release.
    pub k0s_version: Option<K0sVersion>,
    pub controller_workloads: bool,
    /// Nested virtualization (labs from before it existed: none).
    #[serde(default)]
    pub nested: Nested,
}

pub const CONTROL_PLANE_COUNT: RangeInclusive<u32> = 1..=10;
pub const WORKER_COUNT: RangeInclusive<u32> = 0..=80;
pub const MEMORY_MB: RangeInclusive<u32> = 1024..=65536;
pub const CPUS: RangeInclusive<u32> = 1..=64;
/// From the image's own disk: the cirruslabs Ubuntu image has 20 GB, and Tart cannot shrink a
/// disk (cirruslabs/tart `Sources/tart/VMDirectory.swift`, "should be larger than the current
/// disk size"), so vagrant-tart's `tart set --disk-size` on every start fails below it.
pub const DISK_GB: RangeInclusive<u32> = 20..=2048;
pub const DEFAULT_IMAGE: &str = "ghcr.io/cirruslabs/ubuntu:latest";
pub const DEFAULT_SUBNET: &str = "192.168.64.0/24";

/// One setting whose explicit value differs from the existing lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Key,
    pub lab: String,
    pub requested: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  {}: the lab has {}, now asked for {}",
            self.key.env_name(),
            self.lab,
            self.requested
        )
    }
}

/// The outcome of resolving inputs: the values, and what differs from the existing lab.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub inputs: Inputs,
    pub changes: Vec<Change>,
}

/// How a value is shown to people (in lists of differences).
trait Shown {
    fn shown(&self) -> String;
}

macro_rules! shown_by_display {
    ($($t:ty),*) => { $(impl Shown for $t { fn shown(&self) -> String { self.to_string() } })* };
}
shown_by_display!(
    u32,
    bool,
    String,
    Ipv4Net,
    EndpointMode,
    Provider,
    LabName,
    NetworkMode,
    Nested
);

impl Shown for Option<Ipv4Addr> {
    fn shown(&self) -> String {
        self.map_or_else(|| "the default (.100)".into(), |ip| ip.to_string())
    }
}

impl Shown for Option<K0sVersion> {
    fn shown(&self) -> String {
        self.as_ref()
            .map_or_else(|| "the newest stable release".into(), |v| v.text.clone())
    }
}

struct Resolver<'a> {
    flags: &'a Flags,
    env: &'a Environment,
    lab: Option<&'a Inputs>,
    changes: Vec<Change>,
}

impl Resolver<'_> {
    fn explicit(&self, key: Key) -> Result<Option<Raw>, InputError> {
        if let Some(value) = self.flags.0.get(&key) {
            return Ok(Some(Raw {
                value: value.clone(),
                origin: Origin::Flag(key.flag()),
            }));
        }
        lookup_env(self.env, key.env_name())
    }

    /// The value of `key`: explicit (parsed with `parse`, which returns what is allowed on
    /// failure), else the lab's, else `default`.
    fn pick<T: Clone + PartialEq + Shown>(
        &mut self,
        key: Key,
        parse: impl Fn(&str) -> Result<T, String>,
        from_lab: impl Fn(&Inputs) -> T,
        default: impl FnOnce() -> T,
    ) -> Result<T, InputError> {
        let lab = self.lab.map(&from_lab);
        match self.explicit(key)? {
            Some(raw) => {
                let value = parse(&raw.value).map_err(|allowed| raw.invalid(allowed))?;
                if let Some(lab) = lab.filter(|l| *l != value) {
                    self.changes.push(Change {
                        key,
                        lab: lab.shown(),
                        requested: value.shown(),
                    });
                }
                Ok(value)
            }
            None => Ok(lab.unwrap_or_else(default)),
        }
    }
}

fn whole_number(range: RangeInclusive<u32>) -> impl Fn(&str) -> Result<u32, String> {
    counted(range, "")
}

/// A whole number in `range`; `why` explains the range in error messages.
fn counted(range: RangeInclusive<u32>, why: &'static str) -> impl Fn(&str) -> Result<u32, String> {
    move |s| {
        let allowed = || {
            format!(
                "a whole number from {} to {}{why}",
                range.start(),
                range.end()
            )
        };
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(allowed());
        }
        s.parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(allowed)
    }
}

/// The words a boolean setting accepts, in any letter case: (means true, means false).
pub const BOOLEAN_WORDS: [(&str, &str); 4] =
    [("true", "false"), ("yes", "no"), ("on", "off"), ("1", "0")];

fn boolean(s: &str) -> Result<bool, String> {
    let word = s.to_ascii_lowercase();
    for (yes, no) in BOOLEAN_WORDS {
        if word == yes {
            return Ok(true);
        }
        if word == no {
            return Ok(false);
        }
    }
    let pairs: Vec<String> = BOOLEAN_WORDS
        .iter()
        .map(|(yes, no)| format!("{yes}/{no}"))
        .collect();
    Err(format!(
        "true or false, written as one of {} (in any letter case)",
        pairs.join(", ")
    ))
}

/// The private IPv4 ranges of RFC 1918, the only ones a lab subnet may lie in.
///
/// Not 100.64.0.0/10: that is the carriers' shared address space (RFC 6598, not for end sites)
/// and the range Tailscale gives its nodes, so on a developer's Mac it may already be routed.
pub const PRIVATE_RANGES: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/// What a network outside the private ranges is, for the error message.
fn not_private(net: Ipv4Net) -> &'static str {
    let first = net.network();
    let inside = |range: &str| {
        range
            .parse::<Ipv4Net>()
            .expect("valid range")
            .contains(&first)
    };
    if first.is_loopback() {
        "a loopback network"
    } else if first.is_multicast() {
        "a multicast network"
    } else if inside("0.0.0.0/8") {
        "\"this network\" (0.0.0.0/8), which no host may use"
    } else if first.is_link_local() {
        "a link-local network"
    } else if inside("100.64.0.0/10") {
        "the carriers' shared address space (RFC 6598, also used by Tailscale)"
    } else if inside("240.0.0.0/4") {
        "a reserved network"
    } else {
        "a public network"
    }
}

/// A lab subnet as given, or what is allowed: private (RFC 1918), at most /24, a network address.
pub fn lab_subnet(s: &str) -> Result<Ipv4Net, String> {
    let private = format!(
        "a private IPv4 network (RFC 1918: inside {}, {} or {})",
        PRIVATE_RANGES[0], PRIVATE_RANGES[1], PRIVATE_RANGES[2]
    );
    let allowed =
        format!("{private} in CIDR form with a prefix of at most /24, e.g. 192.168.64.0/24");
    let net: Ipv4Net = s.parse().map_err(|_| allowed.clone())?;
    if net.prefix_len() > 24 {
        return Err(format!(
            "{allowed} (a /{} has too few addresses for .10–.100)",
            net.prefix_len()
        ));
    }
    if net.addr() != net.network() {
        return Err(format!("{allowed}; did you mean {}?", net.trunc()));
    }
    let is_private = PRIVATE_RANGES
        .iter()
        .any(|r| r.parse::<Ipv4Net>().expect("valid range").contains(&net));
    if !is_private {
        return Err(format!("{allowed}; {net} is {}", not_private(net)));
    }
    Ok(net)
}

fn endpoint_ip(s: &str) -> Result<Option<Ipv4Addr>, String> {
    s.parse::<Ipv4Addr>()
        .map(Some)
        .map_err(|_| "an IPv4 address inside the lab subnet, e.g. 192.168.64.100".into())
}

fn image(s: &str) -> Result<String, String> {
    if s.len() <= 255 && IMAGE_RE.is_match(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "an OCI image reference like {DEFAULT_IMAGE} (registry/path[:tag][@sha256:digest])"
        ))
    }
}

fn k0s_version(s: &str) -> Result<Option<K0sVersion>, String> {
    if s.is_empty() {
        Ok(None)
    } else {
        K0sVersion::try_from(s.to_string()).map(Some)
    }
}

/// The variable that sets how many machines are worked on at once.
pub const CONCURRENCY_VAR: &str = "K0SLAB_CONCURRENCY";
/// The variable that sets how often k0slab polls while it waits.
pub const POLL_INTERVAL_VAR: &str = "K0SLAB_POLL_INTERVAL";
/// Machines worked on at once when `K0SLAB_CONCURRENCY` is unset.
pub const DEFAULT_CONCURRENCY: usize = 10;
/// Allowed `K0SLAB_CONCURRENCY`: a lab has at most 91 machines (10 controllers, 80 workers,
/// the load balancer), so more than 100 at once never helps.
pub const CONCURRENCY: RangeInclusive<u32> = 1..=100;
/// The poll interval when `K0SLAB_POLL_INTERVAL` is unset.
pub const DEFAULT_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// How many machines are worked on at once: `K0SLAB_CONCURRENCY`, else 10. Any other value
/// than a whole number from 1 to 100 is an input error.
pub fn concurrency(env: &Environment) -> Result<usize, InputError> {
    let Some(value) = env.get(CONCURRENCY_VAR) else {
        return Ok(DEFAULT_CONCURRENCY);
    };
    let raw = Raw {
        value: value.to_string(),
        origin: Origin::Env(CONCURRENCY_VAR.into()),
    };
    let n = counted(
        CONCURRENCY,
        " (machines worked on at once; a lab has at most 91)",
    )(value)
    .map_err(|allowed| raw.invalid(allowed))?;
    Ok(usize::try_from(n).expect("at most 100"))
}

/// How often to poll while waiting: `K0SLAB_POLL_INTERVAL` (e.g. `500ms`), else 5s. Anything
/// but a duration above zero is an input error (zero would poll without pause).
pub fn poll_interval(env: &Environment) -> Result<std::time::Duration, InputError> {
    duration_var(env, POLL_INTERVAL_VAR, DEFAULT_POLL_INTERVAL)
}

/// A duration from environment variable `var` (e.g. `K0SLAB_ADDRESS_TIMEOUT=90s`), else
/// `default`; anything but a duration above zero with a unit is an input error naming it.
pub fn duration_var(
    env: &Environment,
    var: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration, InputError> {
    let Some(value) = env.get(var) else {
        return Ok(default);
    };
    humantime::parse_duration(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Raw {
                value: value.to_string(),
                origin: Origin::Env(var.into()),
            }
            .invalid("a duration above zero with a unit, e.g. 500ms, 5s or 1m")
        })
}

/// Turns the host's k0s cache off: `K0SLAB_K0S_CACHE=off`.
pub const K0S_CACHE_VAR: &str = "K0SLAB_K0S_CACHE";

/// Whether k0s comes from the host's cache (`K0SLAB_K0S_CACHE`: `on`, the default, or `off`:
/// k0sctl downloads the binary and every node pulls its images, as without k0slab's cache).
pub fn k0s_cache(env: &Environment) -> Result<bool, InputError> {
    match env.get(K0S_CACHE_VAR) {
        None | Some("" | "on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(Raw {
            value: other.to_string(),
            origin: Origin::Env(K0S_CACHE_VAR.into()),
        }
        .invalid("on (the default: k0s and its images from the host's cache) or off")),
    }
}

/// Every duration variable k0slab reads (each where it is used, with its own default):
/// how often to poll, how long a guest may take to reach its address, how long to wait for
/// another command's lock, and the drill's timings.
pub const DURATION_VARS: [&str; 6] = [
    POLL_INTERVAL_VAR,
    "K0SLAB_ADDRESS_TIMEOUT",
    "K0SLAB_LOCK_WAIT",
    "K0SLAB_DRILL_POLL",
    "K0SLAB_DRILL_OBSERVE",
    "K0SLAB_DRILL_RECOVER",
];

/// Variables that name a directory: k0slab's own (`~/.k0slab`).
pub const DIRECTORY_VARS: [&str; 1] = ["K0SLAB_HOME"];

/// Variables that name a file in place of macOS' own (bootpd's files, for tests and unusual
/// set-ups; see [`crate::network::dhcp::Files::from_env`]).
pub const FILE_VARS: [&str; 5] = [
    "K0SLAB_BOOTPTAB",
    "K0SLAB_DHCP_LEASES",
    "K0SLAB_BOOTPD_PID",
    "K0SLAB_BOOTPD_PLIST",
    "K0SLAB_BOOTPD_EXE",
];

/// A path variable that exists as the wrong kind of thing (empty means unset).
fn path_var(env: &Environment, var: &str, directory: bool) -> Result<(), InputError> {
    let Some(value) = env.get(var).filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let Ok(meta) = std::fs::metadata(value) else {
        return Ok(());
    };
    let allowed = match (directory, meta.is_dir()) {
        (true, false) => "a directory, but this path is not one",
        (false, true) => "a file, but this path is a directory",
        _ => return Ok(()),
    };
    Err(Raw {
        value: value.to_string(),
        origin: Origin::Env(var.into()),
    }
    .invalid(allowed))
}

/// Checks every variable k0slab reads once, before a command does anything: the lab settings
/// (each as typed, and `flags`, the command's lab flags), `K0SLAB_CONCURRENCY`, the duration
/// variables and the path variables. So a bad value is refused before anything is written or
/// run, also by a command that would only read it late (e.g. `K0SLAB_ADDRESS_TIMEOUT`, after
/// the VMs booted) or not at all (`up --dry-run`).
pub fn check_environment(env: &Environment, flags: &Flags) -> Result<(), InputError> {
    let placeholder = LabName::try_from("k0slab".to_string()).expect("a valid name");
    // Each variable on its own, also one a flag overrides.
    resolve(&Flags::default(), env, None, &placeholder)?;
    resolve(flags, env, None, &placeholder)?;
    concurrency(env)?;
    k0s_cache(env)?;
    for var in DURATION_VARS {
        duration_var(env, var, std::time::Duration::ZERO)?;
    }
    for var in DIRECTORY_VARS {
        path_var(env, var, true)?;
    }
    for var in FILE_VARS {
        path_var(env, var, false)?;
    }
    Ok(())
}

/// Resolves every lab setting: flags, then the environment, then `lab` (the existing lab's
/// inputs), then the defaults. `default_name` is the lab name used when none is given.
pub fn resolve(
    flags: &Flags,
    env: &Environment,
    lab: Option<&Inputs>,
    default_name: &LabName,
) -> Result<Resolved, InputError> {
    let subnet = DEFAULT_SUBNET.parse().expect("valid default subnet");
    resolve_with_subnet(flags, env, lab, default_name, subnet)
}

/// Whether `key` was given as a flag or an environment variable.
pub fn is_given(key: Key, flags: &Flags, env: &Environment) -> Result<bool, InputError> {
    Ok(flags.0.contains_key(&key) || lookup_env(env, key.env_name())?.is_some())
}

/// [`resolve`] with another default subnet (the one bootpd serves on this host).
pub fn resolve_with_subnet(
    flags: &Flags,
    env: &Environment,
    lab: Option<&Inputs>,
    default_name: &LabName,
    default_subnet: Ipv4Net,
) -> Result<Resolved, InputError> {
    let mut r = Resolver {
        flags,
        env,
        lab,
        changes: Vec::new(),
    };
    let inputs = Inputs {
        control_plane_count: r.pick(
            Key::ControlPlaneCount,
            counted(
                CONTROL_PLANE_COUNT,
                " (controllers use host .10 to .19; an 11th would take .20, worker-1's address)",
            ),
            |l| l.control_plane_count,
            || 1,
        )?,
        worker_count: r.pick(
            Key::WorkerCount,
            counted(
                WORKER_COUNT,
                " (workers use host .20 to .99, below the API endpoint at .100)",
            ),
            |l| l.worker_count,
            || 1,
        )?,
        memory_control: r.pick(
            Key::MemoryControl,
            whole_number(MEMORY_MB),
            |l| l.memory_control,
            || 2048,
        )?,
        memory_worker: r.pick(
            Key::MemoryWorker,
            whole_number(MEMORY_MB),
            |l| l.memory_worker,
            || 4096,
        )?,
        cpu_control: r.pick(Key::CpuControl, whole_number(CPUS), |l| l.cpu_control, || 2)?,
        cpu_worker: r.pick(Key::CpuWorker, whole_number(CPUS), |l| l.cpu_worker, || 2)?,
        disk_size: r.pick(
            Key::DiskSize,
            counted(
                DISK_GB,
                " (the image's own disk is 20 GB and Tart cannot shrink a disk)",
            ),
            |l| l.disk_size,
            || 32,
        )?,
        name: r.pick(
            Key::Name,
            |s| LabName::try_from(s.to_string()),
            |l| l.name.clone(),
            || default_name.clone(),
        )?,
        subnet: r.pick(Key::Subnet, lab_subnet, |l| l.subnet, || default_subnet)?,
        network: r.pick(
            Key::Network,
            |s| s.parse(),
            |l| l.network.clone(),
            NetworkMode::default,
        )?,
        endpoint: r.pick(
            Key::Endpoint,
            |s| s.parse(),
            |l| l.endpoint,
            || EndpointMode::Auto,
        )?,
        endpoint_ip: r.pick(Key::EndpointIp, endpoint_ip, |l| l.endpoint_ip, || None)?,
        image: r.pick(
            Key::Image,
            image,
            |l| l.image.clone(),
            || DEFAULT_IMAGE.into(),
        )?,
        provider: r.pick(
            Key::Provider,
            |s| s.parse(),
            |l| l.provider,
            || Provider::Tart,
        )?,
        k0s_version: r.pick(
            Key::K0sVersion,
            k0s_version,
            |l| l.k0s_version.clone(),
            || None,
        )?,
        controller_workloads: r.pick(
            Key::ControllerWorkloads,
            boolean,
            |l| l.controller_workloads,
            || true,
        )?,
        nested: r.pick(Key::Nested, |s| s.parse(), |l| l.nested, Nested::default)?,
    };
    Ok(Resolved {
        inputs,
        changes: r.changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> LabName {
        LabName::try_from("k0slab".to_string()).unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().copied())
    }

    fn resolve_env(pairs: &[(&str, &str)]) -> Result<Inputs, InputError> {
        resolve(&Flags::default(), &env(pairs), None, &name()).map(|r| r.inputs)
    }

    fn invalid_origin(err: InputError) -> (String, String) {
        match err {
            InputError::Invalid { origin, value, .. } => (origin, value),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_prd() {
        let i = resolve_env(&[]).unwrap();
        assert_eq!(i.control_plane_count, 1);
        assert_eq!(i.worker_count, 1);
        assert_eq!(i.memory_control, 2048);
        assert_eq!(i.memory_worker, 4096);
        assert_eq!(i.cpu_control, 2);
        assert_eq!(i.cpu_worker, 2);
        assert_eq!(i.disk_size, 32);
        assert_eq!(i.subnet.to_string(), "192.168.64.0/24");
        assert_eq!(i.endpoint, EndpointMode::Auto);
        assert_eq!(i.network, NetworkMode::Softnet);
        assert_eq!(i.endpoint_ip, None);
        assert_eq!(i.image, DEFAULT_IMAGE);
        assert_eq!(i.k0s_version, None);
        assert!(i.controller_workloads);
        assert_eq!(i.name.as_str(), "k0slab");
    }

    #[test]
    fn lower_case_prd_names_work_as_written() {
        let i = resolve_env(&[
            ("control_plane_count", "3"),
            ("worker_count", "2"),
            ("memory_control", "3072"),
            ("memory_worker", "8192"),
            ("cpu_control", "4"),
            ("cpu_worker", "6"),
            ("disk_size", "64"),
        ])
        .unwrap();
        assert_eq!(
            (
                i.control_plane_count,
                i.worker_count,
                i.memory_control,
                i.memory_worker
            ),
            (3, 2, 3072, 8192)
        );
        assert_eq!((i.cpu_control, i.cpu_worker, i.disk_size), (4, 6, 64));
    }

    #[test]
    fn upper_case_alias_is_accepted_and_equal_spellings_agree() {
        assert_eq!(
            resolve_env(&[("WORKER_COUNT", "5")]).unwrap().worker_count,
            5
        );
        let both = resolve_env(&[("worker_count", "5"), ("WORKER_COUNT", "5")]).unwrap();
        assert_eq!(both.worker_count, 5);
        let lower_sdk = resolve_env(&[("k0slab_subnet", "10.1.0.0/16")]).unwrap();
        assert_eq!(lower_sdk.subnet.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn both_spellings_set_differently_is_an_error() {
        let err =
            resolve_env(&[("control_plane_count", "3"), ("CONTROL_PLANE_COUNT", "5")]).unwrap_err();
        assert_eq!(
            err,
            InputError::Conflict {
                lower: "control_plane_count".into(),
                lower_value: "3".into(),
                upper: "CONTROL_PLANE_COUNT".into(),
                upper_value: "5".into(),
            }
        );
        assert!(err.to_string().contains("unset one of them"));
    }

    #[test]
    fn flag_beats_environment_beats_default() {
        let mut flags = Flags::default();
        flags.0.insert(Key::WorkerCount, "7".into());
        let e = env(&[("worker_count", "3"), ("control_plane_count", "3")]);
        let i = resolve(&flags, &e, None, &name()).unwrap().inputs;
        assert_eq!(i.worker_count, 7);
        assert_eq!(i.control_plane_count, 3);
    }

    #[test]
    fn a_bad_flag_names_the_flag() {
        let mut flags = Flags::default();
        flags.0.insert(Key::WorkerCount, "many".into());
        let err = resolve(&flags, &Environment::default(), None, &name()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "flag --worker-count has the value \"many\", which is not allowed: \
             expected a whole number from 0 to 80 (workers use host .20 to .99, below the API \
             endpoint at .100)"
        );
    }

    #[test]
    fn count_boundaries() {
        for ok in ["1", "10"] {
            assert!(resolve_env(&[("control_plane_count", ok)]).is_ok(), "{ok}");
        }
        for bad in [
            "0",
            "11",
            "-1",
            "",
            " 3",
            "3.0",
            "three",
            "+3",
            "99999999999",
        ] {
            let err = resolve_env(&[("control_plane_count", bad)]).unwrap_err();
            let (origin, value) = invalid_origin(err.clone());
            assert_eq!(origin, "environment variable control_plane_count");
            assert_eq!(value, bad);
            assert!(err.to_string().contains("from 1 to 10"), "{err}");
        }
        for ok in ["0", "80"] {
            assert!(resolve_env(&[("worker_count", ok)]).is_ok(), "{ok}");
        }
        for bad in ["81", "-1", ""] {
            assert!(resolve_env(&[("worker_count", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn resource_boundaries() {
        let cases: &[(&str, &str, &str)] = &[
            ("memory_control", "1024", "1023"),
            ("memory_control", "65536", "65537"),
            ("memory_worker", "1024", "512"),
            ("cpu_control", "1", "0"),
            ("cpu_worker", "64", "65"),
            ("disk_size", "20", "19"),
            ("disk_size", "2048", "2049"),
        ];
        for (var, ok, bad) in cases {
            assert!(resolve_env(&[(var, ok)]).is_ok(), "{var}={ok}");
            let (origin, _) = invalid_origin(resolve_env(&[(var, bad)]).unwrap_err());
            assert_eq!(origin, format!("environment variable {var}"));
        }
    }

    #[test]
    fn subnet_rules() {
        assert!(resolve_env(&[("K0SLAB_SUBNET", "10.0.0.0/16")]).is_ok());
        for bad in [
            "192.168.64.0/25",
            "192.168.64.5/24",
            "fd00::/64",
            "192.168.64.0",
            "",
        ] {
            let err = resolve_env(&[("K0SLAB_SUBNET", bad)]).unwrap_err();
            assert!(err.to_string().contains("K0SLAB_SUBNET"), "{err}");
        }
        let err = resolve_env(&[("K0SLAB_SUBNET", "192.168.64.5/24")]).unwrap_err();
        assert!(
            err.to_string().contains("did you mean 192.168.64.0/24"),
            "{err}"
        );
        for ok in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "172.31.0.0/16",
            "192.168.0.0/16",
        ] {
            assert!(resolve_env(&[("K0SLAB_SUBNET", ok)]).is_ok(), "{ok}");
        }
        for (bad, what) in [
            ("127.0.0.0/24", "loopback"),
            ("224.0.0.0/24", "multicast"),
            ("0.0.0.0/24", "this network"),
            ("169.254.1.0/24", "link-local"),
            ("100.64.0.0/16", "RFC 6598"),
            ("240.0.0.0/24", "reserved"),
            ("8.8.8.0/24", "public"),
            ("172.32.0.0/24", "public"),
            ("172.0.0.0/8", "public"),
            ("192.0.0.0/8", "public"),
        ] {
            let err = resolve_env(&[("K0SLAB_SUBNET", bad)]).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("{bad} is ")), "{text}");
            assert!(text.contains(what), "{bad}: {text}");
            assert!(
                text.contains("RFC 1918: inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"),
                "{text}"
            );
        }
    }

    #[test]
    fn endpoint_values() {
        for (s, m) in [
            ("auto", EndpointMode::Auto),
            ("none", EndpointMode::None),
            ("cplb", EndpointMode::Cplb),
            ("haproxy", EndpointMode::Haproxy),
        ] {
            assert_eq!(resolve_env(&[("K0SLAB_ENDPOINT", s)]).unwrap().endpoint, m);
        }
        let err = resolve_env(&[("K0SLAB_ENDPOINT", "kube-vip")]).unwrap_err();
        assert!(err.to_string().contains("auto, none, cplb, haproxy"));
        assert!(resolve_env(&[("K0SLAB_ENDPOINT_IP", "192.168.64.300")]).is_err());
    }

    #[test]
    fn k0s_versions() {
        let v = resolve_env(&[("K0S_VERSION", "v1.33.4+k0s.0")])
            .unwrap()
            .k0s_version
            .unwrap();
        assert!(v.at_least(1, 30, 0));
        assert!(!v.at_least(1, 34, 0));
        assert!(resolve_env(&[("K0S_VERSION", "v1.34.1-rc.1+k0s.0")]).is_ok());
        assert_eq!(
            resolve_env(&[("K0S_VERSION", "")]).unwrap().k0s_version,
            None
        );
        for bad in ["1.33.4", "v1.33.4", "latest", "v1.33.4+k0s.0; rm -rf /"] {
            assert!(resolve_env(&[("K0S_VERSION", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_are_references_not_ruby() {
        for ok in [
            "ghcr.io/cirruslabs/ubuntu:latest",
            "ghcr.io/cirruslabs/ubuntu:24.04",
            "localhost:5000/my/image:v1",
            "ubuntu",
            "ghcr.io/cirruslabs/ubuntu@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(resolve_env(&[("K0SLAB_IMAGE", ok)]).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ghcr.io/x\" ; system(\"rm -rf /\") ; \"",
            "#{`id`}",
            "Ubuntu",
            "ubuntu:bad tag",
            "a b",
            "img\nnext",
        ] {
            assert!(resolve_env(&[("K0SLAB_IMAGE", bad)]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn booleans_and_provider() {
        assert!(
            !resolve_env(&[("K0SLAB_CONTROLLER_WORKLOADS", "false")])
                .unwrap()
                .controller_workloads
        );
        let workloads = |v: &str| {
            resolve_env(&[("K0SLAB_CONTROLLER_WORKLOADS", v)]).map(|i| i.controller_workloads)
        };
        for yes in ["true", "TRUE", "yes", "Yes", "on", "ON", "1"] {
            assert_eq!(workloads(yes), Ok(true), "{yes}");
        }
        for no in ["false", "False", "no", "NO", "off", "Off", "0"] {
            assert_eq!(workloads(no), Ok(false), "{no}");
        }
        for bad in ["maybe", "y", "n", "", " on", "2", "enabled"] {
            let err = workloads(bad).unwrap_err();
            assert!(
                err.to_string().ends_with(
                    "expected true or false, written as one of true/false, yes/no, on/off, 1/0 \
                     (in any letter case)"
                ),
                "{err}"
            );
        }
        assert!(resolve_env(&[("K0SLAB_PROVIDER", "virtualbox")]).is_err());
    }

    #[test]
    fn tuning_variables() {
        let e = Environment::default();
        assert_eq!(concurrency(&e).unwrap(), DEFAULT_CONCURRENCY);
        assert_eq!(poll_interval(&e).unwrap(), DEFAULT_POLL_INTERVAL);
        assert_eq!(concurrency(&env(&[(CONCURRENCY_VAR, "3")])).unwrap(), 3);
        assert_eq!(
            poll_interval(&env(&[(POLL_INTERVAL_VAR, "250ms")])).unwrap(),
            std::time::Duration::from_millis(250)
        );
        for bad in ["0", "-1", "abc", "soon", "", "101", "1.5"] {
            let err = concurrency(&env(&[(CONCURRENCY_VAR, bad)])).unwrap_err();
            let (origin, value) = invalid_origin(err.clone());
            assert_eq!(
                (origin.as_str(), value.as_str()),
                ("environment variable K0SLAB_CONCURRENCY", bad)
            );
            assert!(err.to_string().contains("from 1 to 100"), "{err}");
            assert!(check_environment(&env(&[(CONCURRENCY_VAR, bad)]), &Flags::default()).is_err());
        }
        for bad in ["0", "0s", "-1", "abc", "soon", "", "5"] {
            let err = poll_interval(&env(&[(POLL_INTERVAL_VAR, bad)])).unwrap_err();
            let (origin, value) = invalid_origin(err.clone());
            assert_eq!(
                (origin.as_str(), value.as_str()),
                ("environment variable K0SLAB_POLL_INTERVAL", bad)
            );
            assert!(err.to_string().contains("above zero"), "{err}");
            assert!(
                check_environment(&env(&[(POLL_INTERVAL_VAR, bad)]), &Flags::default()).is_err()
            );
        }
    }

    #[test]
    fn lab_names() {
        use std::path::Path;
        let a = LabName::for_directory(Path::new("/work/projA/lab"));
        let b = LabName::for_directory(Path::new("/work/projB/lab"));
        assert!(
            a.as_str().starts_with("k0slab-") && a.as_str().len() == 13,
            "{a:?}"
        );
        assert_ne!(a, b, "two checkouts' lab/ get different names");
        assert_eq!(
            a,
            LabName::for_directory(Path::new("/work/projA/lab")),
            "stable"
        );
        let demo = LabName::for_directory(Path::new("/x/My Lab_2"));
        assert!(demo.as_str().starts_with("k0slab-my-lab-2-"), "{demo:?}");
        let unicode = LabName::for_directory(Path::new("/x/Ünïcødé lab"));
        assert!(
            unicode.as_str().starts_with("k0slab-unicode-lab-"),
            "transliterated: {unicode:?}"
        );
        let spaced = LabName::for_directory(Path::new("/x/my  lab -- (2)"));
        assert!(
            spaced.as_str().starts_with("k0slab-my-lab-2-") && !spaced.as_str().contains("--"),
            "one dash between words: {spaced:?}"
        );
        for odd in ["LAB", "..", "/", "日本", "_"] {
            let n = LabName::for_directory(&Path::new("/x").join(odd));
            assert!(
                LabName::try_from(n.as_str().to_string()).is_ok(),
                "{odd}: {n:?}"
            );
            assert_ne!(n.as_str(), "k0slab", "{odd}");
        }
        let long = LabName::for_directory(&Path::new("/x").join("x".repeat(100)));
        assert!(long.as_str().len() <= LAB_NAME_MAX);
        assert!(LabName::try_from(long.as_str().to_string()).is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(41)] {
            assert!(resolve_env(&[("K0SLAB_NAME", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn unset_values_come_from_the_lab_and_explicit_differences_are_listed() {
        let lab = resolve_env(&[("control_plane_count", "3"), ("worker_count", "2")]).unwrap();
        let r = resolve(
            &Flags::default(),
            &Environment::default(),
            Some(&lab),
            &name(),
        )
        .unwrap();
        assert_eq!(r.inputs, lab);
        assert!(r.changes.is_empty());

        let r = resolve(
            &Flags::default(),
            &env(&[("worker_count", "4"), ("control_plane_count", "3")]),
            Some(&lab),
            &name(),
        )
        .unwrap();
        assert_eq!(
            r.changes,
            vec![Change {
                key: Key::WorkerCount,
                lab: "2".into(),
                requested: "4".into()
            }]
        );
    }
}
