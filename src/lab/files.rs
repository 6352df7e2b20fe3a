//! Every file of a lab directory: its name, and the mode k0slab writes it with. Nothing
//! outside this module names a lab file; the rest of k0slab asks [`super::dir::LabDir`] for a
//! path by one of these names.
//!
//! | file                         | mode | written by                                   |
//! |------------------------------|------|----------------------------------------------|
//! | `Vagrantfile`                | 0644 | `render` (every machine, fully expanded)     |
//! | `k0sctl.yaml`                | 0600 | `render` (holds the VRRP password)           |
//! | `haproxy.cfg`                | 0644 | `render`, with `K0SLAB_ENDPOINT=haproxy`     |
//! | `lab.json`, `.lab.json.copy` | 0600 | `render` (the record, both or neither)       |
//! | `id_ed25519`, `.pub`         | 0600 | `render`, once (the lab's SSH key pair)      |
//! | `.gitignore`                 | 0644 | `render`, when the directory has none        |
//! | `known_hosts`                | —    | k0sctl (rig), through `SSH_KNOWN_HOSTS`      |
//! | `kubeconfig`                 | 0600 | `up`, from what `k0sctl apply` wrote         |
//! | `.k0sctl-applied.yaml`       | 0600 | `up`: the k0sctl.yaml last applied           |
//! | `backups/`                   | 0700 | `backup` (kept by `destroy`)                 |
//! | `kairos/`                    | —    | `kairos install` (manifests, installed.json) |
//! | `.vagrant/`                  | —    | Vagrant                                      |

/// The lab directory when neither `--dir` nor `K0SLAB_DIR` names one.
pub const DEFAULT_DIR: &str = "lab";

/// Read and write for the owner only: secrets and keys.
pub const MODE_PRIVATE: u32 = 0o600;
/// Readable by everyone: files without secrets.
pub const MODE_PUBLIC: u32 = 0o644;
/// A directory for the owner only.
pub const MODE_PRIVATE_DIR: u32 = 0o700;

pub const VAGRANTFILE: &str = "Vagrantfile";
pub const K0SCTL_YAML: &str = "k0sctl.yaml";
pub const HAPROXY_CFG: &str = "haproxy.cfg";

/// The lab's record: inputs, machines, secrets, and which files k0slab wrote.
pub const LAB_JSON: &str = "lab.json";
/// k0slab's copy of `lab.json`, written with it: what `destroy` goes by when `lab.json` is
/// gone or damaged.
pub const LAB_JSON_COPY: &str = ".lab.json.copy";

/// The lab's private SSH key and its public half.
pub const PRIVATE_KEY: &str = "id_ed25519";
pub const PUBLIC_KEY: &str = "id_ed25519.pub";

/// The lab's own known_hosts file, which k0sctl's SSH library (rig) creates and appends to
/// when `SSH_KNOWN_HOSTS` names it (k0sproject/rig `protocol/ssh/hostkey/callbacks.go`).
pub const KNOWN_HOSTS: &str = "known_hosts";

/// A `.gitignore` that keeps everything in the lab directory out of git.
pub const GITIGNORE: &str = ".gitignore";
pub const GITIGNORE_CONTENTS: &str =
    "# Written by k0slab: a lab directory holds keys and generated files.\n*\n";

/// The lab's admin kubeconfig.
pub const KUBECONFIG: &str = "kubeconfig";
/// The prefix of the empty 0600 file `k0sctl apply --kubeconfig-out` writes into, removed
/// once read.
pub const KUBECONFIG_FROM_APPLY: &str = ".kubeconfig-from-apply-";

/// A copy of the k0sctl.yaml that was last applied successfully.
pub const APPLIED_MARKER: &str = ".k0sctl-applied.yaml";

/// Where backups go (kept by `destroy`).
pub const BACKUPS: &str = "backups";
/// The suffix of k0slab's record beside a backup: `<backup>.tar.gz.lab.json`. k0sctl's archive
/// is k0s' own backup as k0s wrote it (k0sproject/k0sctl f4005b6 `phase/backup.go` lines
/// 105-112 and 132-144 stream the one file `k0s backup` leaves in its temporary directory),
/// which holds the cluster's data but not the lab's shape; k0slab leaves the archive as it is
/// and keeps the shape beside it.
pub const BACKUP_RECORD_SUFFIX: &str = ".lab.json";

/// The ConfigMap manifest `drill` applies to see that the cluster's data survives.
pub const DRILL_MARKER: &str = ".k0slab-drill-marker.yaml";

/// `kairos install`'s directory (for `uninstall`): the manifests it applied and [`KAIROS_INSTALLED`].
pub const KAIROS_DIR: &str = "kairos";
/// What `kairos install` installed, inside [`KAIROS_DIR`].
pub const KAIROS_INSTALLED: &str = "installed.json";

/// Vagrant's own directory: `.vagrant/machines/<name>/<provider>/id` for each machine.
pub const VAGRANT_DIR: &str = ".vagrant";

/// Files k0slab may write after `render`, besides those `lab.json` lists: `destroy` removes
/// them too.
pub const RUNTIME_FILES: [&str; 4] = [
    KUBECONFIG,
    APPLIED_MARKER,
    KNOWN_HOSTS,
    // Where k0slab before 0.2 staged the root half's change (it now goes on standard input).
    ".k0slab-bootpd-change.json",
];
