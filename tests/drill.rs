//! `k0slab drill` against stand-ins that model etcd quorum, the endpoint and the node
//! controller (tests/standins/lib/standin.rb `quorum?`, bin/kubectl, bin/vagrant). Under
//! `unshare -n`.

mod common;

use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

/// Short windows: the stand-ins change state at once, except the node controller, which
/// keeps Kubernetes' grace period (50 s for the stand-ins' k0s v1.34): in 1.5 s a stopped
/// node stays Ready.
const FAST: [(&str, &str); 3] = [
    ("K0SLAB_DRILL_POLL", "100ms"),
    ("K0SLAB_DRILL_OBSERVE", "1500ms"),
    ("K0SLAB_DRILL_RECOVER", "20s"),
];

fn lab(cp: &str, workers: &str) -> Sandbox {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["-q", "up", "--wait", "5s"],
        &[("control_plane_count", cp), ("worker_count", workers)],
    );
    assert!(o.status.success(), "{}", both(&o));
    sb
}

fn drill(sb: &Sandbox, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
    let mut all = vec!["drill", "-o", "json"];
    all.extend_from_slice(args);
    let mut env = FAST.to_vec();
    env.extend_from_slice(extra);
    sb.k0slab(&all, &env)
}

fn rows(o: &std::process::Output) -> Vec<Value> {
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", both(o)))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn three_plus_two_drill_all_passes_with_the_expected_outcomes() {
    let sb = lab("3", "2");
    let o = drill(&sb, &["all"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let rows = rows(&o);
    let by = |name: &str| {
        rows.iter()
            .find(|r| r["scenario"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {rows:?}"))
    };
    // The etcd leader (the stand-in's: control-plane-1) is stopped by default.
    let c = by("controller-down");
    assert_eq!(c["stopped"], serde_json::json!(["control-plane-1"]));
    assert_eq!(c["observed_available"], true);
    // control-plane-1 runs a kubelet too: its Node is judged as a worker's.
    let reason = c["expected"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "3 etcd members: losing 1 keeps quorum (2 of 3 left); control-plane-1 still Ready "
        ) && reason.ends_with(
            "s after the stop: the node controller marks it NotReady only after its 50s grace \
             period"
        ),
        "{reason}"
    );
    assert!(c["etcd_whole_again_s"].is_number(), "{c}");
    // The expectation says what the window shows, and the observation agrees.
    let w = by("worker-down");
    assert_eq!(w["observed_available"], true);
    assert_eq!(w["expected"]["node_ready"], true, "{w}");
    assert!(
        w["expected"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("a worker holds no etcd member; worker-1 still Ready "),
        "{w}"
    );
    assert!(
        w["observed"]
            .as_str()
            .unwrap()
            .contains("worker-1 still Ready"),
        "inside the grace period: {w}"
    );
    assert!(w["node_ready_again_s"].is_number(), "{w}");
    let e = by("endpoint-down");
    assert_eq!(e["observed_available"], false);
    let q = by("quorum-loss");
    assert_eq!(q["observed_available"], false);
    assert_eq!(
        q["stopped"],
        serde_json::json!(["control-plane-3", "control-plane-2"])
    );
    assert!(q["api_downtime_s"].as_f64().unwrap() >= 1.0, "{q}");
    for r in &rows {
        assert_eq!(r["passed"], true, "{r}");
    }
    // Everything runs again afterwards.
    assert!(sb.vms().values().all(|s| s == "running"), "{:?}", sb.vms());
    let h = sb.k0slab(&["health"], &[]);
    assert!(h.status.success(), "{}", both(&h));
}

/// The verdict follows the observation: a node that turns NotReady inside a window shorter
/// than the grace period k0s runs with contradicts the expectation, and the drill says so.
#[test]
fn a_node_seen_otherwise_than_expected_fails_the_drill() {
    let sb = lab("3", "1");
    // As if kube-controller-manager ran with a 0.5 s grace period.
    let o = drill(
        &sb,
        &["worker-down"],
        &[("STANDIN_NODE_GRACE_SECONDS", "0.5")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let r = &rows(&o)[0];
    assert_eq!(r["observed_available"], r["expected"]["available"], "{r}");
    assert_eq!(r["expected"]["node_ready"], true, "{r}");
    assert!(
        r["observed"]
            .as_str()
            .unwrap()
            .contains("worker-1 NotReady"),
        "{r}"
    );
    assert_eq!(r["passed"], false, "{r}");
    assert!(
        stderr(&o).contains("contradicts the expectation in 1 scenario: worker-down worker-1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn two_controllers_are_unavailable_as_expected_and_that_passes() {
    let sb = lab("2", "1");
    let o = drill(&sb, &["controller-down", "control-plane-2"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let r = &rows(&o)[0];
    assert_eq!(r["observed_available"], false);
    assert!(
        r["expected"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("2 etcd members: losing 1 loses quorum"),
        "{r}"
    );
    assert_eq!(r["passed"], true);
    // The table says so for people.
    let o = sb.k0slab(&["drill", "controller-down", "control-plane-2"], &FAST);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("unavailable (2 etcd members"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn an_api_that_stays_down_after_a_restart_fails_the_drill_naming_the_scenario() {
    let sb = lab("3", "1");
    let o = drill(
        &sb,
        &["controller-down", "control-plane-3"],
        &[
            ("STANDIN_API_STAYS_DOWN", "1"),
            ("K0SLAB_DRILL_RECOVER", "2s"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o)
            .contains("contradicts the expectation in 1 scenario: controller-down control-plane-3"),
        "{}",
        stderr(&o)
    );
    let r = &rows(&o)[0];
    assert_eq!(r["passed"], false);
    assert!(
        r["observed"]
            .as_str()
            .unwrap()
            .contains("NOT healthy again"),
        "{r}"
    );
}

#[test]
fn bad_scenarios_are_bad_input() {
    let sb = lab("1", "1");
    for (args, says) in [
        (vec!["explode"], "drill scenario has the value \"explode\""),
        (vec!["endpoint-down"], "not a load-balancer VM"),
        (
            vec!["controller-down", "worker-1"],
            "has no controller worker-1",
        ),
    ] {
        let o = drill(&sb, &args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", both(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    assert!(sb.calls_of("vagrant", "halt").is_empty());
}

#[test]
fn backup_then_destroy_then_restore_brings_back_a_configmap() {
    let sb = lab("3", "1");
    let kubeconfig = sb.lab().join("kubeconfig").display().to_string();
    let cm = sb.work().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: default\ndata:\n  answer: \"42\"\n",
    )
    .unwrap();
    let kubectl = common::standins::standins_bin().join("kubectl");
    let kubectl = kubectl.to_str().unwrap();
    let get = |sb: &Sandbox| {
        sb.command(
            kubectl,
            &[
                "--kubeconfig",
                &kubeconfig,
                "get",
                "configmap",
                "kept",
                "-n",
                "default",
                "-o",
                "json",
            ],
            &[],
        )
    };
    let o = sb.command(
        kubectl,
        &[
            "--kubeconfig",
            &kubeconfig,
            "apply",
            "-f",
            cm.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", both(&o));

    let o = sb.k0slab(&["backup"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let backups: Vec<_> = std::fs::read_dir(sb.lab().join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        // Not the record k0slab keeps beside each backup (`<backup>.lab.json`).
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&backups[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        backups[0].exists(),
        "destroy keeps the backups: {}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("kept backups/"), "{}", stdout(&o));
    assert!(
        !sb.state().join("objects.json").exists(),
        "the cluster's objects went with its VMs"
    );

    let file = backups[0].display().to_string();
    let o = sb.k0slab(
        &["restore", &file, "--wait", "5s"],
        &[("control_plane_count", "3"), ("worker_count", "1")],
    );
    assert!(o.status.success(), "{}", both(&o));
    let o = get(&sb);
    assert!(o.status.success(), "the ConfigMap is back: {}", both(&o));
    assert!(stdout(&o).contains("\"answer\": \"42\""), "{}", stdout(&o));
    // A running lab is refused: k0sctl would skip the restore without a word.
    let o = sb.k0slab(&["restore", &file], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(
        stderr(&o).contains("runs a cluster already"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn quorum_loss_with_restore_brings_the_cluster_back_with_its_data() {
    let sb = lab("3", "1");
    let before: Vec<String> = sb.vms().into_keys().collect();
    let o = drill(&sb, &["quorum-loss", "--restore"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let r = &rows(&o)[0];
    assert_eq!(r["observed_available"], false, "{r}");
    assert!(
        r["observed"]
            .as_str()
            .unwrap()
            .contains("restored from the backup, data back"),
        "{r}"
    );
    assert_eq!(r["passed"], true);
    // Fresh VMs (new MACs) at the same planned addresses, and the backup kept.
    let vms = sb.vms();
    assert_eq!(vms.len(), before.len());
    assert!(vms.values().all(|s| s == "running"), "{vms:?}");
    assert_eq!(
        std::fs::read_dir(sb.lab().join("backups")).unwrap().count(),
        2,
        "the backup and k0slab's record beside it"
    );
    let h = sb.k0slab(&["health"], &[]);
    assert!(h.status.success(), "{}", both(&h));
}
