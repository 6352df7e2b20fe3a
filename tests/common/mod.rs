//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod kairos;
pub mod standins;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use k0slab::environment::Environment;
use k0slab::inputs::{self, Flags, Inputs, LabName};
use k0slab::lab::files;
use k0slab::lab::record::Secrets;
use k0slab::lab::record::{self, Kept, LabFile as RenderedFile};
use k0slab::render::{self, RenderContext};
use k0slab::topology::Topology;

/// A user's own kubeconfig with two clusters, for merge tests.
pub const USER_KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
- name: kind-dev
  cluster:
    server: https://127.0.0.1:40000
contexts:
- name: prod
  context:
    cluster: prod
    user: prod
- name: kind-dev
  context:
    cluster: kind-dev
    user: kind-dev
users:
- name: prod
  user:
    token: prod-token
- name: kind-dev
  user:
    token: dev-token
current-context: prod
";

/// A fixed lab directory and key, so snapshots do not depend on the machine.
pub const LAB_DIR: &str = "/Users/dev/k0slab/lab";
pub const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0c2xhYnRlc3RrZXl0ZXN0a2V5dGVzdGtleXRlc3Q k0slab@k0slab";

/// The scenarios every rendered-file test covers: (name, environment).
pub const SCENARIOS: &[(&str, &[(&str, &str)])] = &[
    (
        "1+0",
        &[("control_plane_count", "1"), ("worker_count", "0")],
    ),
    ("1+1", &[]),
    (
        "3+2",
        &[("control_plane_count", "3"), ("worker_count", "2")],
    ),
    (
        "5+3",
        &[("control_plane_count", "5"), ("worker_count", "3")],
    ),
    (
        "3+2-haproxy",
        &[
            ("control_plane_count", "3"),
            ("worker_count", "2"),
            ("K0SLAB_ENDPOINT", "haproxy"),
        ],
    ),
    (
        "2+1-cplb-pinned",
        &[
            ("control_plane_count", "2"),
            ("worker_count", "1"),
            ("K0SLAB_ENDPOINT", "cplb"),
            ("K0SLAB_NETWORK", "bridged:en0"),
            ("K0SLAB_ENDPOINT_IP", "192.168.64.50"),
            ("K0S_VERSION", "v1.33.4+k0s.0"),
        ],
    ),
];

pub fn inputs(env: &[(&str, &str)]) -> Inputs {
    inputs::resolve(
        &Flags::default(),
        &Environment::from_pairs(env.iter().copied()),
        None,
        &LabName::try_from("k0slab".to_string()).unwrap(),
    )
    .expect("valid scenario inputs")
    .inputs
}

/// Renders a scenario with the fixed directory, key and secrets.
pub fn render(env: &[(&str, &str)]) -> (Topology, Vec<RenderedFile>) {
    render_with(env, None)
}

/// Where a Mac's cache would hold a release, for renders with the cache.
pub const CACHE_DIR: &str = "/Users/dev/.k0slab/cache/k0s/v1.34.1+k0s.0";

/// [`render`] as `up` renders with the host's cache: the binary and bundle at [`CACHE_DIR`].
pub fn render_cached(env: &[(&str, &str)]) -> (Topology, Vec<RenderedFile>) {
    let binary = PathBuf::from(CACHE_DIR).join("k0s-v1.34.1+k0s.0-arm64");
    let bundle = PathBuf::from(CACHE_DIR).join("k0s-airgap-bundle-v1.34.1+k0s.0-arm64");
    render_with(
        env,
        Some(render::K0sFiles {
            binary: &binary,
            bundle: &bundle,
        }),
    )
}

fn render_with(
    env: &[(&str, &str)],
    k0s_files: Option<render::K0sFiles<'_>>,
) -> (Topology, Vec<RenderedFile>) {
    let inputs = inputs(env);
    let topology = Topology::resolve(&inputs).expect("valid scenario topology");
    let secrets = Secrets {
        vrrp_auth_pass: "Test1234".into(),
    };
    let rendered = render::render(
        &topology,
        &RenderContext {
            private_key: &Path::new(LAB_DIR).join(files::PRIVATE_KEY),
            haproxy_cfg: files::HAPROXY_CFG,
            public_key: PUBLIC_KEY,
            vrrp_auth_pass: &secrets.vrrp_auth_pass,
            assigned: &Default::default(),
            ssh_hosts: &Default::default(),
            k0s_files,
        },
    )
    .expect("scenario renders");
    let files = record::lab_files(
        &inputs,
        &topology,
        rendered,
        &Kept {
            secrets: &secrets,
            merged_into: &[],
            assigned: &Default::default(),
            gitignore: None,
        },
    )
    .expect("scenario's files");
    (topology, files)
}

pub fn file<'a>(files: &'a [RenderedFile], name: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} was rendered"))
        .contents
}

/// Writes rendered files into `dir`.
pub fn write_all(dir: &Path, files: &[RenderedFile]) {
    for f in files {
        fs::write(dir.join(f.name), &f.contents).unwrap();
    }
}

/// Every file below `dir` with its contents and mode, to prove nothing changed.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            out.insert(p.clone(), (fs::read(&p).unwrap(), mode));
        }
    }
    out
}

/// A real validator from PATH; the test command installs them, so a missing one fails.
pub fn require_tool(name: &str) -> PathBuf {
    which::which(name).unwrap_or_else(|_| {
        panic!("{name} is not installed: run the test command in README.md (tests/run.sh), which installs it")
    })
}

/// Runs `cmd` with `input` on its standard input; its output (stdout and stderr captured).
pub fn output_with_input(cmd: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
