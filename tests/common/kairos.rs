//! Helpers of the `kairos` tests (kairos.rs, kairos_install.rs): a lab with the stand-in
//! management cluster, its objects, and the test fixtures.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use super::standins::{both, standins_bin, Sandbox};

/// The path of `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A sandbox with a running 3-controller lab.
pub fn lab() -> Sandbox {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["-q", "up", "--wait", "5s"],
        &[("control_plane_count", "3")],
    );
    assert!(o.status.success(), "{}", both(&o));
    sb
}

/// `kairos install --infrastructure docker`, which must succeed.
pub fn installed(sb: &Sandbox) {
    let o = sb.k0slab(&["kairos", "install", "--infrastructure", "docker"], &[]);
    assert!(o.status.success(), "{}", both(&o));
}

/// What was applied to the stand-in cluster (objects.json: no live status, nothing derived).
pub fn objects(sb: &Sandbox) -> Vec<Value> {
    fs::read_to_string(sb.state().join("objects.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default()
}

pub fn has(sb: &Sandbox, kind: &str, name: &str) -> bool {
    objects(sb)
        .iter()
        .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The stand-in kubectl on the lab's cluster with `args`.
pub fn kubectl(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let kubeconfig = sb.lab().join("kubeconfig").display().to_string();
    let kubectl = standins_bin().join("kubectl").display().to_string();
    let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
    all.extend_from_slice(args);
    sb.command(&kubectl, &all, env)
}

/// The stand-in kubectl's answer to `get ARGS -o json` on the lab's cluster, with the live
/// status and what the stand-in providers derived.
pub fn get(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let o = kubectl(sb, &all, env);
    assert!(o.status.success(), "{args:?}: {}", both(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}
