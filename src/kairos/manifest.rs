//! Manifests: fetching them (a URL with curl, a file, or a kustomize directory), filling in
//! clusterctl-style variables (`${VAR}`, `${VAR:=default}`), and overriding an image.

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
/// `env`, else the default. Variables with neither are an error naming them all.
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
    docs.iter()
        .map(|d| serde_yaml_ng::to_string(d).map_err(|e| Error::Step(e.to_string())))
        .collect::<Result<Vec<_>>>()
        .map(|d| d.join("---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
