//! `k0slab kairos install | uninstall` against the stand-ins: a stand-in kubectl that keeps
//! objects on disk and makes Deployments Available (tests/standins/lib/capi.rb), and a stand-in
//! curl that serves release manifests from tests/standins/releases.

mod common;

use std::fs;
use std::path::PathBuf;

use common::standins::{both, standins_bin, stderr, stdout, Sandbox};
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
fn install_applies_every_component_in_order_and_is_idempotent() {
    let sb = lab();
    let o = sb.k0slab(
        &["kairos", "install", "--infrastructure", "docker"],
        &[("STANDIN_DEPLOY_SECONDS", "0.3")],
    );
    assert!(o.status.success(), "{}", both(&o));
    let urls: Vec<String> = sb
        .calls_of("curl", "-fsSL")
        .into_iter()
        .map(|a| a.last().unwrap().clone())
        .collect();
    assert_eq!(
        urls,
        [
            "https://github.com/cert-manager/cert-manager/releases/download/v1.16.2/cert-manager.yaml",
            "https://github.com/kubernetes-sigs/cluster-api/releases/download/v1.11.2/core-components.yaml",
            "https://github.com/kubernetes-sigs/cluster-api/releases/download/v1.11.2/infrastructure-components-development.yaml",
            "https://github.com/kairos-io/kairos-capi/releases/download/v0.1.0/kairos-capi-components.yaml",
        ]
    );
    for crd in [
        "kairosconfigs.bootstrap.cluster.x-k8s.io",
        "kairosconfigtemplates.bootstrap.cluster.x-k8s.io",
        "kairoscontrolplanes.controlplane.cluster.x-k8s.io",
        "kairoscontrolplanetemplates.controlplane.cluster.x-k8s.io",
    ] {
        assert!(has(&sb, "CustomResourceDefinition", crd), "{crd}");
    }
    assert!(has(&sb, "Deployment", "kairos-capi-controller-manager"));
    // clusterctl-style variables were filled in before applying.
    let core = fs::read_to_string(sb.lab().join("kairos/02-cluster-api.yaml")).unwrap();
    assert!(
        core.contains("--diagnostics-address=:8443") && !core.contains("${"),
        "{core}"
    );
    assert!(
        stderr(&o).contains("Kairos providers v0.1.0 Available"),
        "{}",
        stderr(&o)
    );

    let count = objects(&sb).len();
    let o = sb.k0slab(&["kairos", "install", "--infrastructure", "docker"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(
        objects(&sb).len(),
        count,
        "a second install changes nothing"
    );
}

#[test]
fn a_provider_that_never_becomes_available_stops_the_install() {
    let sb = lab();
    let o = sb.k0slab(
        &[
            "kairos",
            "install",
            "--infrastructure",
            "none",
            "--timeout",
            "1s",
        ],
        &[(
            "STANDIN_DEPLOYMENT_NEVER_AVAILABLE",
            "kairos-capi-controller-manager",
        )],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kairos install stopped at Kairos providers v0.1.0"),
        "{err}"
    );
    assert!(
        err.contains("kairos-capi-controller-manager (Available=False (MinimumReplicasUnavailable"),
        "{err}"
    );
    let record: Value =
        serde_json::from_str(&fs::read_to_string(sb.lab().join("kairos/installed.json")).unwrap())
            .unwrap();
    let keys: Vec<&str> = record["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["cert-manager", "cluster-api"],
        "what was applied is recorded for uninstall"
    );
}

#[test]
fn the_working_copy_is_built_with_kustomize_and_gets_the_dev_image() {
    let sb = lab();
    let o = sb.k0slab(
        &[
            "kairos",
            "install",
            "--infrastructure",
            "none",
            "--provider-manifest",
            &fixture("kairos-working-copy/config/default"),
            "--provider-image",
            "ghcr.io/me/kairos-capi:dev",
        ],
        // The dev image exists only in the host's Docker: it is loaded into the nodes first.
        &[("STANDIN_DOCKER_IMAGES", "ghcr.io/me/kairos-capi:dev=4096")],
    );
    assert!(o.status.success(), "{}", both(&o));
    for machine in ["control-plane-1", "worker-1"] {
        let node: Value = serde_json::from_str(
            &fs::read_to_string(sb.state().join(format!("containerd/k0slab-{machine}.json")))
                .unwrap(),
        )
        .unwrap();
        assert!(
            node["ghcr.io/me/kairos-capi:dev"]["labels"]["k0slab.image-id"].is_string(),
            "{machine}: {node}"
        );
    }
    assert_eq!(sb.calls_of("kubectl", "kustomize").len(), 1);
    assert_eq!(
        sb.calls_of("curl", "-fsSL").len(),
        2,
        "cert-manager and CAPI only"
    );
    let applied = fs::read_to_string(sb.lab().join("kairos/03-kairos.yaml")).unwrap();
    assert!(
        applied.contains("image: ghcr.io/me/kairos-capi:dev"),
        "{applied}"
    );
    let deployment = objects(&sb)
        .into_iter()
        .find(|o| o["metadata"]["name"] == "kairos-capi-controller-manager")
        .unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/me/kairos-capi:dev"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent",
        "the loaded image is used, not pulled"
    );
    assert!(
        stderr(&o).contains("Kairos providers working copy Available"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn uninstall_removes_what_install_added_and_stale_webhooks() {
    let sb = lab();
    installed(&sb);
    // A webhook configuration left behind by an earlier provider install, and somebody else's.
    let extra = sb.work().join("webhooks.yaml");
    fs::write(
        &extra,
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: old-kairos-webhook}\nwebhooks:\n- name: old.kb.io\n  clientConfig: {service: {name: x, namespace: kairos-capi-system}}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {name: unrelated}\nwebhooks:\n- name: u.example\n  clientConfig: {service: {name: y, namespace: other-system}}\n",
    )
    .unwrap();
    let kubeconfig = sb.lab().join("kubeconfig").display().to_string();
    let kubectl = standins_bin().join("kubectl").display().to_string();
    let o = sb.command(
        &kubectl,
        &[
            "--kubeconfig",
            &kubeconfig,
            "apply",
            "-f",
            extra.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", both(&o));

    let o = sb.k0slab(&["kairos", "uninstall"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("removed stale webhook configuration old-kairos-webhook"),
        "{}",
        stdout(&o)
    );
    for (kind, name) in [
        ("Deployment", "kairos-capi-controller-manager"),
        (
            "CustomResourceDefinition",
            "kairosconfigs.bootstrap.cluster.x-k8s.io",
        ),
        ("Namespace", "cert-manager"),
        ("ValidatingWebhookConfiguration", "old-kairos-webhook"),
        (
            "ValidatingWebhookConfiguration",
            "capi-validating-webhook-configuration",
        ),
    ] {
        assert!(!has(&sb, kind, name), "{kind} {name} removed");
    }
    assert!(
        has(&sb, "MutatingWebhookConfiguration", "unrelated"),
        "somebody else's webhook is kept"
    );
    assert!(!sb.lab().join("kairos").exists());
    // And it installs again cleanly.
    let o = sb.k0slab(&["kairos", "install", "--infrastructure", "docker"], &[]);
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn kairos_needs_a_running_lab() {
    let sb = Sandbox::new();
    let o = sb.k0slab(&["kairos", "install", "--infrastructure", "docker"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("there is no lab in lab"),
        "{}",
        stderr(&o)
    );
    let o = sb.k0slab(&["kairos", "install"], &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "--infrastructure is required: {}",
        both(&o)
    );
}

/// Every flag is checked before anything is fetched or applied (exit 2), even without a lab.
#[test]
fn bad_install_and_verify_flags_are_bad_input_before_anything_happens() {
    let sb = Sandbox::new();
    for (args, named) in [
        (
            vec!["--provider-image", "bad image"],
            "flag --provider-image has the value \"bad image\"",
        ),
        (vec!["--capi-version", "latest"], "flag --capi-version"),
        (
            vec!["--provider-manifest", "../no-such-kairos-capi"],
            "flag --provider-manifest",
        ),
    ] {
        let mut all = vec!["kairos", "install", "--infrastructure", "docker"];
        all.extend(args.iter().copied());
        let o = sb.k0slab(&all, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", both(&o));
        assert!(stderr(&o).contains(named), "{args:?}: {}", stderr(&o));
    }
    assert!(sb.calls().is_empty(), "nothing was run: {:?}", sb.calls());
    let o = sb.k0slab(
        &["kairos", "verify", "--cluster-manifest", "no-such.yaml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(
        stderr(&o).contains("flag --cluster-manifest"),
        "{}",
        both(&o)
    );
}
