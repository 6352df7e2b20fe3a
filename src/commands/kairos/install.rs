//! `kairos install` and `kairos uninstall`.

use std::collections::BTreeMap;
use std::fs;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;

use serde_json::Value;

use super::{kubectl, lab_kubeconfig, Installed, InstalledComponent, INSTALLED, KAIROS_DIR};
use crate::commands::Context;
use crate::error::{Error, InputError, Result};
use crate::fsutil::write_atomic;
use crate::health::condition_true;
use crate::kairos::components::{self, Component, Source, Versions};
use crate::kairos::{manifest, milestones};
use crate::kubectl::Kubectl;
use crate::process::{check_interrupted, Cmd};
use crate::progress::{format_duration, Bar, Progress};
use crate::render::MODE_PRIVATE;
use crate::tools::Tool;

/// The manifest text of a component: downloaded, read, or built with kustomize.
fn fetch(ctx: &Context<'_>, k: &Kubectl<'_>, component: &Component) -> Result<String> {
    match &component.source {
        Source::Url(url) => Cmd::new(ctx.tools.get(Tool::Curl)?, format!("downloading {url}"))
            .args(["-fsSL", "--retry", "3", url.as_str()])
            .output(ctx.env, &ctx.out),
        Source::Path(p) if p.is_dir() => k.kustomize(p),
        Source::Path(p) => fs::read_to_string(p).map_err(|e| Error::io("reading", p, e)),
    }
}

/// Waits until every named Deployment of the namespace (all of them when none are named)
/// is Available.
fn wait_available(
    k: &Kubectl<'_>,
    component: &Component,
    timeout: Duration,
    poll: Duration,
    bar: &Bar,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let list = k.get_json(
            "listing Deployments",
            &["deployments", "--namespace", &component.namespace],
        )?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let by_name: BTreeMap<&str, &Value> = items
            .iter()
            .filter_map(|d| Some((d.pointer("/metadata/name")?.as_str()?, d)))
            .collect();
        let wanted: Vec<&str> = if component.deployments.is_empty() {
            by_name.keys().copied().collect()
        } else {
            component.deployments.iter().map(String::as_str).collect()
        };
        let waiting: Vec<String> = wanted
            .iter()
            .filter(|w| {
                !by_name
                    .get(*w)
                    .is_some_and(|d| condition_true(d, "Available"))
            })
            .map(|w| match by_name.get(w) {
                None => format!("{w} (missing)"),
                Some(d) => {
                    let why = milestones::false_conditions(d).join("; ");
                    if why.is_empty() {
                        w.to_string()
                    } else {
                        format!("{w} ({why})")
                    }
                }
            })
            .collect();
        if waiting.is_empty() && !wanted.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(Error::Step(format!(
                "{} {}: Deployment(s) in {} not Available after {}: {}",
                component.title,
                component.version,
                component.namespace,
                format_duration(timeout),
                if waiting.is_empty() {
                    "none found".to_string()
                } else {
                    waiting.join(", ")
                }
            )));
        }
        bar.message(&format!("waiting for {}", waiting.join(", ")));
        std::thread::sleep(poll);
        check_interrupted()?;
    }
}

fn check_crds(k: &Kubectl<'_>) -> Result<()> {
    let missing: Vec<&str> = components::KAIROS_CRDS
        .iter()
        .copied()
        .filter(|crd| k.get_json("looking up a CRD", &["crd", crd]).is_err())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Step(format!(
            "the Kairos provider is running but these CRDs are missing: {}",
            missing.join(", ")
        )))
    }
}

/// Options of `kairos install`.
pub struct InstallOptions {
    pub versions: Versions,
    pub provider_image: Option<String>,
    pub timeout: Duration,
}

/// A release tag as the components' projects name them: `v1.10.4`, `v1.10.0-rc.1`.
static VERSION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^v\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$").expect("valid regex"));
/// An image reference by the grammar of distribution/reference (`reference.go`): domain with
/// optional port, lower-case path components, optional tag and digest.
static IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*",
        r"(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*",
        r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
    ))
    .expect("valid regex")
});

/// Every flag of `kairos install`, before anything is fetched or applied (exit 2).
pub fn check(o: &InstallOptions) -> std::result::Result<(), InputError> {
    let v = &o.versions;
    let versions = [
        ("--cert-manager-version", Some(&v.cert_manager)),
        ("--capi-version", Some(&v.capi)),
        (
            "--infrastructure-version",
            v.infrastructure_version.as_ref(),
        ),
        ("--kairos-version", Some(&v.kairos)),
    ];
    for (flag, value) in versions {
        if let Some(value) = value.filter(|x| !VERSION.is_match(x)) {
            return Err(InputError::Invalid {
                origin: format!("flag {flag}"),
                value: value.clone(),
                allowed: "a release tag like v1.10.4".into(),
            });
        }
    }
    if let Some(image) = o.provider_image.as_ref().filter(|i| !IMAGE.is_match(i)) {
        return Err(InputError::Invalid {
            origin: "flag --provider-image".into(),
            value: image.clone(),
            allowed: "an image reference like ghcr.io/me/kairos-capi:dev".into(),
        });
    }
    if let Some(m) = &v.provider_manifest {
        let url = m.starts_with("https://") || m.starts_with("http://");
        if !url && !std::path::Path::new(m).exists() {
            return Err(InputError::Invalid {
                origin: "flag --provider-manifest".into(),
                value: m.clone(),
                allowed: "an existing file or kustomize directory, or an http(s) URL".into(),
            });
        }
    }
    Ok(())
}

/// A provider image the host's container engine has is loaded into the nodes first (`k0slab
/// image load`): a build that exists only on this Mac needs no registry.
fn load_local_image(ctx: &Context<'_>, image: &str) -> Result<()> {
    let Ok(found) = crate::image::engine::find(ctx.env, None) else {
        return Ok(());
    };
    if found.ids(ctx.env, &ctx.out, &[image.to_string()]).is_err() {
        return Ok(()); // not local: the nodes pull it
    }
    ctx.out.info(&format!(
        "{image} exists on this host: loading it into the nodes ({})",
        found.engine
    ));
    crate::commands::image::load(
        ctx,
        &crate::commands::image::LoadOptions {
            source: crate::commands::image::Source::Engine {
                images: vec![image.to_string()],
                engine: Some(found.engine),
            },
            nodes: Vec::new(),
        },
    )
}

pub fn install(ctx: &Context<'_>, o: &InstallOptions) -> Result<()> {
    check(o)?;
    let kubeconfig = lab_kubeconfig(ctx)?;
    if let Some(image) = &o.provider_image {
        load_local_image(ctx, image)?;
    }
    let k = kubectl(ctx, &kubeconfig)?;
    let dir = ctx.dir.join(KAIROS_DIR);
    fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let plan = components::plan(&o.versions);
    let progress = Progress::new(&ctx.out);
    let mut installed = Vec::new();
    for (i, component) in plan.iter().enumerate() {
        let bar = progress.bar(&component.key, 22, 3);
        let step = (|| -> Result<String> {
            bar.step(0, &format!("fetching {}", component.source));
            let text = fetch(ctx, &k, component)?;
            let mut text = manifest::substitute(&text, ctx.env, &component.title)?;
            if component.key == "kairos" {
                if let Some(image) = &o.provider_image {
                    text = manifest::set_image(
                        &text,
                        components::KAIROS_DEPLOYMENT,
                        components::KAIROS_CONTAINER,
                        image,
                    )?;
                }
            }
            let file = format!("{:02}-{}.yaml", i + 1, component.key);
            write_atomic(&dir.join(&file), text.as_bytes(), MODE_PRIVATE)?;
            bar.step(1, "applying");
            k.apply(&format!("applying {}", component.title), &dir.join(&file))?;
            bar.step(2, "waiting for its Deployments");
            wait_available(&k, component, o.timeout, ctx.poll_interval(), &bar)?;
            if component.key == "kairos" {
                check_crds(&k)?;
            }
            Ok(file)
        })();
        match step {
            Ok(file) => {
                bar.done(&format!(
                    "{} {} Available",
                    component.title, component.version
                ));
                installed.push(InstalledComponent {
                    component: component.clone(),
                    file,
                });
                // Record progress after each step: uninstall removes what was applied.
                let json = serde_json::to_string_pretty(&Installed {
                    components: installed.clone(),
                })
                .expect("serialises");
                write_atomic(&dir.join(INSTALLED), json.as_bytes(), MODE_PRIVATE)?;
            }
            Err(e) => {
                bar.failed(&format!("{} failed", component.title));
                return Err(Error::Step(format!(
                    "kairos install stopped at {} {}: {e}\nRun `k0slab kairos install` again once the cause is fixed (applying is idempotent).",
                    component.title, component.version
                )));
            }
        }
    }
    ctx.out.info(&format!(
        "Kairos providers installed on lab {} ({}); CRDs: {}",
        ctx.record()?.name(),
        plan.iter()
            .map(|c| format!("{} {}", c.title, c.version))
            .collect::<Vec<_>>()
            .join(", "),
        components::KAIROS_CRDS.join(", ")
    ));
    Ok(())
}

/// Namespaces whose webhooks belong to what `install` added.
fn webhook_namespaces(installed: &Installed) -> Vec<String> {
    installed
        .components
        .iter()
        .map(|c| c.component.namespace.clone())
        .collect()
}

pub fn uninstall(ctx: &Context<'_>) -> Result<()> {
    let kubeconfig = lab_kubeconfig(ctx)?;
    let k = kubectl(ctx, &kubeconfig)?;
    let dir = ctx.dir.join(KAIROS_DIR);
    let installed: Installed = match fs::read_to_string(dir.join(INSTALLED)) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| Error::LabFile {
            path: dir.join(INSTALLED),
            reason: e.to_string(),
        })?,
        Err(_) => {
            ctx.out
                .info("no Kairos install recorded in this lab; removing only stale webhooks");
            Installed {
                components: Vec::new(),
            }
        }
    };
    for c in installed.components.iter().rev() {
        let file = dir.join(&c.file);
        if file.is_file() {
            k.delete_file(&format!("removing {}", c.component.title), &file, false)?;
            ctx.out.info(&format!(
                "removed {} {}",
                c.component.title, c.component.version
            ));
        }
    }
    // Webhook configurations outlive their services and block the next install.
    let mut namespaces = webhook_namespaces(&installed);
    if namespaces.is_empty() {
        namespaces = vec![components::KAIROS_NAMESPACE.to_string()];
    }
    for kind in [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ] {
        let list = k.get_json(&format!("listing {kind}"), &[kind])?;
        for hook in list["items"].as_array().into_iter().flatten() {
            let ours = hook["webhooks"].as_array().into_iter().flatten().any(|w| {
                w.pointer("/clientConfig/service/namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|ns| namespaces.iter().any(|n| n == ns))
            });
            let name = hook
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if ours && !name.is_empty() {
                k.delete(
                    &format!("removing webhook configuration {name}"),
                    kind,
                    name,
                )?;
                ctx.out
                    .info(&format!("removed stale webhook configuration {name}"));
            }
        }
    }
    if dir.is_dir() {
        fs::remove_dir_all(&dir).map_err(|e| Error::io("removing", &dir, e))?;
    }
    ctx.out.info("Kairos providers uninstalled");
    Ok(())
}
