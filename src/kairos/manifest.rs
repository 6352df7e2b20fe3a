//! Manifests: filling in clusterctl-style variables (`${VAR}`, `${VAR:=default}`) of release
//! assets, overriding an image, and reading what `install` waits for and `uninstall` sweeps:
//! webhook configurations that want cert-manager's CA, provider labels, namespaces.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use serde_yaml_ng::Value;

use crate::environment::Environment;
use crate::error::{Error, Result};

static VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[=-])([^}]*))?\}").expect("valid regex")
});

/// Replaces `${VAR}`, `${VAR:=default}` and `${VAR:-default}` with the variable's value from
/// `env`, else the default. Variables with neither are an error naming them all. Only for
/// release assets, as clusterctl does: a working copy's manifest may hold shell scripts whose
/// `${VAR}` is the shell's (kairos-capi's webhook Job uses `${CA_BUNDLE}`).
pub fn substitute(text: &str, env: &Environment, what: &str) -> Result<String> {
    let mut missing = BTreeSet::new();
    let out = VARIABLE.replace_all(text, |c: &regex::Captures<'_>| {
        let name = &c[1];
        let default = c.get(3).map(|m| m.as_str());
        match (env.get(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => v.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                missing.insert(name.to_string());
                String::new()
            }
        }
    });
    if missing.is_empty() {
        Ok(out.into_owned())
    } else {
        Err(Error::Step(format!(
            "{what} needs these variables, which are not set: {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        )))
    }
}

/// The documents of a multi-document YAML text (empty ones skipped).
pub fn documents(text: &str) -> Result<Vec<Value>> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| {
            serde::Deserialize::deserialize(d)
                .map_err(|e| Error::Step(format!("a manifest is not valid YAML: {e}")))
        })
        .filter(|d| !matches!(d, Ok(Value::Null)))
        .collect()
}

/// `kind` and `metadata.name` of a document.
pub fn kind_and_name(doc: &Value) -> (&str, &str) {
    (
        doc.get("kind").and_then(Value::as_str).unwrap_or(""),
        doc.get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or(""),
    )
}

/// The label Cluster API providers put on every object of their components (clusterctl adds
/// it too: kubernetes-sigs/cluster-api cmd/clusterctl/client/repository/components.go).
pub const PROVIDER_LABEL: &str = "cluster.x-k8s.io/provider";
/// cert-manager's cainjector fills the webhooks' `caBundle` of a configuration with this
/// annotation from the Certificate it names, `<namespace>/<name>`.
pub const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";

/// A webhook configuration that waits for cert-manager's CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInjection {
    /// `ValidatingWebhookConfiguration` or `MutatingWebhookConfiguration`.
    pub kind: String,
    pub name: String,
    /// The Certificate's namespace and name.
    pub certificate: (String, String),
}

fn annotation<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// The webhook configurations of a manifest that ask cert-manager for their CA. An annotation
/// without a namespace is an error: cert-manager ignores it, so the webhooks would never work.
pub fn ca_injections(text: &str) -> Result<Vec<CaInjection>> {
    let mut out = Vec::new();
    for doc in documents(text)? {
        let (kind, name) = kind_and_name(&doc);
        if !matches!(
            kind,
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"
        ) {
            continue;
        }
        let Some(from) = annotation(&doc, INJECT_CA_FROM) else {
            continue;
        };
        match from.split_once('/') {
            Some((ns, cert)) if !ns.is_empty() && !cert.is_empty() => out.push(CaInjection {
                kind: kind.to_string(),
                name: name.to_string(),
                certificate: (ns.to_string(), cert.to_string()),
            }),
            _ => {
                return Err(Error::Step(format!(
                    "{kind} {name}: annotation {INJECT_CA_FROM} is {from:?}, not <namespace>/<certificate>"
                )))
            }
        }
    }
    Ok(out)
}

/// The values of [`PROVIDER_LABEL`] in a manifest, and the Namespaces it creates.
pub fn providers_and_namespaces(text: &str) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut providers = BTreeSet::new();
    let mut namespaces = BTreeSet::new();
    for doc in documents(text)? {
        if let Some(p) = doc
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(|l| l.get(PROVIDER_LABEL))
            .and_then(Value::as_str)
        {
            providers.insert(p.to_string());
        }
        if let ("Namespace", name) = kind_and_name(&doc) {
            namespaces.insert(name.to_string());
        }
    }
    Ok((providers, namespaces))
}

/// Sets the image of container `container` in Deployment `deployment`; an error if there is
/// no such container.
pub fn set_image(text: &str, deployment: &str, container: &str, image: &str) -> Result<String> {
    let mut docs = documents(text)?;
    let mut found = false;
    for doc in docs.iter_mut() {
        if kind_and_name(doc) != ("Deployment", deployment) {
            continue;
        }
        let containers = doc
            .get_mut("spec")
            .and_then(|s| s.get_mut("template"))
            .and_then(|t| t.get_mut("spec"))
            .and_then(|s| s.get_mut("containers"))
            .and_then(Value::as_sequence_mut);
        for c in containers.into_iter().flatten() {
            if c.get("name").and_then(Value::as_str) == Some(container) {
                if let Value::Mapping(m) = c {
                    m.insert("image".into(), image.into());
                    // A dev build may exist only on the nodes (`k0slab image load`).
                    m.insert("imagePullPolicy".into(), "IfNotPresent".into());
                    found = true;
                }
            }
        }
    }
    if !found {
        return Err(Error::Step(format!(
            "the provider manifest has no Deployment {deployment} with a container {container} to set the image of"
        )));
    }
    to_text(&docs)
}

fn to_text(docs: &[Value]) -> Result<String> {
    docs.iter()
        .map(|d| serde_yaml_ng::to_string(d).map_err(|e| Error::Step(e.to_string())))
        .collect::<Result<Vec<_>>>()
        .map(|d| d.join("---\n"))
}

/// Sets annotation `key` to `value` on the `kind` object named `name`; an error if there is
/// none.
pub fn set_annotation(
    text: &str,
    kind: &str,
    name: &str,
    key: &str,
    value: &str,
) -> Result<String> {
    let mut docs = documents(text)?;
    let mut found = false;
    for doc in docs.iter_mut().filter(|d| kind_and_name(d) == (kind, name)) {
        let Some(Value::Mapping(meta)) = doc.get_mut("metadata") else {
            continue;
        };
        let annotations = meta
            .entry("annotations".into())
            .or_insert_with(|| Value::Mapping(Default::default()));
        if !annotations.is_mapping() {
            *annotations = Value::Mapping(Default::default());
        }
        if let Value::Mapping(a) = annotations {
            a.insert(key.into(), value.into());
            found = true;
        }
    }
    if !found {
        return Err(Error::Step(format!(
            "the manifest has no {kind} {name} to annotate with {key}"
        )));
    }
    to_text(&docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_annotation_is_added_to_the_named_object_only() {
        let text = "kind: StorageClass\nmetadata:\n  name: local-path\n---\nkind: StorageClass\nmetadata:\n  name: other\n  annotations:\n    a: b\n";
        let out = set_annotation(
            text,
            "StorageClass",
            "local-path",
            "storageclass.kubernetes.io/is-default-class",
            "true",
        )
        .unwrap();
        let docs = documents(&out).unwrap();
        assert_eq!(
            docs[0]["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"]
                .as_str(),
            Some("true")
        );
        assert!(docs[1]["metadata"]["annotations"]
            .get("storageclass.kubernetes.io/is-default-class")
            .is_none());
        assert!(set_annotation(text, "StorageClass", "missing", "k", "v").is_err());
    }

    #[test]
    fn variables_are_filled_from_the_environment_or_defaults() {
        let env = Environment::from_pairs([("EXP_MACHINE_POOL", "true"), ("EMPTY", "")]);
        let text = "a: ${EXP_MACHINE_POOL:=false}\nb: ${CAPI_DIAGNOSTICS_ADDRESS:=:8443}\nc: ${X:-y}\nd: ${EMPTY:=fallback}\n";
        assert_eq!(
            substitute(text, &env, "m").unwrap(),
            "a: true\nb: :8443\nc: y\nd: fallback\n"
        );
        let err = substitute("${B} ${A} ${A:=ok} ${B}", &env, "core components").unwrap_err();
        assert_eq!(
            err.to_string(),
            "core components needs these variables, which are not set: A, B"
        );
        assert_eq!(
            substitute("no variables $HOME", &env, "m").unwrap(),
            "no variables $HOME"
        );
    }

    #[test]
    fn images_are_set_in_the_named_deployment_only() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kairos-capi-system\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: kairos-capi-controller-manager\nspec:\n  template:\n    spec:\n      containers:\n      - name: manager\n        image: controller:latest\n      - name: sidecar\n        image: other:1\n";
        let out = set_image(
            text,
            "kairos-capi-controller-manager",
            "manager",
            "ghcr.io/me/kairos-capi:dev",
        )
        .unwrap();
        assert!(out.contains("image: ghcr.io/me/kairos-capi:dev"), "{out}");
        assert!(out.contains("image: other:1"));
        assert_eq!(documents(&out).unwrap().len(), 2);
        assert!(set_image(text, "nope", "manager", "x").is_err());
    }

    const WEBHOOKS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kairos-capi-system\n  labels: {cluster.x-k8s.io/provider: kairos}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata:\n  name: mutating-webhook-configuration\n  labels: {cluster.x-k8s.io/provider: kairos}\n  annotations: {cert-manager.io/inject-ca-from: kairos-capi-system/kairos-capi-webhook-server-cert}\nwebhooks: []\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: other}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations: {cert-manager.io/inject-ca-from: a/b}\n  labels: {cluster.x-k8s.io/provider: cluster-api}\n";

    #[test]
    fn webhooks_that_want_a_ca_are_found_with_their_certificate() {
        assert_eq!(
            ca_injections(WEBHOOKS).unwrap(),
            [CaInjection {
                kind: "MutatingWebhookConfiguration".into(),
                name: "mutating-webhook-configuration".into(),
                certificate: (
                    "kairos-capi-system".into(),
                    "kairos-capi-webhook-server-cert".into()
                ),
            }]
        );
        let bad = WEBHOOKS.replace("kairos-capi-system/kairos-capi-webhook-server-cert", "cert");
        let err = ca_injections(&bad).unwrap_err().to_string();
        assert!(err.contains("not <namespace>/<certificate>"), "{err}");
    }

    #[test]
    fn provider_labels_and_namespaces_are_read() {
        let (providers, namespaces) = providers_and_namespaces(WEBHOOKS).unwrap();
        assert_eq!(
            providers.into_iter().collect::<Vec<_>>(),
            ["cluster-api", "kairos"]
        );
        assert_eq!(
            namespaces.into_iter().collect::<Vec<_>>(),
            ["kairos-capi-system"]
        );
    }
}
