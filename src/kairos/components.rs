//! The components `kairos install` applies, in order, with pinned default versions.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::kubevirt::{WorkloadImage, IMAGE_NAMESPACE};

/// Pinned defaults (flags override them).
pub const CERT_MANAGER_VERSION: &str = "v1.16.2";
pub const CAPI_VERSION: &str = "v1.11.2";
/// The Kairos providers' release. The archived kairos-io/kairos-capi never published one; its
/// successor's release workflow attaches [`KAIROS_ASSET`] to each `v*` tag (checked 2026-11-23:
/// tags v0.1.0-alpha.1 and v0.1.0-alpha.2; see the README).
pub const KAIROS_VERSION: &str = "v0.1.0-alpha.2";
pub const KAIROS_REPOSITORY: &str = "kairos-io/cluster-api-provider-kairos";
pub const KAIROS_ASSET: &str = "kairos-capi-provider.yaml";
pub const CAPV_VERSION: &str = "v1.14.0";
pub const CAPK_VERSION: &str = "v0.1.10";

/// What CAPK's workload VMs need on the management cluster, as the Kairos provider's own
/// KubeVirt environment installs it (kairos-io/cluster-api-provider-kairos c300236
/// `internal/kubevirtenv/versions.go` 9-36): local-path v0.0.28, CDI (there: the latest
/// release, unpinned; here pinned to a multi-arch one), KubeVirt v1.8.2 and kairos-operator.
pub const LOCAL_PATH_VERSION: &str = "v0.0.28";
pub const CDI_VERSION: &str = "v1.66.0";
pub const KUBEVIRT_VERSION: &str = "v1.8.2";
pub const KAIROS_OPERATOR_VERSION: &str = "v0.1.0-beta4";

/// The Kairos controller and where it runs.
pub const KAIROS_NAMESPACE: &str = "kairos-capi-system";
pub const KAIROS_DEPLOYMENT: &str = "kairos-capi-controller-manager";
pub const KAIROS_CONTAINER: &str = "manager";

/// The CRDs the Kairos providers must have registered.
pub const KAIROS_CRDS: [&str; 4] = [
    "kairosconfigs.bootstrap.cluster.x-k8s.io",
    "kairosconfigtemplates.bootstrap.cluster.x-k8s.io",
    "kairoscontrolplanes.controlplane.cluster.x-k8s.io",
    "kairoscontrolplanetemplates.controlplane.cluster.x-k8s.io",
];

/// Where a manifest comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Url(String),
    /// A file, or a kustomize directory (built with `kubectl kustomize`).
    Path(PathBuf),
    /// A remote kustomization (`kubectl kustomize URL`, which clones it with git).
    Kustomize(String),
    /// Written by k0slab itself (the workload image's build, [`super::kubevirt`]).
    Generated,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Url(u) => f.write_str(u),
            Source::Path(p) => write!(f, "{}", p.display()),
            Source::Kustomize(u) => write!(f, "kustomization {u}"),
            Source::Generated => f.write_str("k0slab"),
        }
    }
}

/// The infrastructure provider the workload clusters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Infrastructure {
    /// CAPD, Cluster API's Docker provider (development)
    Docker,
    /// CAPV, vSphere
    Vsphere,
    /// CAPK, KubeVirt
    Kubevirt,
    /// none: bring your own
    None,
}

/// One step of `install`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Short name, also the manifest's file name in `lab/kairos/`.
    pub key: String,
    pub title: String,
    pub version: String,
    pub source: Source,
    /// A release asset: its clusterctl-style variables are filled in, as clusterctl does. A
    /// working copy (or a manifest the user gives) is applied as is, as its `make deploy` does.
    #[serde(default)]
    pub release: bool,
    pub namespace: String,
    /// Deployments that must become Available (all of the namespace's when empty and no
    /// [`Component::custom_resource`] is named).
    pub deployments: Vec<String>,
    /// An operator's custom resource whose `Available` condition says the component runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_resource: Option<CustomResource>,
}

/// A custom resource an operator reconciles, e.g. `kubevirts.kubevirt.io` `kubevirt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomResource {
    /// `<plural>.<group>`, as `kubectl get` takes it.
    pub resource: String,
    pub name: String,
    /// `None`: cluster-scoped.
    pub namespace: Option<String>,
    #[serde(default)]
    pub ready: Readiness,
}

/// When a custom resource is done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    /// Its `Available` condition is True (the KubeVirt and CDI operators write it).
    #[default]
    Available,
    /// `status.phase` is `done`; `failed` is final (an OSArtifact's Ready/Error, a
    /// DataVolume's Succeeded/Failed).
    Phase { done: String, failed: String },
}

/// What `install` was asked for.
#[derive(Debug, Clone)]
pub struct Versions {
    pub cert_manager: String,
    pub capi: String,
    pub infrastructure: Infrastructure,
    pub infrastructure_version: Option<String>,
    pub kairos: String,
    /// A provider build from the user's working copy (file, kustomize dir or URL).
    pub provider_manifest: Option<String>,
    /// CDI and KubeVirt releases (`--infrastructure kubevirt` only).
    pub cdi: String,
    pub kubevirt: String,
    /// The workload VMs' image (`--infrastructure kubevirt` only).
    pub workload_image: WorkloadImage,
}

/// What the cluster has already, which decides what `install` adds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Found {
    /// A StorageClass marked default: no local-path then.
    pub default_storage_class: bool,
}

fn github(repo: &str, version: &str, asset: &str) -> Source {
    Source::Url(format!(
        "https://github.com/{repo}/releases/download/{version}/{asset}"
    ))
}

fn source_of(given: &str) -> Source {
    if given.starts_with("https://") || given.starts_with("http://") {
        Source::Url(given.to_string())
    } else {
        Source::Path(PathBuf::from(given))
    }
}

/// What CAPK's VMs need, before anything else: a default StorageClass when there is none (the
/// provider's `storage.go` installs local-path and marks it default), CDI's operator then its
/// CR, KubeVirt's operator then its CR (kubevirt `automation/release.sh` publishes both files;
/// CDI likewise). An operator's CR is its own component, so `uninstall` (newest first) deletes
/// the CR, and with it what the operator deployed, while the operator still runs.
fn kubevirt_stack(v: &Versions, found: Found) -> Vec<Component> {
    let mut out = Vec::new();
    if !found.default_storage_class {
        out.push(Component {
            key: "local-path".into(),
            title: "local-path storage (default StorageClass)".into(),
            version: LOCAL_PATH_VERSION.into(),
            source: Source::Url(format!(
                "https://raw.githubusercontent.com/rancher/local-path-provisioner/{LOCAL_PATH_VERSION}/deploy/local-path-storage.yaml"
            )),
            release: false,
            namespace: "local-path-storage".into(),
            deployments: vec!["local-path-provisioner".into()],
            custom_resource: None,
        });
    }
    for (key, title, repo, version, prefix, namespace, operator, resource, cr_namespace) in [
        (
            "cdi",
            "CDI",
            "kubevirt/containerized-data-importer",
            &v.cdi,
            "cdi",
            "cdi",
            "cdi-operator",
            "cdis.cdi.kubevirt.io",
            None,
        ),
        (
            "kubevirt",
            "KubeVirt",
            "kubevirt/kubevirt",
            &v.kubevirt,
            "kubevirt",
            "kubevirt",
            "virt-operator",
            "kubevirts.kubevirt.io",
            Some("kubevirt"),
        ),
    ] {
        out.push(Component {
            key: format!("{key}-operator"),
            title: format!("{title} operator"),
            version: version.clone(),
            source: github(repo, version, &format!("{prefix}-operator.yaml")),
            release: false,
            namespace: namespace.into(),
            deployments: vec![operator.into()],
            custom_resource: None,
        });
        out.push(Component {
            key: key.into(),
            title: title.into(),
            version: version.clone(),
            source: github(repo, version, &format!("{prefix}-cr.yaml")),
            release: false,
            namespace: namespace.into(),
            deployments: Vec::new(),
            custom_resource: Some(CustomResource {
                resource: resource.into(),
                name: key.into(),
                namespace: cr_namespace.map(String::from),
                ready: Readiness::Available,
            }),
        });
    }
    out
}

/// kairos-operator, which builds the workload VMs' installer ISO inside the lab (the
/// provider's `kairos_operator_install.go` applies these two kustomizations, `versions.go`
/// 35-47): the operator (namespace operator-system, name prefix operator-) and the nginx its
/// OSArtifact exporters upload to (no namespace: the default one).
fn kairos_operator() -> Vec<Component> {
    let url = |dir: &str| {
        format!(
            "https://github.com/kairos-io/kairos-operator/config/{dir}?ref={KAIROS_OPERATOR_VERSION}"
        )
    };
    vec![
        Component {
            key: "kairos-operator".into(),
            title: "kairos-operator".into(),
            version: KAIROS_OPERATOR_VERSION.into(),
            source: Source::Kustomize(url("default")),
            release: false,
            namespace: "operator-system".into(),
            deployments: vec!["operator-kairos-operator".into()],
            custom_resource: None,
        },
        Component {
            key: "kairos-operator-nginx".into(),
            title: "kairos-operator nginx".into(),
            version: KAIROS_OPERATOR_VERSION.into(),
            source: Source::Kustomize(url("nginx")),
            release: false,
            namespace: "default".into(),
            deployments: vec!["nginx".into()],
            custom_resource: None,
        },
    ]
}

/// The components in install order.
pub fn plan(v: &Versions, found: Found) -> Vec<Component> {
    let mut out = if v.infrastructure == Infrastructure::Kubevirt {
        kubevirt_stack(v, found)
    } else {
        Vec::new()
    };
    out.extend([
        Component {
            key: "cert-manager".into(),
            title: "cert-manager".into(),
            version: v.cert_manager.clone(),
            source: github(
                "cert-manager/cert-manager",
                &v.cert_manager,
                "cert-manager.yaml",
            ),
            release: true,
            namespace: "cert-manager".into(),
            deployments: vec![
                "cert-manager".into(),
                "cert-manager-cainjector".into(),
                "cert-manager-webhook".into(),
            ],
            custom_resource: None,
        },
        Component {
            key: "cluster-api".into(),
            title: "Cluster API core".into(),
            version: v.capi.clone(),
            source: github(
                "kubernetes-sigs/cluster-api",
                &v.capi,
                "core-components.yaml",
            ),
            release: true,
            namespace: "capi-system".into(),
            deployments: vec!["capi-controller-manager".into()],
            custom_resource: None,
        },
    ]);
    // (key, title, repository, release asset, namespace, default version)
    let infra = match v.infrastructure {
        Infrastructure::Docker => Some((
            "docker",
            "CAPD (Docker)",
            "kubernetes-sigs/cluster-api",
            "infrastructure-components-development.yaml",
            "capd",
            v.capi.as_str(),
        )),
        Infrastructure::Vsphere => Some((
            "vsphere",
            "CAPV (vSphere)",
            "kubernetes-sigs/cluster-api-provider-vsphere",
            "infrastructure-components.yaml",
            "capv",
            CAPV_VERSION,
        )),
        Infrastructure::Kubevirt => Some((
            "kubevirt",
            "CAPK (KubeVirt)",
            "kubernetes-sigs/cluster-api-provider-kubevirt",
            "infrastructure-components.yaml",
            "capk",
            CAPK_VERSION,
        )),
        Infrastructure::None => None,
    };
    if let Some((name, title, repo, asset, prefix, default_version)) = infra {
        let version = v
            .infrastructure_version
            .clone()
            .unwrap_or_else(|| default_version.to_string());
        out.push(Component {
            key: format!("infrastructure-{name}"),
            title: title.into(),
            source: github(repo, &version, asset),
            release: true,
            version,
            namespace: format!("{prefix}-system"),
            deployments: vec![format!("{prefix}-controller-manager")],
            custom_resource: None,
        });
    }
    let (source, version, release) = match &v.provider_manifest {
        Some(given) => (source_of(given), "working copy".to_string(), false),
        None => (
            github(KAIROS_REPOSITORY, &v.kairos, KAIROS_ASSET),
            v.kairos.clone(),
            true,
        ),
    };
    out.push(Component {
        key: "kairos".into(),
        title: "Kairos providers".into(),
        version,
        source,
        release,
        namespace: KAIROS_NAMESPACE.into(),
        deployments: vec![KAIROS_DEPLOYMENT.into()],
        custom_resource: None,
    });
    if v.infrastructure == Infrastructure::Kubevirt {
        out.extend(workload_image(&v.workload_image));
    }
    out
}

/// The workload VMs' image: built by kairos-operator (and its nginx), then imported by CDI
/// into the DataVolume the cluster manifests name; a URL is only imported.
fn workload_image(image: &WorkloadImage) -> Vec<Component> {
    let mut out = Vec::new();
    let phase = |done: &str, failed: &str| Readiness::Phase {
        done: done.into(),
        failed: failed.into(),
    };
    if let Some(artifact) = image.artifact() {
        out.extend(kairos_operator());
        out.push(Component {
            key: IMAGE_BUILD.into(),
            title: format!("the {image} installer ISO (OSArtifact {artifact})"),
            version: KAIROS_OPERATOR_VERSION.into(),
            source: Source::Generated,
            release: false,
            namespace: IMAGE_NAMESPACE.into(),
            deployments: Vec::new(),
            custom_resource: Some(CustomResource {
                resource: "osartifacts.build.kairos.io".into(),
                name: artifact.into(),
                namespace: Some(IMAGE_NAMESPACE.into()),
                ready: phase("Ready", "Error"),
            }),
        });
    }
    if let Some(volume) = image.data_volume() {
        out.push(Component {
            key: IMAGE_VOLUME.into(),
            title: format!("the {image} image's DataVolume {volume}"),
            version: image.to_string(),
            source: Source::Generated,
            release: false,
            namespace: IMAGE_NAMESPACE.into(),
            deployments: Vec::new(),
            custom_resource: Some(CustomResource {
                resource: "datavolumes.cdi.kubevirt.io".into(),
                name: volume.into(),
                namespace: Some(IMAGE_NAMESPACE.into()),
                ready: phase("Succeeded", "Failed"),
            }),
        });
    }
    out
}

/// Keys of the generated components (their text: [`super::kubevirt`]).
pub const IMAGE_BUILD: &str = "workload-image-build";
pub const IMAGE_VOLUME: &str = "workload-image";

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> Versions {
        Versions {
            cert_manager: CERT_MANAGER_VERSION.into(),
            capi: CAPI_VERSION.into(),
            infrastructure: Infrastructure::Docker,
            infrastructure_version: None,
            kairos: KAIROS_VERSION.into(),
            provider_manifest: None,
            cdi: CDI_VERSION.into(),
            kubevirt: KUBEVIRT_VERSION.into(),
            workload_image: WorkloadImage::K3s,
        }
    }

    fn keys(p: &[Component]) -> Vec<&str> {
        p.iter().map(|c| c.key.as_str()).collect()
    }

    #[test]
    fn release_plan_in_order() {
        let p = plan(&versions(), Found::default());
        assert_eq!(
            keys(&p),
            [
                "cert-manager",
                "cluster-api",
                "infrastructure-docker",
                "kairos"
            ]
        );
        assert_eq!(
            p[1].source,
            Source::Url("https://github.com/kubernetes-sigs/cluster-api/releases/download/v1.11.2/core-components.yaml".into())
        );
        assert_eq!(p[3].deployments, [KAIROS_DEPLOYMENT]);
        assert_eq!(
            p[3].source,
            Source::Url("https://github.com/kairos-io/cluster-api-provider-kairos/releases/download/v0.1.0-alpha.2/kairos-capi-provider.yaml".into())
        );
        assert!(p.iter().all(|c| c.release), "release assets get variables");
    }

    #[test]
    fn every_infrastructure_provider() {
        let mut v = versions();
        for (infra, key, url, ns, deployment) in [
            (Infrastructure::Vsphere, "infrastructure-vsphere",
             "https://github.com/kubernetes-sigs/cluster-api-provider-vsphere/releases/download/v1.14.0/infrastructure-components.yaml",
             "capv-system", "capv-controller-manager"),
            (Infrastructure::Kubevirt, "infrastructure-kubevirt",
             "https://github.com/kubernetes-sigs/cluster-api-provider-kubevirt/releases/download/v0.1.10/infrastructure-components.yaml",
             "capk-system", "capk-controller-manager"),
        ] {
            v.infrastructure = infra;
            let p = plan(&v, Found { default_storage_class: true });
            let c = p.iter().find(|c| c.key == key).unwrap().clone();
            assert_eq!((c.key.as_str(), c.namespace.as_str()), (key, ns));
            assert_eq!(c.source, Source::Url(url.into()));
            assert_eq!(c.deployments, [deployment]);
        }
        v.infrastructure_version = Some("v9.9.9".into());
        let p = plan(&v, Found::default());
        let capk = p.iter().find(|c| c.key == "infrastructure-kubevirt");
        assert_eq!(capk.unwrap().version, "v9.9.9");
    }

    #[test]
    fn kubevirt_brings_storage_cdi_kubevirt_and_the_image_builder() {
        let mut v = versions();
        v.infrastructure = Infrastructure::Kubevirt;
        let p = plan(&v, Found::default());
        assert_eq!(
            keys(&p),
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
        assert_eq!(
            p[3].source,
            Source::Url(
                "https://github.com/kubevirt/kubevirt/releases/download/v1.8.2/kubevirt-operator.yaml"
                    .into()
            )
        );
        assert_eq!(
            p[4].custom_resource,
            Some(CustomResource {
                resource: "kubevirts.kubevirt.io".into(),
                name: "kubevirt".into(),
                namespace: Some("kubevirt".into()),
                ready: Readiness::Available
            })
        );
        assert_eq!(
            p[2].custom_resource
                .as_ref()
                .map(|c| (c.name.as_str(), c.namespace.is_none())),
            Some(("cdi", true)),
            "CDI's CR is cluster-scoped"
        );
        assert!(p[4].deployments.is_empty() && p[3].deployments == ["virt-operator"]);
        assert_eq!(
            p[9].source,
            Source::Kustomize(
                "https://github.com/kairos-io/kairos-operator/config/default?ref=v0.1.0-beta4"
                    .into()
            )
        );
        assert_eq!(
            p[12].custom_resource.as_ref().map(|c| c.name.as_str()),
            Some("kairos-kubevirt")
        );
        v.workload_image = WorkloadImage::Url("https://example.com/k.iso".into());
        assert_eq!(
            keys(&plan(&v, Found::default())[9..]),
            ["workload-image"],
            "a URL is only imported: no operator, no build"
        );
        v.workload_image = WorkloadImage::None;
        assert_eq!(plan(&v, Found::default()).len(), 9);
        v.workload_image = WorkloadImage::K3s;
        let with_storage = plan(
            &v,
            Found {
                default_storage_class: true,
            },
        );
        assert_eq!(with_storage.len(), p.len() - 1);
        assert!(with_storage.iter().all(|c| c.key != "local-path"));
        v.infrastructure = Infrastructure::Docker;
        assert!(
            plan(&v, Found::default())
                .iter()
                .all(|c| c.custom_resource.is_none()),
            "nothing of it for other providers"
        );
    }

    #[test]
    fn working_copy_and_no_infrastructure() {
        let mut v = versions();
        v.infrastructure = Infrastructure::None;
        v.provider_manifest = Some("../kairos-capi/config/default".into());
        let p = plan(&v, Found::default());
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[2].source,
            Source::Path("../kairos-capi/config/default".into())
        );
        assert!(!p[2].release, "a working copy is applied as is");
        assert!(p[0].release && p[1].release);
        v.provider_manifest = Some("https://example.invalid/k.yaml".into());
        let p = plan(&v, Found::default());
        assert!(matches!(p[2].source, Source::Url(_)));
        assert!(!p[2].release, "so is a manifest the user names");
    }
}
