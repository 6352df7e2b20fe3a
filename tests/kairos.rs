//! `k0slab kairos install | verify | uninstall` against the stand-ins: a stand-in kubectl
//! that keeps objects on disk, makes Deployments Available and moves a simulated Cluster API
//! and Kairos workload cluster through its states on a schedule (tests/standins/lib/capi.rb),
//! and a stand-in curl that serves release manifests from tests/standins/releases.

mod common;

use std::fs;
use std::path::PathBuf;

use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A sandbox with a running 3-controller lab.
fn lab() -> Sandbox {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["-q", "up", "--wait", "5s"],
        &[("control_plane_count", "3")],
    );
    assert!(o.status.success(), "{}", both(&o));
    sb
}

fn installed(sb: &Sandbox) {
    let o = sb.k0slab(&["kairos", "install", "--infrastructure", "docker"], &[]);
    assert!(o.status.success(), "{}", both(&o));
}

/// `k0slab kairos verify --cluster-manifest <fixture> ARGS…`.
fn verify(
    sb: &Sandbox,
    manifest: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let path = fixture(manifest);
    let mut all = vec!["kairos", "verify", "--cluster-manifest", path.as_str()];
    all.extend_from_slice(args);
    sb.k0slab(&all, env)
}

fn objects(sb: &Sandbox) -> Vec<Value> {
    fs::read_to_string(sb.state().join("objects.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default()
}

fn has(sb: &Sandbox, kind: &str, name: &str) -> bool {
    objects(sb)
        .iter()
        .any(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

#[test]
fn verify_follows_a_healthy_ha_cluster_through_its_milestones() {
    let sb = lab();
    installed(&sb);
    let o = verify(
        &sb,
        "kairos/cluster-ha.yaml",
        &["-o", "json"],
        &[("STANDIN_CAPI_STEP_SECONDS", "1.5")],
    );
    assert!(o.status.success(), "{}", both(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["passed"], true);
    assert_eq!(
        (v["replicas"].as_u64(), v["workers"].as_u64()),
        (Some(3), Some(2))
    );
    let ms = v["milestones"].as_array().unwrap();
    assert_eq!(ms.len(), 8);
    assert!(ms.iter().all(|m| m["reached"] == true), "{ms:?}");
    let at: Vec<f64> = ms
        .iter()
        .map(|m| m["reached_after_s"].as_f64().unwrap())
        .collect();
    assert!(
        at.first() < at.last(),
        "milestones were reached over time: {at:?}"
    );
    let rules = ms
        .iter()
        .find(|m| m["milestone"] == "bootstrap-rules")
        .unwrap();
    assert_eq!(
        rules["detail"],
        "init demo-control-plane-0, 2 joining controller(s), 2 worker(s)"
    );
    // Without --keep the workload cluster is deleted.
    assert!(!has(&sb, "Cluster", "demo"));
    assert!(!has(&sb, "KairosControlPlane", "demo-control-plane"));
}

#[test]
fn verify_keep_leaves_the_cluster_and_the_table_shows_each_milestone() {
    let sb = lab();
    installed(&sb);
    let o = verify(&sb, "kairos/cluster-single.yaml", &["--keep"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let out = stdout(&o);
    for title in [
        "KairosConfigs ready",
        "bootstrap data follows",
        "init machine recorded",
        "KairosControlPlane initialized",
        "Machines Running",
        "workload Nodes Ready",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(title) && l.contains(" ok ")),
            "{title}:\n{out}"
        );
    }
    assert!(
        out.contains("init solo-control-plane-0, 0 joining controller(s), 1 worker(s)"),
        "{out}"
    );
    assert!(has(&sb, "Cluster", "solo"), "--keep kept it");
    assert!(
        stderr(&o).contains("kept workload cluster default/solo"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_control_plane_that_never_initialises_fails_with_its_conditions() {
    let sb = lab();
    installed(&sb);
    let o = verify(
        &sb,
        "kairos/cluster-ha.yaml",
        &["--timeout", "2s"],
        &[("STANDIN_CAPI_NEVER_INITIALIZE", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("KairosControlPlane initialized not reached after 2.0s"),
        "{err}"
    );
    assert!(
        err.contains("Initialized=False (WaitingForControlPlaneInit"),
        "{err}"
    );
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("KairosControlPlane initialized") && l.contains("FAIL")),
        "{}",
        stdout(&o)
    );
    assert!(
        !has(&sb, "Cluster", "demo"),
        "cleaned up after a failure too"
    );
}

#[test]
fn broken_bootstrap_data_is_named_by_machine_and_rule() {
    let sb = lab();
    installed(&sb);
    for (variant, expect) in [
        ("two-inits", "demo-control-plane-1: initialises the cluster too (no join token), but demo-control-plane-0 already does"),
        ("join-without-token", "demo-control-plane-1: a joining controller uses --token-file /etc/k0s/controller-token but its cloud-config does not write that file"),
        ("single-with-replicas", "demo-control-plane-0: uses --single with 3 control-plane replicas"),
        ("worker-without-token", "demo-workers-0: a worker must use --token-file /etc/k0s/token"),
        ("init-flip", "the init machine changed from demo-control-plane-0 to demo-control-plane-1"),
    ] {
        let o = verify(
            &sb,
            "kairos/cluster-ha.yaml",
            &["--timeout", "20s"],
            &[("STANDIN_CAPI_BROKEN", variant), ("STANDIN_CAPI_STEP_SECONDS", "0.3")],
        );
        assert_eq!(o.status.code(), Some(1), "{variant}: {}", both(&o));
        assert!(stderr(&o).contains(expect), "{variant}: {}", stderr(&o));
        assert!(stdout(&o).contains("BROKEN"), "{variant}: {}", stdout(&o));
        assert!(!has(&sb, "Cluster", "demo"), "{variant}: cleaned up");
    }
}
