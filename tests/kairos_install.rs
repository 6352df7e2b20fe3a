//! `k0slab kairos install | uninstall` against the stand-ins: a stand-in kubectl that keeps
//! objects on disk, makes Deployments Available (tests/standins/lib/capi.rb), issues
//! cert-manager Certificates and injects their CA into webhook configurations
//! (tests/standins/lib/cert_manager.rb) and builds kustomize directories with the real kubectl;
//! and a stand-in curl that serves release manifests from tests/standins/releases.

mod common;

use std::fs;
use std::process::Output;

use common::kairos::{fixture, get, has, installed, kubectl, lab, objects};
use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

fn record_keys(sb: &Sandbox) -> Vec<String> {
    let record: Value =
        serde_json::from_str(&fs::read_to_string(sb.lab().join("kairos/installed.json")).unwrap())
            .unwrap();
    record["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"]["key"].as_str().unwrap().to_string())
        .collect()
}

/// `kairos install --infrastructure none --provider-manifest <the working copy fixture> ARGS…`.
fn install_working_copy(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = fixture("kairos-working-copy/config/default");
    let mut all = vec![
        "kairos",
        "install",
        "--infrastructure",
        "none",
        "--provider-manifest",
        dir.as_str(),
    ];
    all.extend_from_slice(args);
    sb.k0slab(&all, env)
}

/// What of a provider is still on the cluster: objects of the kinds that outlive an uninstall
/// when it forgets them.
fn provider_leftovers(sb: &Sandbox) -> Vec<String> {
    objects(sb)
        .iter()
        .filter(|o| {
            [
                "Namespace",
                "CustomResourceDefinition",
                "ValidatingWebhookConfiguration",
                "MutatingWebhookConfiguration",
                "Deployment",
                "ClusterRole",
                "ClusterRoleBinding",
            ]
            .iter()
            .any(|k| o["kind"] == *k)
                || !o["metadata"]["labels"]["cluster.x-k8s.io/provider"].is_null()
        })
        .map(|o| format!("{} {}", o["kind"], o["metadata"]["name"]))
        .collect()
}

/// The URLs curl fetched, but k0s' (the lab's `up` fills the k0s cache with curl too).
fn manifest_urls(sb: &Sandbox) -> Vec<String> {
    sb.calls_of("curl", "-fsSL")
        .into_iter()
        .map(|a| a.last().unwrap().clone())
        .filter(|u| {
            !u.starts_with("https://docs.k0sproject.io/") && !u.contains("/k0sproject/k0s/")
        })
        .collect()
}

#[test]
fn install_applies_every_component_in_order_and_is_idempotent() {
    let sb = lab();
    let o = sb.k0slab(
        &["kairos", "install", "--infrastructure", "docker"],
        &[("STANDIN_DEPLOY_SECONDS", "0.3")],
    );
    assert!(o.status.success(), "{}", both(&o));
    let urls = manifest_urls(&sb);
    assert_eq!(
        urls,
        [
            "https://github.com/cert-manager/cert-manager/releases/download/v1.16.2/cert-manager.yaml",
            "https://github.com/kubernetes-sigs/cluster-api/releases/download/v1.11.2/core-components.yaml",
            "https://github.com/kubernetes-sigs/cluster-api/releases/download/v1.11.2/infrastructure-components-development.yaml",
            // The successor's release workflow attaches kairos-capi-provider.yaml to each tag.
            "https://github.com/kairos-io/cluster-api-provider-kairos/releases/download/v0.1.0-alpha.2/kairos-capi-provider.yaml",
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
        stderr(&o).contains("Kairos providers v0.1.0-alpha.2 Available"),
        "{}",
        stderr(&o)
    );
    // Each provider's webhooks got their CA before the install went on.
    for hook in [
        "capi-validating-webhook-configuration",
        "kairos-capi-validating-webhook-configuration",
    ] {
        let v = get(&sb, &["validatingwebhookconfigurations", hook], &[]);
        assert!(
            v["webhooks"][0]["clientConfig"]["caBundle"].is_string(),
            "{v}"
        );
    }
    assert_eq!(
        record_keys(&sb),
        [
            "cert-manager",
            "cluster-api",
            "infrastructure-docker",
            "kairos"
        ]
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
        err.contains("kairos install stopped at Kairos providers v0.1.0-alpha.2"),
        "{err}"
    );
    assert!(
        err.contains("kairos-capi-controller-manager (Available=False (MinimumReplicasUnavailable"),
        "{err}"
    );
    assert_eq!(
        record_keys(&sb),
        ["cert-manager", "cluster-api", "kairos"],
        "what was applied is recorded for uninstall, the failed step too"
    );
}

#[test]
fn the_working_copy_is_built_with_kustomize_and_gets_the_dev_image() {
    let sb = lab();
    let o = install_working_copy(
        &sb,
        &["--provider-image", "ghcr.io/me/kairos-capi:dev"],
        // The dev image exists only in the host's Docker: it is loaded into the nodes first.
        // The webhook certificate takes a while: install waits for it and for the CA.
        &[
            ("STANDIN_DOCKER_IMAGES", "ghcr.io/me/kairos-capi:dev=4096"),
            ("STANDIN_CERT_SECONDS", "1.5"),
        ],
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
    assert_eq!(manifest_urls(&sb).len(), 2, "cert-manager and CAPI only");
    let applied = fs::read_to_string(sb.lab().join("kairos/03-kairos.yaml")).unwrap();
    assert!(
        applied.contains("image: ghcr.io/me/kairos-capi:dev"),
        "{applied}"
    );
    // The webhook Job's shell variable is the shell's: applied as is, as `make deploy` does.
    assert!(applied.contains("${CA_BUNDLE}"), "{applied}");
    assert!(has(&sb, "Job", "kairos-capi-webhook-ca-injection"));
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
    // Install returned only once the Certificate was issued (1.5 s after it was applied) and
    // the CA was in every webhook of both configurations.
    let cert = get(
        &sb,
        &[
            "certificates.cert-manager.io",
            "kairos-capi-webhook-server-cert",
            "--namespace",
            "kairos-capi-system",
        ],
        &[],
    );
    assert_eq!(cert["status"]["conditions"][0]["status"], "True", "{cert}");
    for (kind, name) in [
        (
            "validatingwebhookconfigurations",
            "validating-webhook-configuration",
        ),
        (
            "mutatingwebhookconfigurations",
            "mutating-webhook-configuration",
        ),
    ] {
        let hook = get(&sb, &[kind, name], &[]);
        let webhooks = hook["webhooks"].as_array().unwrap();
        assert_eq!(webhooks.len(), 2);
        assert!(
            webhooks
                .iter()
                .all(|w| w["clientConfig"]["caBundle"].is_string()),
            "{hook}"
        );
    }
    let calls = sb.calls();
    let applied_at = calls
        .iter()
        .find(|c| c.args.iter().any(|a| a.ends_with("03-kairos.yaml")))
        .unwrap()
        .time;
    let last_cert_check = calls
        .iter()
        .rfind(|c| {
            c.args
                .iter()
                .any(|a| a == "kairos-capi-webhook-server-cert")
        })
        .unwrap()
        .time;
    assert!(
        last_cert_check - applied_at >= 1.4,
        "install polled the Certificate until it was issued ({:.1} s)",
        last_cert_check - applied_at
    );
}

#[test]
fn a_certificate_that_is_never_issued_stops_the_install_naming_it() {
    let sb = lab();
    let o = install_working_copy(
        &sb,
        &["--timeout", "1s"],
        &[(
            "STANDIN_CERT_NEVER_READY",
            "kairos-capi-webhook-server-cert",
        )],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kairos install stopped at Kairos providers working copy: webhooks not ready after 1.0s: Certificate kairos-capi-system/kairos-capi-webhook-server-cert not Ready: Ready=False (DoesNotExist: Issuing certificate as Secret does not exist)"),
        "{err}"
    );
    assert_eq!(
        record_keys(&sb),
        ["cert-manager", "cluster-api", "kairos"],
        "what was applied is recorded"
    );
}

#[test]
fn webhooks_without_their_ca_stop_the_install_naming_each_configuration() {
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
        &[("STANDIN_CAINJECTOR_OFF", "*")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kairos install stopped at Cluster API core v1.11.2: webhooks not ready after 1.0s: caBundle not injected into ValidatingWebhookConfiguration capi-validating-webhook-configuration (webhooks validation.cluster.cluster.x-k8s.io; from Certificate capi-system/capi-serving-cert)"),
        "{err}"
    );
    // The working copy's two configurations are both named (CAPI's get their CA this time).
    let o = install_working_copy(
        &sb,
        &["--timeout", "1s"],
        &[(
            "STANDIN_CAINJECTOR_OFF",
            "mutating-webhook-configuration,validating-webhook-configuration",
        )],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    for hook in [
        "MutatingWebhookConfiguration mutating-webhook-configuration (webhooks mkairosconfig.kb.io, mkairoscontrolplane.kb.io",
        "ValidatingWebhookConfiguration validating-webhook-configuration (webhooks vkairosconfig.kb.io, vkairoscontrolplane.kb.io",
    ] {
        assert!(err.contains(hook), "{hook}: {err}");
    }
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
    let o = kubectl(&sb, &["apply", "-f", extra.to_str().unwrap()], &[]);
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
    assert!(
        objects(&sb)
            .iter()
            .all(|o| o["metadata"]["labels"]["cluster.x-k8s.io/provider"].is_null()),
        "nothing with a provider label is left: {:?}",
        provider_leftovers(&sb)
    );
    // And it installs again cleanly.
    let o = sb.k0slab(&["kairos", "install", "--infrastructure", "docker"], &[]);
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn uninstall_after_a_failed_reinstall_leaves_nothing_of_any_provider() {
    let sb = lab();
    installed(&sb);
    // A later install from the working copy without CAPD fails at its last component.
    let o = install_working_copy(
        &sb,
        &["--timeout", "1s"],
        &[(
            "STANDIN_DEPLOYMENT_NEVER_AVAILABLE",
            "kairos-capi-controller-manager",
        )],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert_eq!(
        record_keys(&sb),
        [
            "cert-manager",
            "cluster-api",
            "infrastructure-docker",
            "kairos"
        ],
        "the record only grows: CAPD from the first install is kept"
    );
    let kairos = sb.lab().join("kairos");
    assert!(kairos.join("03-kairos.yaml").is_file());
    assert!(
        !kairos.join("04-kairos.yaml").exists(),
        "the release manifest was replaced by the working copy's"
    );

    let o = sb.k0slab(&["kairos", "uninstall"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let out = stdout(&o);
    assert!(out.contains("removed CAPD (Docker) v1.11.2"), "{out}");
    // The release's objects the working copy does not have (its ClusterRole and webhook
    // configurations) are found by their provider label.
    assert!(
        out.contains("more object(s) labelled cluster.x-k8s.io/provider=kairos"),
        "{out}"
    );
    assert_eq!(provider_leftovers(&sb), Vec::<String>::new());
}

#[test]
fn uninstall_also_removes_manifests_an_older_record_forgot() {
    let sb = lab();
    installed(&sb);
    // What an older k0slab left after a failed re-install: a record of two components, while
    // the manifests of all four are still in lab/kairos/.
    let path = sb.lab().join("kairos/installed.json");
    let mut record: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    record["components"].as_array_mut().unwrap().truncate(2);
    fs::write(&path, record.to_string()).unwrap();

    let o = sb.k0slab(&["kairos", "uninstall"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("removed 04-kairos.yaml (from an earlier install)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(provider_leftovers(&sb), Vec::<String>::new());
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
