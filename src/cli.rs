//! The command line (clap). Only this module knows about clap; it hands the library plain
//! domain values ([`Flags`], [`OutputFormat`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::inputs::{Flags, Key};
use crate::kairos::components::{self, Infrastructure};
use crate::kairos::kubevirt::WorkloadImage;
use crate::output::{OutputFormat, Verbosity};

const AFTER_HELP: &str = "\
Every lab setting can also come from an environment variable, spelled as shown or upper-case:
  control_plane_count=3 worker_count=2 k0slab render
Precedence: flag > environment variable > the existing lab (lab.json) > default.

Exit codes: 0 success, 1 a tool or check failed (or the lab is busy), 2 bad input (nothing
was written), 130/143/129 interrupted by SIGINT (Ctrl-C)/SIGTERM/SIGHUP: the VMs keep running
and `k0slab up` resumes.";

/// A duration flag (`--wait 90s`). Its values may start with `-` so that `--wait -5m` is
/// refused as a negative duration instead of read as flag `-5`.
fn duration(value: &str) -> Result<Duration, String> {
    if value.starts_with('-') {
        return Err("a duration cannot be negative: give one such as 90s, 5m or 1h30m".into());
    }
    humantime::parse_duration(value)
        .map_err(|e| format!("{e}: give a duration such as 90s, 5m or 1h30m"))
}

fn workload_image(value: &str) -> Result<WorkloadImage, String> {
    value.parse()
}

/// A realistic multi-node k0s cluster on local VMs (Tart + Vagrant + k0sctl), proven healthy.
#[derive(Debug, Parser)]
#[command(name = "k0slab", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The lab directory [env: K0SLAB_DIR] [default: lab]
    #[arg(long, global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Show more: every external command as it runs
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Show only errors and the requested output
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve and print the topology: machines, roles, addresses, resources, endpoint.
    /// Writes nothing.
    Plan {
        #[command(flatten)]
        lab: LabArgs,
        /// Output format
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Write the lab files (Vagrantfile, k0sctl.yaml, lab.json, SSH key, haproxy.cfg) into the
    /// lab directory.
    Render {
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Bring the lab up: render, start every VM in parallel, k0sctl apply, write the
    /// kubeconfig, check health. Safe to run again: it resumes and skips what is done.
    Up {
        #[command(flatten)]
        lab: LabArgs,
        /// Print every command it would run, and run none
        #[arg(long)]
        dry_run: bool,
        /// How long to wait for the lab to become healthy
        #[arg(long, value_name = "DURATION", default_value = "10m", allow_hyphen_values = true, value_parser = duration)]
        wait: Duration,
    },
    /// Destroy the lab's VMs (as recorded in lab.json) and remove the files k0slab wrote.
    Destroy,
    /// Show the VMs (from Vagrant) and the nodes (from the cluster).
    Status {
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Check the cluster: API through the endpoint, nodes, taints, etcd members, kube-system
    /// pods. Exit 1 if a check fails.
    Health {
        /// Keep checking until healthy or this long has passed (e.g. 90s, 5m)
        #[arg(long, value_name = "DURATION", default_value = "0s", allow_hyphen_values = true, value_parser = duration)]
        wait: Duration,
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Print the path of the lab's kubeconfig, or merge its context into yours.
    Kubeconfig {
        /// Merge context <lab name> into $KUBECONFIG's first file or ~/.kube/config (with a
        /// backup; every other entry is kept)
        #[arg(long)]
        merge: bool,
    },
    /// Open a shell on a lab machine, or run a command there (after `--`).
    Ssh {
        /// The machine, e.g. control-plane-1
        node: String,
        /// The command to run instead of a shell
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Stop every VM of the lab; `k0slab up` resumes it.
    Halt,
    /// Render the lab and run `vagrant validate` on it.
    Validate {
        #[command(flatten)]
        lab: LabArgs,
    },
    /// Check this host: tools and versions, the vagrant-tart plugin, CPUs and memory for the
    /// planned VMs, DHCP leases on the lab's addresses. With `--network`, also measure what
    /// this host's network allows (VM to VM, VXLAN, extra addresses, a VIP, a reserved
    /// address under softnet, nat and a bridged interface) with two throwaway VMs.
    Doctor {
        #[command(flatten)]
        lab: LabArgs,
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Install the vagrant-tart plugin into Vagrant (unless it is there).
    InstallPlugin,
    /// The root half of assigning addresses: `up` and `destroy` run it through sudo (after
    /// saying why), or print it for you to run once.
    Bootptab {
        #[command(subcommand)]
        command: BootptabCommand,
    },
    /// Prove the HA control plane by breaking it: stop controllers, a worker, the load
    /// balancer or a majority of etcd members, watch the API through the endpoint and etcd,
    /// start them again, and compare with what the topology expects. Exit 1 when an
    /// observation contradicts the expectation.
    Drill {
        /// controller-down [NAME] (default: the etcd leader), worker-down [NAME],
        /// endpoint-down, quorum-loss, all [default: all]
        #[arg(value_name = "SCENARIO")]
        scenarios: Vec<String>,
        /// Stop VMs hard (vagrant halt --force) instead of shutting them down
        #[arg(long)]
        hard: bool,
        /// quorum-loss: recover as the seed's procedure does: a backup taken first is restored
        /// into fresh VMs (the lab's VMs are replaced), and its data must be back
        #[arg(long)]
        restore: bool,
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Back the cluster up with k0sctl into <lab>/backups/ (0600; kept by destroy).
    Backup,
    /// Bring a fresh lab up from a backup (k0sctl apply --restore-from), then check health.
    Restore {
        /// The backup, e.g. lab/backups/k0slab-…tar.gz
        file: std::path::PathBuf,
        #[command(flatten)]
        lab: LabArgs,
        /// How long to wait for the lab to become healthy
        #[arg(long, value_name = "DURATION", default_value = "10m", allow_hyphen_values = true, value_parser = duration)]
        wait: Duration,
    },
    /// Local images into the lab's nodes without a registry: `image load`, `image ls`.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// The Kairos Cluster API providers on the lab: install, verify a workload cluster,
    /// uninstall.
    Kairos {
        #[command(subcommand)]
        command: KairosCommand,
    },
    /// The host's k0s cache (~/.k0slab/cache: each k0s release's binary and airgap bundle,
    /// downloaded once and uploaded to the nodes by k0sctl): `cache ls`, `cache prune`.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

/// `k0slab cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// The cached k0s releases: size, whether whole, and which labs on this host pin them.
    Ls {
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Remove the cached releases no lab on this host pins (and downloads cut off with
    /// them); one being downloaded is kept.
    Prune {
        /// Every cached release, also those labs pin (their next `up` downloads it again)
        #[arg(long)]
        all: bool,
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// `k0slab kairos …`.
#[derive(Debug, Subcommand)]
pub enum KairosCommand {
    /// Install cert-manager, Cluster API core, an infrastructure provider and the Kairos
    /// providers on the lab; wait until each is Available. Safe to run again.
    Install {
        /// The infrastructure provider for workload clusters
        #[arg(long, value_enum)]
        infrastructure: Infrastructure,
        /// Its release [default: CAPD = the Cluster API version, CAPV v1.14.0, CAPK v0.1.10]
        #[arg(long, value_name = "VERSION")]
        infrastructure_version: Option<String>,
        /// cert-manager release
        #[arg(long, value_name = "VERSION", default_value = components::CERT_MANAGER_VERSION)]
        cert_manager_version: String,
        /// Cluster API core release
        #[arg(long, value_name = "VERSION", default_value = components::CAPI_VERSION)]
        capi_version: String,
        /// Kairos providers release: a tag of kairos-io/cluster-api-provider-kairos, whose
        /// kairos-capi-provider.yaml is applied (ignored with --provider-manifest)
        #[arg(long, value_name = "VERSION", default_value = components::KAIROS_VERSION)]
        kairos_version: String,
        /// Install the Kairos providers from your working copy instead of a release: a
        /// manifest file, a kustomize directory (e.g. ../kairos-capi/config/default) or a URL
        #[arg(long, value_name = "PATH")]
        provider_manifest: Option<String>,
        /// Image for the Kairos controller (e.g. your dev build)
        #[arg(long, value_name = "IMAGE")]
        provider_image: Option<String>,
        /// With --infrastructure kubevirt: CDI release (kubevirt/containerized-data-importer)
        #[arg(long, value_name = "VERSION", default_value = components::CDI_VERSION)]
        cdi_version: String,
        /// With --infrastructure kubevirt: KubeVirt release (the one the provider pins)
        #[arg(long, value_name = "VERSION", default_value = components::KUBEVIRT_VERSION)]
        kubevirt_version: String,
        /// With --infrastructure kubevirt: the workload VMs' installer image, built in the lab
        /// by kairos-operator (k3s: the provider's tested hadron image; k0s: hadron with k0s
        /// added by kairos-init), or the http(s) URL of a Kairos installer ISO that CDI
        /// imports in the lab, or none. Its DataVolume: kairos-kubevirt (kairos-kubevirt-k0s)
        #[arg(long, value_name = "IMAGE", default_value = "k3s", value_parser = workload_image)]
        workload_image: WorkloadImage,
        /// How long each component may take to become Available
        #[arg(long, value_name = "DURATION", default_value = "10m", allow_hyphen_values = true, value_parser = duration)]
        timeout: Duration,
        /// How long the workload image's build, and then its import, may each take
        #[arg(long, value_name = "DURATION", default_value = "40m", allow_hyphen_values = true, value_parser = duration)]
        image_timeout: Duration,
    },
    /// Apply a workload cluster manifest and follow it through its milestones; exit 1
    /// naming the milestone or rule that failed. The cluster is deleted afterwards unless
    /// --keep.
    Verify {
        /// The workload cluster (Cluster, KairosControlPlane, MachineDeployments, …)
        #[arg(long, value_name = "PATH")]
        cluster_manifest: PathBuf,
        /// Keep the workload cluster for debugging
        #[arg(long)]
        keep: bool,
        /// How long the cluster may take to reach every milestone [default: 30m; 110m for a
        /// KubeVirt cluster, the provider's own e2e budgets: 45m to Provisioned, 50m for the
        /// control plane, 15m for a Ready Node]
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = duration)]
        timeout: Option<Duration>,
        /// Also require this Machine annotation on the init machine (the init machine is
        /// otherwise found from the bootstrap data: the one controller without a join token)
        #[arg(long, value_name = "KEY")]
        init_annotation: Option<String>,
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Remove what `kairos install` added, including webhook configurations left behind.
    Uninstall,
    /// Check cloud-config files (one per machine) against the bootstrap-data rules, offline:
    /// one init controller, joins with --token-file /etc/k0s/controller-token, workers with
    /// /etc/k0s/token, a kubelet on every controller. The role comes from the content (`k0s`
    /// or `k0s-worker`). Exit 1 when a rule is broken, 2 when a file is unreadable or not YAML.
    Lint {
        /// Cloud-config files, one per machine
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Control-plane replicas [default: the number of files that start a k0s controller]
        #[arg(long, value_name = "N")]
        replicas: Option<u32>,
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// `k0slab image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Export images once from the host's container engine (or take image archives) and
    /// import them into every node that runs a kubelet, in parallel, over the lab's SSH key.
    /// A node that has an image with the same ID already is skipped.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["images", "archive"])))]
    Load {
        /// Images of the container engine, e.g. myapp:dev
        #[arg(value_name = "IMAGE")]
        images: Vec<String>,
        /// Image archives instead (docker save tar or OCI image layout tar); repeatable
        #[arg(long, value_name = "FILE", conflicts_with = "images")]
        archive: Vec<std::path::PathBuf>,
        /// The container engine [default: the first of docker, podman, nerdctl on PATH]
        #[arg(long, value_enum)]
        engine: Option<crate::image::engine::Engine>,
        /// Only these nodes, e.g. worker-1,worker-2 [default: every node with a kubelet]
        #[arg(long, value_delimiter = ',', value_name = "NODES")]
        nodes: Vec<String>,
    },
    /// Which images k0slab loaded are on which node.
    Ls {
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// `k0slab bootptab …`.
#[derive(Debug, Subcommand)]
pub enum BootptabCommand {
    /// As root: apply one change that `up` or `destroy` passes on standard input (JSON: the
    /// lab, its subnet, the addresses to assign or the MACs to release) to /etc/bootptab and
    /// /var/db/dhcpd_leases, then signal bootpd. Takes no paths: every field is checked first.
    Apply,
}

/// The lab settings, as flags. Values are validated by the library, so that a bad flag and a
/// bad environment variable get the same message.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Lab settings")]
pub struct LabArgs {
    /// Controllers, control-plane-1..N at .10 upward: 1–10 [env: control_plane_count] [default: 1]
    #[arg(long, value_name = "N")]
    pub control_plane_count: Option<String>,
    /// Workers, worker-1..N at .20 upward: 0–80 [env: worker_count] [default: 1]
    #[arg(long, value_name = "N")]
    pub worker_count: Option<String>,
    /// Memory of each controller in MB: 1024–65536 [env: memory_control] [default: 2048]
    #[arg(long, value_name = "MB")]
    pub memory_control: Option<String>,
    /// Memory of each worker in MB: 1024–65536 [env: memory_worker] [default: 4096]
    #[arg(long, value_name = "MB")]
    pub memory_worker: Option<String>,
    /// CPUs of each controller: 1–64 [env: cpu_control] [default: 2]
    #[arg(long, value_name = "N")]
    pub cpu_control: Option<String>,
    /// CPUs of each worker: 1–64 [env: cpu_worker] [default: 2]
    #[arg(long, value_name = "N")]
    pub cpu_worker: Option<String>,
    /// Disk of each VM in GB: 20 (the image's own disk)–2048 [env: disk_size] [default: 32]
    #[arg(long, value_name = "GB")]
    pub disk_size: Option<String>,
    /// Lab name, used for VM names, the k0sctl cluster and the kube context
    /// [env: K0SLAB_NAME] [default: k0slab-<hash>, or k0slab-<dir name>-<hash> when the
    /// directory is not named `lab`; <hash> is 6 hex digits of the directory's path]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The lab network, a private CIDR (10/8, 172.16/12, 192.168/16) with prefix ≤ 24 [env:
    /// K0SLAB_SUBNET] [default: 192.168.64.0/24]
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// How VMs are networked: softnet (VMs reach each other), nat (Tart's shared network,
    /// VMs isolated on macOS 13+), bridged:<interface> [env: K0SLAB_NETWORK] [default: softnet].
    /// With `doctor`, also probe this host's network with two throwaway VMs (MODE optional)
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "")]
    pub network: Option<String>,
    /// API endpoint: auto (none for 1 controller, haproxy for more), none, haproxy, cplb
    /// (a VIP: not on softnet) [env: K0SLAB_ENDPOINT] [default: auto]
    #[arg(long, value_name = "MODE")]
    pub endpoint: Option<String>,
    /// Address of the VIP or load balancer [env: K0SLAB_ENDPOINT_IP] [default: host .100]
    #[arg(long, value_name = "IP")]
    pub endpoint_ip: Option<String>,
    /// VM image (OCI reference) [env: K0SLAB_IMAGE] [default: ghcr.io/cirruslabs/ubuntu:latest]
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Vagrant provider: tart [env: K0SLAB_PROVIDER] [default: tart]
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// k0s release, e.g. v1.33.4+k0s.0; empty for the newest stable [env: K0S_VERSION]
    #[arg(long, value_name = "VERSION")]
    pub k0s_version: Option<String>,
    /// Let controllers run workloads: true/false, yes/no, on/off or 1/0 [env:
    /// K0SLAB_CONTROLLER_WORKLOADS] [default: true]
    #[arg(long, value_name = "BOOL")]
    pub controller_workloads: Option<String>,
    /// Nested virtualization for KubeVirt: none, or workers (an Apple M3 or later, macOS 15,
    /// Tart 2.20) [env: K0SLAB_NESTED] [default: none]
    #[arg(long, value_name = "MACHINES")]
    pub nested: Option<String>,
}

impl LabArgs {
    /// The flags that were given, by setting.
    pub fn flags(&self) -> Flags {
        let given = [
            (Key::ControlPlaneCount, &self.control_plane_count),
            (Key::WorkerCount, &self.worker_count),
            (Key::MemoryControl, &self.memory_control),
            (Key::MemoryWorker, &self.memory_worker),
            (Key::CpuControl, &self.cpu_control),
            (Key::CpuWorker, &self.cpu_worker),
            (Key::DiskSize, &self.disk_size),
            (Key::Name, &self.name),
            (Key::Subnet, &self.subnet),
            (Key::Network, &self.network),
            (Key::Endpoint, &self.endpoint),
            (Key::EndpointIp, &self.endpoint_ip),
            (Key::Image, &self.image),
            (Key::Provider, &self.provider),
            (Key::K0sVersion, &self.k0s_version),
            (Key::ControllerWorkloads, &self.controller_workloads),
            (Key::Nested, &self.nested),
        ];
        Flags(
            given
                .into_iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_setting_has_its_flag() {
        let cli = Cli::try_parse_from(
            std::iter::once("k0slab".to_string())
                .chain(["plan".to_string()])
                .chain(
                    Key::ALL
                        .iter()
                        .flat_map(|k| [k.flag().to_string(), "x".to_string()]),
                ),
        )
        .unwrap();
        let Command::Plan { lab, .. } = cli.command else {
            panic!("plan")
        };
        assert_eq!(lab.flags().0.len(), Key::ALL.len());
    }
}
