//! Kairos workload clusters on KubeVirt (CAPK) inside the lab, as pure functions: the
//! workload VMs' installer image, the KVM devices the nodes offer, the control-plane
//! LoadBalancer Service's address, and what VMs and volumes are doing.
//!
//! The environment is the Kairos provider's own (kairos-io/cluster-api-provider-kairos
//! c300236, `internal/kubevirtenv/` and `test/e2e/`), on the lab's k0s cluster instead of kind.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The device KubeVirt's virt-handler offers on a node with `/dev/kvm` (kubevirt v1.8.2
/// `pkg/virt-handler/device-manager/generic_device.go`); virt-launcher pods request one.
pub const KVM_RESOURCE: &str = "devices.kubevirt.io/kvm";

/// The installer ISO's base for k3s: the provider's e2e pin for arm64
/// (`internal/kubevirtenv/kairos_image_install.go` 61-68). Tart runs arm64 guests only.
pub const HADRON_K3S: &str =
    "quay.io/kairos/hadron:v0.2.0-standard-arm64-generic-v4.1.0-k3s-v1.35.4-k3s1";
/// Kairos publishes no arm64 k0s image: kairos-operator builds one from this base with
/// kairos-init (`buildOptions`, kairos-operator v0.1.0-beta4 `api/v1alpha2/osartifact_types.go`
/// 101-124: `baseImage`, `version`, `model`, `kubernetesDistro`, `kubernetesVersion`).
pub const HADRON_BASE: &str = "ghcr.io/kairos-io/hadron:v0.2.0";
pub const KAIROS_RELEASE: &str = "v4.1.0";
/// `artifacts.diskSize` in MiB, and the DataVolume that holds the ISO: that plus 1 GiB
/// (`kairos_image_install.go` 32-38, 191).
pub const ISO_DISK_MIB: u32 = 16000;
pub const ISO_VOLUME_MIB: u32 = ISO_DISK_MIB + 1024;
/// Where the images are built and kept: the namespace the provider's e2e uses.
pub const IMAGE_NAMESPACE: &str = "default";
/// The operator's nginx Service, which its exporters upload to (kairos-operator
/// `config/nginx/service.yaml`: port 80, `dav_methods PUT` in `configmap.yaml`).
pub const NGINX_SERVICE: &str = "kairos-operator-nginx";

/// The image the workload VMs boot (`kairos install --workload-image`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadImage {
    /// Built in the lab from the provider's hadron k3s image (its tested path).
    K3s,
    /// Built in the lab with kairos-init adding k0s.
    K0s,
    /// An installer ISO at this http(s) URL, imported by CDI inside the lab.
    Url(String),
    /// None: the user brings a DataVolume.
    None,
}

impl FromStr for WorkloadImage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "k3s" => Ok(WorkloadImage::K3s),
            "k0s" => Ok(WorkloadImage::K0s),
            "none" => Ok(WorkloadImage::None),
            u if (u.starts_with("https://") || u.starts_with("http://"))
                && u.len() > 8
                && !u
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"') =>
            {
                Ok(WorkloadImage::Url(u.to_string()))
            }
            _ => Err("k3s, k0s, none, or the http(s) URL of a Kairos installer ISO".into()),
        }
    }
}

impl fmt::Display for WorkloadImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadImage::K3s => f.write_str("k3s"),
            WorkloadImage::K0s => f.write_str("k0s"),
            WorkloadImage::Url(u) => f.write_str(u),
            WorkloadImage::None => f.write_str("none"),
        }
    }
}

impl WorkloadImage {
    /// The DataVolume the cluster manifests name: `kairos-kubevirt` for k3s and a URL, as the
    /// provider's e2e manifest does (`test/e2e/workload_cluster.go` 171-173).
    pub fn data_volume(&self) -> Option<&'static str> {
        match self {
            WorkloadImage::K3s | WorkloadImage::Url(_) => Some("kairos-kubevirt"),
            WorkloadImage::K0s => Some("kairos-kubevirt-k0s"),
            WorkloadImage::None => None,
        }
    }

    /// The OSArtifact that builds it, when the lab builds it.
    pub fn artifact(&self) -> Option<&'static str> {
        match self {
            WorkloadImage::K3s | WorkloadImage::K0s => self.data_volume(),
            WorkloadImage::Url(_) | WorkloadImage::None => None,
        }
    }

    /// Where CDI imports the ISO from: the operator's nginx, by its cluster DNS name (the
    /// importer pod runs in the cluster), so the image never passes through the Mac.
    pub fn url(&self) -> Option<String> {
        match self {
            WorkloadImage::Url(u) => Some(u.clone()),
            _ => self.artifact().map(|a| {
                format!("http://{NGINX_SERVICE}.{IMAGE_NAMESPACE}.svc.cluster.local/{a}.iso")
            }),
        }
    }
}

/// The build: the installer's cloud-config Secret and the OSArtifact (`iso: true`) with an
/// exporter Job that PUTs the ISO to nginx, as `kairos_image_install.go` 284-411 does.
/// `k0s_version`: the k0s to build in (k0s images only).
pub fn build_manifest(image: &WorkloadImage, k0s_version: &str) -> Option<String> {
    let name = image.artifact()?;
    let source = match image {
        WorkloadImage::K0s => format!(
            "    buildOptions:\n      version: {KAIROS_RELEASE}\n      baseImage: {HADRON_BASE}\n      model: generic\n      kubernetesDistro: k0s\n      kubernetesVersion: \"{k0s_version}\"\n"
        ),
        _ => format!("    ref: {HADRON_K3S}\n"),
    };
    Some(format!(
        r#"# The workload VMs' installer ISO, built in the lab by kairos-operator (k0slab).
apiVersion: v1
kind: Secret
metadata:
  name: {name}-cloud-config
  namespace: {IMAGE_NAMESPACE}
type: Opaque
stringData:
  # The live installer installs to the VM's blank disk and reboots into it.
  userdata: |
    #cloud-config
    install:
      auto: true
      device: "/dev/vda"
      reboot: true
---
apiVersion: build.kairos.io/v1alpha2
kind: OSArtifact
metadata:
  name: {name}
  namespace: {IMAGE_NAMESPACE}
spec:
  image:
{source}  artifacts:
    arch: arm64
    iso: true
    diskSize: "{ISO_DISK_MIB}"
    cloudConfigRef:
      name: {name}-cloud-config
      key: userdata
  exporters:
  - template:
      spec:
        restartPolicy: Never
        containers:
        - name: upload-to-nginx
          image: curlimages/curl:8.11.1
          command: ["sh", "-ec"]
          args:
          - |
            for f in /artifacts/*.iso; do
              curl -fsS -T "$f" "http://{NGINX_SERVICE}/{name}.iso"
            done
          volumeMounts:
          - name: artifacts
            mountPath: /artifacts
            readOnly: true
"#
    ))
}

/// The DataVolume CDI imports the ISO into. `bind.immediate.requested`: local-path binds on
/// first consumer, and CDI would wait for one (as `virtctl image-upload --force-bind` in the
/// provider's e2e avoids).
pub fn volume_manifest(image: &WorkloadImage) -> Option<String> {
    let name = image.data_volume()?;
    let url = image.url()?;
    Some(format!(
        r#"# The workload VMs' installer ISO as a volume: CDI imports it inside the lab (k0slab).
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: {name}
  namespace: {IMAGE_NAMESPACE}
  annotations:
    cdi.kubevirt.io/storage.bind.immediate.requested: "true"
spec:
  source:
    http:
      url: "{url}"
  storage:
    accessModes: ["ReadWriteOnce"]
    resources:
      requests:
        storage: {ISO_VOLUME_MIB}Mi
"#
    ))
}

/// A Kubernetes quantity as an integer count (`1k` = 1000), for device counts.
fn count(q: &str) -> u64 {
    let (digits, scale) = match q.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&q[..i], &q[i..]),
        None => (q, ""),
    };
    let n: u64 = digits.parse().unwrap_or(0);
    n * match scale {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "Ki" => 1_024,
        _ => 0,
    }
}

/// Nodes offering KVM to virt-launcher pods: `(name, allocatable count)`, count > 0 only.
pub fn kvm_nodes(nodes: &Value) -> Vec<(String, u64)> {
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let name = n.pointer("/metadata/name")?.as_str()?.to_string();
            let have = n
                .pointer("/status/allocatable")
                .and_then(|a| a.get(KVM_RESOURCE))
                .and_then(Value::as_str)
                .map_or(0, count);
            (have > 0).then_some((name, have))
        })
        .collect()
}

/// The KubeVirt CR turned on software emulation (`spec.configuration.developerConfiguration
/// .useEmulation`, which the provider's environment sets where `/dev/kvm` is missing:
/// `internal/kubevirtenv/kubevirt.go` 77-85). k0slab never sets it; on arm64 it cannot work.
pub fn uses_emulation(kubevirt: &Value) -> bool {
    kubevirt
        .pointer("/spec/configuration/developerConfiguration/useEmulation")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The KairosControlPlane controller's LoadBalancer Service of a workload cluster
/// (`internal/controllers/controlplane/kairoscontrolplane_controller.go` 1324-1434).
pub fn lb_service(cluster: &str) -> String {
    format!("{cluster}-control-plane-lb")
}

/// The ingress address a LoadBalancer Service has, if any.
pub fn ingress_ip(service: &Value) -> Option<&str> {
    service
        .pointer("/status/loadBalancer/ingress/0/ip")
        .and_then(Value::as_str)
}

/// The address to give a workload cluster's control-plane Service: a nested worker's own
/// address (its lease). kube-proxy on every node DNATs traffic for a LoadBalancer ingress IP
/// and the Service's port to its endpoints, so traffic to `<worker>:6443` reaches the
/// workload API wherever its VM runs. Never a controller's (its own API server listens on
/// 6443) and never one another workload cluster's Service uses already. `taken`: ingress
/// addresses of the lab's other LoadBalancer Services on the same port.
pub fn pick_ingress(workers: &[Ipv4Addr], taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    workers.iter().copied().find(|w| !taken.contains(w))
}

fn phase(v: &Value) -> &str {
    v.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("no phase yet")
}

fn name(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("?")
}

/// One DataVolume's phase, with CDI's progress (`status.progress`, e.g. `45.00%`) and the
/// reason of a condition that is not True (CDI writes `Bound`, `Ready`, `Running`).
pub fn data_volume_state(dv: &Value) -> String {
    let mut s = phase(dv).to_string();
    if let Some(p) = dv
        .pointer("/status/progress")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty() && *p != "N/A" && phase(dv) != "Succeeded")
    {
        s.push_str(&format!(" {p}"));
    }
    let why: Vec<String> = dv
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "False" && c["type"] == "Running")
        .filter_map(|c| {
            let m = c["message"].as_str().or(c["reason"].as_str())?;
            (!m.is_empty()).then(|| m.to_string())
        })
        .collect();
    if !why.is_empty() && phase(dv) != "Succeeded" {
        s.push_str(&format!(" ({})", why.join("; ")));
    }
    s
}

/// What a VMI waits for: its phase and, before it runs, the first condition that is not
/// True (KubeVirt copies the virt-launcher pod's `PodScheduled=False` reason there).
fn vmi_state(vmi: &Value) -> String {
    let mut s = phase(vmi).to_string();
    if let Some(node) = vmi.pointer("/status/nodeName").and_then(Value::as_str) {
        s.push_str(&format!(" on {node}"));
    }
    if phase(vmi) != "Running" {
        if let Some(c) = vmi
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c["status"] == "False" && c["message"].is_string())
        {
            s.push_str(&format!(" ({})", c["message"].as_str().unwrap_or("")));
        }
    }
    s
}

/// One line of what the workload cluster's VMs and volumes are doing, for progress:
/// `VMI e2e-0: Scheduling (…); DataVolume e2e-rootdisk: Succeeded`. A VMI that does not run
/// yet also gets its VirtualMachine's `printableStatus` (e.g. `WaitingForVolumeBinding`,
/// `Provisioning`: kubevirt `staging/src/kubevirt.io/api/core/v1/types.go`), which says what
/// the VMI's phase does not.
pub fn phases(vmis: &[Value], vms: &[Value], data_volumes: &[Value]) -> String {
    vmis.iter()
        .map(|v| {
            let mut s = format!("VMI {}: {}", name(v), vmi_state(v));
            let printable = vms
                .iter()
                .find(|vm| name(vm) == name(v))
                .and_then(|vm| vm.pointer("/status/printableStatus"))
                .and_then(Value::as_str);
            if let Some(p) = printable.filter(|_| phase(v) != "Running") {
                s.push_str(&format!(" (VM {p})"));
            }
            s
        })
        .chain(
            data_volumes
                .iter()
                .map(|d| format!("DataVolume {}: {}", name(d), data_volume_state(d))),
        )
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a cluster manifest's workload machines are KubeVirt VMs (CAPK).
pub fn is_capk(docs: &[serde_yaml_ng::Value]) -> bool {
    docs.iter()
        .any(|d| d.get("kind").and_then(|k| k.as_str()) == Some("KubevirtCluster"))
}

/// What KubeVirt's arm64 admission refuses in the VM templates of a cluster manifest, by
/// template: every VM on an Apple Silicon lab is arm64 (kubevirt v1.8.2
/// `pkg/virt-api/webhooks/arm64.go`: 67-73 BIOS boot, 74-85 UEFI secure boot unset or true,
/// 89-97 a CPU model other than host-passthrough, 99-130 a disk bus other than virtio or
/// scsi). CAPK would only report the refusal on its KubevirtMachine, over and over.
pub fn arm64_refusals(docs: &[serde_yaml_ng::Value]) -> Vec<String> {
    use serde_yaml_ng::Value as Y;
    let at = |v: &Y, path: &[&str]| -> Option<Y> {
        let mut cur = v.clone();
        for p in path {
            cur = cur.get(*p)?.clone();
        }
        Some(cur)
    };
    let mut out = Vec::new();
    for d in docs
        .iter()
        .filter(|d| d.get("kind").and_then(Y::as_str) == Some("KubevirtMachineTemplate"))
    {
        let name = at(d, &["metadata", "name"])
            .and_then(|n| n.as_str().map(String::from))
            .unwrap_or_default();
        let Some(domain) = at(
            d,
            &[
                "spec",
                "template",
                "spec",
                "virtualMachineTemplate",
                "spec",
                "template",
                "spec",
                "domain",
            ],
        ) else {
            continue;
        };
        let mut why = Vec::new();
        let bootloader = at(&domain, &["firmware", "bootloader"]);
        if bootloader.as_ref().and_then(|b| b.get("bios")).is_some() {
            why.push(
                "BIOS boot (Arm64 does not support bios boot, please change to uefi boot)"
                    .to_string(),
            );
        }
        let secure = bootloader
            .as_ref()
            .and_then(|b| b.get("efi"))
            .map(|e| e.get("secureBoot").and_then(Y::as_bool));
        if matches!(secure, Some(None) | Some(Some(true))) {
            why.push("efi without secureBoot: false (UEFI secure boot is currently not supported on aarch64 Arch)".to_string());
        }
        if let Some(model) =
            at(&domain, &["cpu", "model"]).and_then(|m| m.as_str().map(String::from))
        {
            if model != "host-passthrough" {
                why.push(format!("cpu.model {model} (currently, host-passthrough is the only model supported on Arm64)"));
            }
        }
        let disks = at(&domain, &["devices", "disks"])
            .and_then(|d| d.as_sequence().cloned())
            .unwrap_or_default();
        for disk in &disks {
            for kind in ["disk", "cdrom", "lun"] {
                let bus = disk
                    .get(kind)
                    .and_then(|k| k.get("bus"))
                    .and_then(Y::as_str);
                if let Some(bus) = bus.filter(|b| !["virtio", "scsi"].contains(b)) {
                    why.push(format!(
                        "disk {} bus {bus} (Arm64 not support this disk bus type, please use virtio or scsi)",
                        disk.get("name").and_then(Y::as_str).unwrap_or("?")
                    ));
                }
            }
        }
        if !why.is_empty() {
            out.push(format!(
                "KubevirtMachineTemplate {name}: {}",
                why.join("; ")
            ));
        }
    }
    out
}

/// What CAPK's k0s template does to HA controllers: the finding added to a controller
/// without a kubelet on KubeVirt.
pub const CAPK_K0S_HA: &str = "the provider's CAPK k0s template gives HA controllers no \
--enable-worker (kairos-io/cluster-api-provider-kairos c300236 \
internal/bootstrap/templates/k0s_kairos_cloud_config_capk.yaml.tmpl 71-95: only --single), so \
a k0s control plane of 3 on KubeVirt can never produce a Node; use replicas: 1, or k3s";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workload_image_flag() {
        assert_eq!("k3s".parse(), Ok(WorkloadImage::K3s));
        assert_eq!("none".parse(), Ok(WorkloadImage::None));
        assert_eq!(
            "https://example.com/k.iso".parse(),
            Ok(WorkloadImage::Url("https://example.com/k.iso".into()))
        );
        for bad in [
            "",
            "k3",
            "ftp://x/y.iso",
            "https://",
            "https://a b",
            "https://a\"b",
        ] {
            assert!(bad.parse::<WorkloadImage>().is_err(), "{bad:?}");
        }
        assert_eq!(
            WorkloadImage::K0s.data_volume(),
            Some("kairos-kubevirt-k0s")
        );
        assert_eq!(
            WorkloadImage::K3s.url().unwrap(),
            "http://kairos-operator-nginx.default.svc.cluster.local/kairos-kubevirt.iso"
        );
        assert_eq!(
            WorkloadImage::Url("https://x/y.iso".into()).artifact(),
            None
        );
    }

    #[test]
    fn the_build_and_the_volume_are_valid_yaml_with_the_names_the_manifests_use() {
        let text = build_manifest(&WorkloadImage::K3s, "v1.34.1+k0s.0").unwrap();
        let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 2);
        let artifact = &docs[1];
        assert_eq!(artifact["spec"]["image"]["ref"].as_str(), Some(HADRON_K3S));
        assert_eq!(artifact["spec"]["artifacts"]["iso"].as_bool(), Some(true));
        assert_eq!(
            artifact["spec"]["artifacts"]["arch"].as_str(),
            Some("arm64")
        );
        let k0s = build_manifest(&WorkloadImage::K0s, "v1.34.1+k0s.0").unwrap();
        let k0s: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&k0s)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let options = &k0s[1]["spec"]["image"]["buildOptions"];
        assert_eq!(options["kubernetesDistro"].as_str(), Some("k0s"));
        assert_eq!(options["kubernetesVersion"].as_str(), Some("v1.34.1+k0s.0"));
        assert!(k0s[1]["spec"]["image"].get("ref").is_none());
        let dv: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&volume_manifest(&WorkloadImage::K3s).unwrap()).unwrap();
        assert_eq!(dv["metadata"]["name"].as_str(), Some("kairos-kubevirt"));
        assert_eq!(
            dv["spec"]["storage"]["resources"]["requests"]["storage"].as_str(),
            Some("17024Mi")
        );
        assert!(build_manifest(&WorkloadImage::Url("https://x/y.iso".into()), "").is_none());
        assert!(volume_manifest(&WorkloadImage::None).is_none());
    }

    #[test]
    fn kvm_is_counted_from_allocatable() {
        let nodes = json!({"items": [
            {"metadata": {"name": "worker-1"}, "status": {"allocatable": {KVM_RESOURCE: "1k"}}},
            {"metadata": {"name": "worker-2"}, "status": {"allocatable": {KVM_RESOURCE: "0"}}},
            {"metadata": {"name": "control-plane-1"}, "status": {"allocatable": {"cpu": "2"}}},
            {"metadata": {"name": "worker-3"}, "status": {"allocatable": {KVM_RESOURCE: "110"}}}
        ]});
        assert_eq!(
            kvm_nodes(&nodes),
            [
                ("worker-1".to_string(), 1000),
                ("worker-3".to_string(), 110)
            ]
        );
        assert!(kvm_nodes(&json!({"items": []})).is_empty());
    }

    #[test]
    fn the_ingress_is_a_free_worker_address() {
        let w: Vec<Ipv4Addr> = vec![
            "192.168.64.20".parse().unwrap(),
            "192.168.64.21".parse().unwrap(),
        ];
        assert_eq!(pick_ingress(&w, &[]), Some(w[0]));
        assert_eq!(pick_ingress(&w, &w[..1]), Some(w[1]));
        assert_eq!(pick_ingress(&w, &w), None);
        let svc = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.168.64.21"}]}}});
        assert_eq!(ingress_ip(&svc), Some("192.168.64.21"));
        assert_eq!(ingress_ip(&json!({"status": {"loadBalancer": {}}})), None);
    }

    #[test]
    fn arm64_refuses_what_the_providers_samples_ask_for() {
        let docs = |t: &str| -> Vec<serde_yaml_ng::Value> {
            serde_yaml_ng::Deserializer::from_str(t)
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .collect()
        };
        // The shape of the provider's config/samples/capk: a sata cdrom and secure boot.
        let sample = "kind: KubevirtMachineTemplate\nmetadata: {name: cp}\nspec:\n  template:\n    spec:\n      virtualMachineTemplate:\n        spec:\n          template:\n            spec:\n              domain:\n                cpu: {cores: 8, model: host-model}\n                devices:\n                  disks:\n                  - {name: installeriso, cdrom: {bus: sata}}\n                  - {name: rootdisk, disk: {bus: virtio}}\n                firmware: {bootloader: {efi: {secureBoot: true}}}\n";
        let found = arm64_refusals(&docs(sample));
        assert_eq!(found.len(), 1);
        for words in [
            "KubevirtMachineTemplate cp",
            "UEFI secure boot",
            "host-model",
            "disk installeriso bus sata",
        ] {
            assert!(found[0].contains(words), "{words}: {found:?}");
        }
        assert!(!found[0].contains("rootdisk"));
        let e2e = sample
            .replace("model: host-model", "model: host-passthrough")
            .replace("cdrom: {bus: sata}", "disk: {bus: virtio}")
            .replace("secureBoot: true", "secureBoot: false");
        assert!(
            arm64_refusals(&docs(&e2e)).is_empty(),
            "the e2e's own template is fine"
        );
        let no_flag = e2e.replace("{efi: {secureBoot: false}}", "{efi: {}}");
        assert_eq!(
            arm64_refusals(&docs(&no_flag)).len(),
            1,
            "secure boot is on by default"
        );
    }

    #[test]
    fn phases_name_what_waits() {
        let vmi = json!({"metadata": {"name": "e2e-cp-0"}, "status": {"phase": "Scheduling",
            "conditions": [{"type": "PodScheduled", "status": "False",
                "message": "0/3 nodes are available: 3 Insufficient devices.kubevirt.io/kvm."}]}});
        let dv = json!({"metadata": {"name": "kairos-kubevirt"},
            "status": {"phase": "ImportInProgress", "progress": "45.00%"}});
        let vm = json!({"metadata": {"name": "e2e-cp-0"}, "status": {"printableStatus": "ErrorUnschedulable"}});
        assert_eq!(
            phases(&[vmi], std::slice::from_ref(&vm), &[dv]),
            "VMI e2e-cp-0: Scheduling (0/3 nodes are available: 3 Insufficient devices.kubevirt.io/kvm.) (VM ErrorUnschedulable); DataVolume kairos-kubevirt: ImportInProgress 45.00%"
        );
        let running = json!({"metadata": {"name": "v"}, "status": {"phase": "Running", "nodeName": "worker-1"}});
        assert_eq!(phases(&[running], &[vm], &[]), "VMI v: Running on worker-1");
    }
}
