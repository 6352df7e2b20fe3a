//! Kairos workload clusters on KubeVirt inside the lab (issue 18): `kairos install
//! --infrastructure kubevirt` on a lab with nested workers, `kairos verify` of the provider's
//! single-node CAPK scenario, `uninstall`. Against the stand-ins of KubeVirt, CDI,
//! kairos-operator and CAPK (tests/standins/lib/kubevirt.rb and its neighbours), which model
//! the VMI and DataVolume phases, the kvm device a node offers only with /dev/kvm, and the
//! control-plane Service the provider makes and nobody in the lab gives an address.

mod common;

use std::fs;
use std::process::Output;

use common::kairos::{fixture, get, objects};
use common::standins::{both, stderr, Sandbox};
use serde_json::Value;

/// A 1+2 lab whose workers have nested virtualization, big enough for a workload VM.
const NESTED: [(&str, &str); 6] = [
    ("control_plane_count", "1"),
    ("worker_count", "2"),
    ("K0SLAB_NESTED", "workers"),
    ("memory_worker", "8192"),
    ("disk_size", "80"),
    ("K0S_VERSION", "v1.34.1+k0s.0"),
];

fn lab(env: &[(&str, &str)]) -> Sandbox {
    let sb = Sandbox::new();
    let o = sb.k0slab(&["-q", "up", "--wait", "10s"], env);
    assert!(o.status.success(), "{}", both(&o));
    sb
}

fn install(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["kairos", "install", "--infrastructure", "kubevirt"];
    all.extend_from_slice(args);
    sb.k0slab(&all, env)
}

fn verify(sb: &Sandbox, manifest: &str, args: &[&str]) -> Output {
    let path = fixture(manifest);
    let mut all = vec!["kairos", "verify", "--cluster-manifest", path.as_str()];
    all.extend_from_slice(args);
    sb.k0slab(&all, &[])
}

fn record_keys(sb: &Sandbox) -> Vec<String> {
    let text = fs::read_to_string(sb.lab().join("kairos/installed.json")).unwrap();
    let record: Value = serde_json::from_str(&text).unwrap();
    record["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["component"]["key"].as_str().unwrap().to_string())
        .collect()
}

/// The `devices.kubevirt.io/kvm` each Node can allocate, by name.
fn kvm_by_node(sb: &Sandbox) -> Vec<(String, String)> {
    get(sb, &["nodes"], &[])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["status"]["allocatable"]["devices.kubevirt.io/kvm"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

/// kubectl calls with `verb` (after `--kubeconfig FILE --request-timeout=…`).
fn kubectl_calls(sb: &Sandbox, verb: &str) -> Vec<Vec<String>> {
    sb.calls()
        .into_iter()
        .filter(|c| c.tool == "kubectl" && c.args.iter().any(|a| a == verb))
        .map(|c| c.args)
        .collect()
}

#[test]
fn a_nested_lab_runs_the_providers_single_node_capk_scenario_to_a_ready_node() {
    let sb = lab(&NESTED);
    let o = install(&sb, &[], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(
        record_keys(&sb),
        [
            "local-path",
            "cdi-operator",
            "cdi",
            "kubevirt-operator",
            "kubevirt",
            "cert-manager",
            "cluster-api",
            "infrastructure-kubevirt",
            "kairos",
            "kairos-operator",
            "kairos-operator-nginx",
            "workload-image-build",
            "workload-image"
        ]
    );
    // The lab had no StorageClass: local-path is now the default one.
    let classes = get(&sb, &["storageclasses"], &[]);
    let defaults: Vec<&str> = classes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
        })
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(defaults, ["local-path"]);
    // KubeVirt runs on real KVM, never emulated; only the nested workers offer it.
    let kv = get(
        &sb,
        &[
            "kubevirts.kubevirt.io",
            "kubevirt",
            "--namespace",
            "kubevirt",
        ],
        &[],
    );
    assert!(
        kv.pointer("/spec/configuration/developerConfiguration/useEmulation")
            .is_none(),
        "{kv}"
    );
    assert_eq!(kv["status"]["phase"], "Deployed", "{kv}");
    // (control-plane-1 runs a kubelet too in a 1+2 lab, without /dev/kvm: it offers none)
    let kvm = kvm_by_node(&sb);
    let offering: Vec<&str> = kvm
        .iter()
        .filter(|(_, count)| !count.is_empty() && count != "0")
        .map(|(node, _)| node.as_str())
        .collect();
    assert_eq!(offering, ["worker-1", "worker-2"], "{kvm:?}");
    // The installer ISO was built in the lab and imported by CDI from the operator's nginx.
    let artifact = get(
        &sb,
        &[
            "osartifacts.build.kairos.io",
            "kairos-kubevirt",
            "--namespace",
            "default",
        ],
        &[],
    );
    assert_eq!(artifact["status"]["phase"], "Ready", "{artifact}");
    let dv = get(
        &sb,
        &[
            "datavolumes.cdi.kubevirt.io",
            "kairos-kubevirt",
            "--namespace",
            "default",
        ],
        &[],
    );
    assert_eq!(dv["status"]["phase"], "Succeeded", "{dv}");
    assert!(
        dv["spec"]["source"]["http"]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://kairos-operator-nginx.default.svc"),
        "the image never passes through the Mac: {dv}"
    );

    let o = verify(&sb, "kairos/capk-single-k3s.yaml", &["-o", "json"]);
    assert!(o.status.success(), "{}", both(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    let ms = report["milestones"].as_array().unwrap();
    assert!(ms.iter().all(|m| m["reached"] == true), "{ms:?}");
    // The provider's Service got a nested worker's own address, by its status subresource.
    let patches = kubectl_calls(&sb, "patch");
    assert!(
        patches.iter().any(|p| {
            p.contains(&"kv-control-plane-lb".to_string())
                && p.contains(&"--subresource=status".to_string())
                && p.iter().any(|a| a.contains("\"ip\":\"192.168.64.20\""))
        }),
        "{patches:?}"
    );
    assert!(
        stderr(&o).contains("gets 192.168.64.20:6443, a nested worker's own address"),
        "{}",
        both(&o)
    );
    // verify deleted what it applied: no VM is left.
    let vmis = get(
        &sb,
        &[
            "virtualmachineinstances.kubevirt.io",
            "--namespace",
            "default",
        ],
        &[],
    );
    assert_eq!(vmis["items"].as_array().map(Vec::len), Some(0), "{vmis}");

    let o = sb.k0slab(&["kairos", "uninstall"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let left: Vec<String> = objects(&sb)
        .iter()
        .map(|o| format!("{} {}", o["kind"], o["metadata"]["name"]))
        .collect();
    assert!(left.is_empty(), "uninstall left {left:?}");
    let crds = get(&sb, &["crd"], &[]);
    assert_eq!(crds["items"].as_array().map(Vec::len), Some(0), "{crds}");
    assert!(!sb.lab().join("kairos").exists());
}

#[test]
fn without_nested_workers_install_stops_naming_why_and_applies_nothing() {
    let sb = lab(&[("control_plane_count", "1"), ("worker_count", "1")]);
    sb.clear_calls();
    let o = install(&sb, &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    for words in [
        "needs workers with nested virtualization",
        "K0SLAB_NESTED=none",
        "host-passthrough",
        "Nothing was installed",
        "K0SLAB_NESTED=workers",
    ] {
        assert!(err.contains(words), "{words:?} in {err}");
    }
    assert!(kubectl_calls(&sb, "apply").is_empty());
    assert!(objects(&sb).is_empty());
    assert!(!sb.lab().join("kairos").exists());
}

#[test]
fn a_lab_whose_guests_lost_dev_kvm_stops_at_kubevirt_without_turning_on_emulation() {
    let sb = lab(&NESTED);
    for vm in ["k0slab-worker-1", "k0slab-worker-2"] {
        let mut state = sb.vm(vm);
        state["kvm"] = Value::Bool(false);
        fs::write(
            sb.state().join(format!("vms/{vm}.json")),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
    }
    let o = install(&sb, &["--timeout", "3s"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("kairos install stopped at KubeVirt v1.8.2")
            && err.contains("no node can run a KubeVirt VM")
            && err
                .contains("no node offers devices.kubevirt.io/kvm yet (nodes: control-plane-1, worker-1, worker-2)"),
        "{err}"
    );
    let kv = get(
        &sb,
        &[
            "kubevirts.kubevirt.io",
            "kubevirt",
            "--namespace",
            "kubevirt",
        ],
        &[],
    );
    assert!(
        kv.pointer("/spec/configuration/developerConfiguration/useEmulation")
            .is_none(),
        "{kv}"
    );
    assert!(
        !record_keys(&sb).contains(&"cert-manager".to_string()),
        "nothing after KubeVirt is applied"
    );
}

#[test]
fn k0s_ha_on_capk_is_a_finding_for_the_provider() {
    let sb = lab(&NESTED);
    let o = install(&sb, &["--workload-image", "k0s"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let artifact = get(
        &sb,
        &[
            "osartifacts.build.kairos.io",
            "kairos-kubevirt-k0s",
            "--namespace",
            "default",
        ],
        &[],
    );
    assert_eq!(
        artifact["spec"]["image"]["buildOptions"]["kubernetesDistro"], "k0s",
        "{artifact}"
    );
    assert_eq!(
        artifact["spec"]["image"]["buildOptions"]["kubernetesVersion"], "v1.34.1+k0s.0",
        "the lab's own k0s: {artifact}"
    );
    let o = verify(&sb, "kairos/capk-ha-k0s.yaml", &["--timeout", "2m"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("without --enable-worker")
            && err.contains("k0s_kairos_cloud_config_capk.yaml.tmpl 71-95"),
        "{err}"
    );
}

#[test]
fn bad_kubevirt_flags_are_refused_before_anything_runs() {
    let sb = lab(&NESTED);
    sb.clear_calls();
    for (args, words) in [
        (
            &["--workload-image", "k3"][..],
            "k3s, k0s, none, or the http(s) URL",
        ),
        (
            &["--kubevirt-version", "latest"][..],
            "flag --kubevirt-version",
        ),
        (&["--cdi-version", "1.63"][..], "flag --cdi-version"),
    ] {
        let o = install(&sb, args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", both(&o));
        assert!(stderr(&o).contains(words), "{args:?}: {}", both(&o));
    }
    assert!(sb.calls().iter().all(|c| c.tool != "kubectl"));
}

#[test]
fn a_vm_template_arm64_refuses_is_named_before_anything_is_applied() {
    let sb = lab(&NESTED);
    sb.clear_calls();
    let o = verify(&sb, "kairos/capk-arm64-refused.yaml", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    for words in [
        "KubeVirt refuses on arm64",
        "KubevirtMachineTemplate kv-mt",
        "UEFI secure boot is currently not supported on aarch64 Arch",
        "disk installerdisk bus sata",
        "nothing was applied",
    ] {
        assert!(err.contains(words), "{words:?} in {err}");
    }
    assert!(kubectl_calls(&sb, "apply").is_empty());
}

#[test]
fn a_vm_waiting_for_its_image_is_named_with_its_phase_when_verify_times_out() {
    let sb = lab(&NESTED);
    // No image: the VM's installer DataVolume kairos-kubevirt never exists.
    let o = install(&sb, &["--workload-image", "none"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(!record_keys(&sb)
        .iter()
        .any(|k| k.starts_with("workload-image")));
    let o = verify(&sb, "kairos/capk-single-k3s.yaml", &["--timeout", "6s"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("KubeVirt: "))
        .unwrap_or_else(|| panic!("no KubeVirt line in {err}"));
    assert!(
        // CAPK names a VM's dataVolumeTemplates `<machine>-<name>` (cluster-api-provider-kubevirt
        // pkg/kubevirt/utils.go prefixDataVolumeTemplates).
        line.contains("VMI kv-cp-0: Pending")
            && line.contains("DataVolume kv-cp-0-kv-rootdisk: Succeeded"),
        "{line}"
    );
}

#[test]
fn a_failed_image_build_stops_install_saying_where_to_look() {
    let sb = lab(&NESTED);
    let o = install(&sb, &[], &[("STANDIN_OSARTIFACT_FAIL", "kairos-kubevirt")]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("osartifacts.build.kairos.io kairos-kubevirt is Error: it gives no reason; its pods' logs do: kubectl get pods --namespace default"),
        "{err}"
    );
    assert!(
        !record_keys(&sb).contains(&"workload-image".to_string()),
        "no DataVolume for a failed build"
    );
}
