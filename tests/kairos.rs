//! `k0slab kairos verify` against the stand-ins: a stand-in kubectl that keeps objects on
//! disk and refuses what the CRDs' schemas refuse (tests/standins/lib/capi.rb, crd_schema.rb),
//! and Cluster API with the Kairos providers modelled on kairos-io/kairos-capi 0abbf74 and its
//! successor (tests/standins/lib/kairos_provider.rb). Install and uninstall: kairos_install.rs.

mod common;

use std::fs;

use common::kairos::{fixture, get, has, installed, kubectl, lab};
use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

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

/// How many kubectl calls had all of `words` among their arguments.
fn kubectl_calls(sb: &Sandbox, words: &[&str]) -> usize {
    sb.calls()
        .iter()
        .filter(|c| c.tool == "kubectl" && words.iter().all(|w| c.args.iter().any(|a| a == w)))
        .count()
}

/// The milestones of a `-o json` report by name: (reached, detail).
fn milestones(o: &std::process::Output) -> Vec<(String, bool, String)> {
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(o)));
    v["milestones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["milestone"].as_str().unwrap().to_string(),
                m["reached"] == true,
                m["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn verify_follows_a_healthy_ha_cluster_through_its_milestones() {
    let sb = lab();
    installed(&sb);
    // The default release is the successor's: one init controller, joins with the
    // controller token, and --enable-worker on HA controllers once the KCP has a VIP.
    let o = verify(
        &sb,
        "kairos/cluster-ha.yaml",
        &["-o", "json"],
        &[
            ("STANDIN_CAPI_STEP_SECONDS", "1.5"),
            ("STANDIN_KAIROS_VIP", "1"),
        ],
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
    let got = milestones(&o);
    assert!(got.contains(&(
        "bootstrap-rules".into(),
        true,
        "init demo-control-plane-0, 2 joining controller(s), 2 worker(s)".into()
    )));
    assert!(got.contains(&(
        "init-machine".into(),
        true,
        "demo-control-plane-0 (the controller without a join token)".into()
    )));
    // Without --keep the workload cluster is deleted.
    assert!(!has(&sb, "Cluster", "demo"));
    assert!(!has(&sb, "KairosControlPlane", "demo-control-plane"));
    assert!(!has(&sb, "Secret", "demo-worker-token"));
}

/// kairos-io/kairos-capi writes no annotation, names data Secrets `<config>-<random>` with
/// only the key `value`, and sets `initialization.dataSecretCreated`: a healthy single-node
/// cluster passes.
#[test]
fn a_healthy_single_node_cluster_of_the_real_provider_passes_without_an_annotation() {
    let sb = lab();
    installed(&sb);
    let o = verify(
        &sb,
        "kairos/cluster-single.yaml",
        &["--keep"],
        &[("STANDIN_KAIROS_PROVIDER", "kairos-capi")],
    );
    assert!(o.status.success(), "{}", both(&o));
    let out = stdout(&o);
    for title in [
        "KairosConfigs ready",
        "bootstrap data follows",
        "one init machine",
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
    // The data Secret as the real controller names and fills it.
    let list = get(
        &sb,
        &["secrets", "-n", "default"],
        &[("STANDIN_KAIROS_PROVIDER", "kairos-capi")],
    );
    let data = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("solo-control-plane-0-")
        })
        .expect("a data Secret named <kairosconfig>-<random>");
    assert_eq!(data["type"], "cluster.x-k8s.io/secret");
    assert_eq!(
        data["data"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["value"]
    );
}

#[test]
fn a_named_init_annotation_is_checked_when_the_provider_writes_one() {
    let sb = lab();
    installed(&sb);
    let key = "example.com/kairos-init";
    let o = verify(
        &sb,
        "kairos/cluster-single.yaml",
        &["-o", "json", "--init-annotation", key],
        &[("STANDIN_INIT_ANNOTATION", key)],
    );
    assert!(o.status.success(), "{}", both(&o));
    assert!(milestones(&o).contains(&(
        "init-machine".into(),
        true,
        format!("solo-control-plane-0 ({key})")
    )));
    let o = verify(
        &sb,
        "kairos/cluster-single.yaml",
        &["--timeout", "2s", "--init-annotation", key],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains(&format!("no control-plane Machine has {key} yet")),
        "{}",
        stderr(&o)
    );
}

/// Controllers without --enable-worker register no Node, so their Machines can never be
/// Running: a finding at the first look that has the data, not a timeout.
#[test]
fn ha_controllers_without_a_kubelet_are_a_finding_within_one_poll() {
    let sb = lab();
    installed(&sb);
    sb.clear_calls();
    let o = verify(
        &sb,
        "kairos/cluster-ha.yaml",
        &["--timeout", "10m"],
        &[
            ("STANDIN_CAPI_STEP_SECONDS", "0.01"),
            ("K0SLAB_POLL_INTERVAL", "60s"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("Machines Running: finding for the provider: demo-control-plane-0, demo-control-plane-1, demo-control-plane-2 start a k0s controller without --enable-worker"),
        "{err}"
    );
    assert_eq!(
        kubectl_calls(&sb, &["get", "machines"]),
        1,
        "one look was enough"
    );
    assert!(!has(&sb, "Cluster", "demo"), "cleaned up");
}

/// kairos-io/kairos-capi renders every controller of an HA control plane the same, with no
/// join token and no kubelet: both findings are reported.
#[test]
fn the_real_providers_ha_data_is_named_for_both_findings() {
    let sb = lab();
    installed(&sb);
    let o = verify(
        &sb,
        "kairos/cluster-ha.yaml",
        &["--timeout", "20s"],
        &[
            ("STANDIN_KAIROS_PROVIDER", "kairos-capi"),
            ("STANDIN_CAPI_STEP_SECONDS", "0.05"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    for expect in [
        "demo-control-plane-1: initialises the cluster too (no join token), but demo-control-plane-0 already does",
        "demo-control-plane-2: initialises the cluster too",
        "finding for the provider: demo-control-plane-0, demo-control-plane-1, demo-control-plane-2 start a k0s controller without --enable-worker",
    ] {
        assert!(err.contains(expect), "{expect}:\n{err}");
    }
}

#[test]
fn a_k3s_cluster_is_judged_by_the_k3s_rules_and_its_nodes_become_ready() {
    let sb = lab();
    installed(&sb);
    // distribution: k3s (the provider's tested path): a k3s server initialises, the agent
    // joins with --server and its token file; both run a kubelet.
    let o = verify(&sb, "kairos/cluster-k3s.yaml", &["-o", "json"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let ms = milestones(&o);
    let rules = ms.iter().find(|m| m.0 == "bootstrap-rules").unwrap();
    assert!(rules.1, "{ms:?}");
    assert_eq!(
        rules.2,
        "init kthree-control-plane-0, 0 joining controller(s), 1 worker(s)"
    );
    assert!(ms.iter().all(|m| m.1), "{ms:?}");
}

#[test]
fn a_control_plane_that_never_initialises_fails_with_its_conditions() {
    let sb = lab();
    installed(&sb);
    let o = verify(
        &sb,
        "kairos/cluster-single.yaml",
        &["--timeout", "2s"],
        &[("STANDIN_CAPI_NEVER_INITIALIZE", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("KairosControlPlane initialized not reached after 2.0s"),
        "{err}"
    );
    assert!(err.contains("Ready=False (WaitingForMachines"), "{err}");
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("KairosControlPlane initialized") && l.contains("FAIL")),
        "{}",
        stdout(&o)
    );
    assert!(
        !has(&sb, "Cluster", "solo"),
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
        ("worker-without-token", "demo-workers-0: a worker uses --token-file /etc/k0s/token but its cloud-config does not write that file"),
        ("init-flip", "the init machine changed from demo-control-plane-0 to demo-control-plane-1"),
    ] {
        let o = verify(
            &sb,
            "kairos/cluster-ha.yaml",
            &["--timeout", "20s"],
            &[
                ("STANDIN_CAPI_BROKEN", variant),
                ("STANDIN_CAPI_STEP_SECONDS", "0.3"),
                ("STANDIN_KAIROS_VIP", "1"),
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{variant}: {}", both(&o));
        assert!(stderr(&o).contains(expect), "{variant}: {}", stderr(&o));
        assert!(stdout(&o).contains("BROKEN"), "{variant}: {}", stdout(&o));
        assert!(!has(&sb, "Cluster", "demo"), "{variant}: cleaned up");
    }
}

/// Objects the manifest names that existed before (credentials a sample asks users to create
/// first) are kept; what verify created is deleted, the Cluster first.
#[test]
fn the_clean_up_deletes_only_what_verify_created() {
    let sb = lab();
    installed(&sb);
    let shared = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: vsphere-credentials-secret\n  namespace: default\nstringData:\n  password: keep-me\n";
    let first = sb.work().join("credentials.yaml");
    fs::write(&first, shared).unwrap();
    let o = kubectl(
        &sb,
        &["apply", "--server-side", "-f", first.to_str().unwrap()],
        &[],
    );
    assert!(o.status.success(), "{}", both(&o));
    let manifest = sb.work().join("cluster.yaml");
    fs::write(
        &manifest,
        format!(
            "{}---\n{shared}",
            fs::read_to_string(fixture("kairos/cluster-single.yaml")).unwrap()
        ),
    )
    .unwrap();
    let o = sb.k0slab(
        &[
            "kairos",
            "verify",
            "--cluster-manifest",
            manifest.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", both(&o));
    assert!(has(&sb, "Secret", "vsphere-credentials-secret"), "kept");
    for (kind, name) in [
        ("Cluster", "solo"),
        ("KairosControlPlane", "solo-control-plane"),
        ("KairosConfigTemplate", "solo-workers"),
        ("Secret", "solo-worker-token"),
    ] {
        assert!(!has(&sb, kind, name), "{kind} {name} deleted");
    }
    assert_eq!(kubectl_calls(&sb, &["delete"]), 1);
}

/// The API server refuses what the Kairos CRDs do not declare or require: a manifest in an
/// older shape stops at apply, naming the field.
#[test]
fn a_manifest_the_crds_refuse_stops_at_apply_naming_the_field() {
    let sb = lab();
    installed(&sb);
    let good = fs::read_to_string(fixture("kairos/cluster-single.yaml")).unwrap();
    for (from, to, says) in [
        (
            "  kairosConfigTemplate:\n    name: solo-control-plane\n",
            "  kairosConfigTemplate:\n    name: solo-control-plane\n  kairosConfigSpec:\n    distribution: k0s\n",
            ".spec.kairosConfigSpec: field not declared in schema",
        ),
        ("  version: v1.34.1+k0s.0\n", "", "spec.version: Required value"),
    ] {
        assert!(good.contains(from));
        let manifest = sb.work().join("refused.yaml");
        fs::write(&manifest, good.replacen(from, to, 1)).unwrap();
        let o = sb.k0slab(
            &["kairos", "verify", "--cluster-manifest", manifest.to_str().unwrap()],
            &[],
        );
        assert_eq!(o.status.code(), Some(1), "{}", both(&o));
        assert!(stderr(&o).contains(says), "{says}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("applying the workload cluster manifest failed"),
            "{}",
            stderr(&o)
        );
        assert!(
            !has(&sb, "Cluster", "solo") && !has(&sb, "Secret", "solo-worker-token"),
            "what kubectl did apply was taken back"
        );
    }
}
