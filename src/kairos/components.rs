//! The components `kairos install` applies, in order, with pinned default versions.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Url(u) => f.write_str(u),
            Source::Path(p) => write!(f, "{}", p.display()),
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
    /// Deployments that must become Available (all of the namespace's when empty).
    pub deployments: Vec<String>,
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

/// The components in install order.
pub fn plan(v: &Versions) -> Vec<Component> {
    let mut out = vec![
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
        },
    ];
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
    });
    out
}

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
        }
    }

    #[test]
    fn release_plan_in_order() {
        let p = plan(&versions());
        let keys: Vec<&str> = p.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
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
            let c = plan(&v)[2].clone();
            assert_eq!((c.key.as_str(), c.namespace.as_str()), (key, ns));
            assert_eq!(c.source, Source::Url(url.into()));
            assert_eq!(c.deployments, [deployment]);
        }
        v.infrastructure_version = Some("v9.9.9".into());
        assert_eq!(plan(&v)[2].version, "v9.9.9");
    }

    #[test]
    fn working_copy_and_no_infrastructure() {
        let mut v = versions();
        v.infrastructure = Infrastructure::None;
        v.provider_manifest = Some("../kairos-capi/config/default".into());
        let p = plan(&v);
        assert_eq!(p.len(), 3);
        assert_eq!(
            p[2].source,
            Source::Path("../kairos-capi/config/default".into())
        );
        assert!(!p[2].release, "a working copy is applied as is");
        assert!(p[0].release && p[1].release);
        v.provider_manifest = Some("https://example.invalid/k.yaml".into());
        assert!(matches!(plan(&v)[2].source, Source::Url(_)));
        assert!(!plan(&v)[2].release, "so is a manifest the user names");
    }
}
