//! `kairos install` and `kairos uninstall`.
//!
//! Install applies each component, then waits until its webhooks can take requests (they are
//! `failurePolicy: Fail`: cert-manager must have issued the Certificate that
//! `cert-manager.io/inject-ca-from` names and its cainjector must have put the CA into every
//! webhook) and its Deployments are Available. `installed.json` records what was applied,
//! add-only. Uninstall deletes the recorded manifests, then whatever else carries their
//! providers' `cluster.x-k8s.io/provider` labels, then webhook configurations that point at
//! the removed namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;

use serde_json::Value;

use super::{kubectl, lab_kubeconfig, Installed, InstalledComponent};
use crate::error::{Error, InputError, Result};
use crate::fsutil::write_atomic;
use crate::health::condition_true;
use crate::inputs::Key;
use crate::kairos::components::{
    self, Component, CustomResource, Found, Infrastructure, Readiness, Source, Versions,
};
use crate::kairos::kubevirt;
use crate::kairos::manifest::{self, CaInjection, PROVIDER_LABEL};
use crate::kairos::milestones;
use crate::lab::files::KAIROS_DIR;
use crate::lab::files::KAIROS_INSTALLED as INSTALLED;
use crate::lab::files::MODE_PRIVATE;
use crate::lab::record::LabRecord;
use crate::progress::{format_duration, Bar, Progress};
use crate::tools::kubectl::Kubectl;
use crate::tools::process::{check_interrupted, Cmd};
use crate::tools::Tool;
use crate::workflow::context::Context;

/// What `uninstall` deletes by provider label, besides the recorded manifests: built-in kinds
/// only (the CRD-based ones may be gone with their CRDs by then).
const SWEPT_KINDS: &str = "namespaces,customresourcedefinitions,validatingwebhookconfigurations,\
mutatingwebhookconfigurations,clusterroles,clusterrolebindings,deployments,services,\
serviceaccounts,roles,rolebindings,jobs,secrets,configmaps";

impl Installed {
    /// The record in `dir`, if there is one.
    fn read(dir: &Path) -> Result<Option<Installed>> {
        let path = dir.join(INSTALLED);
        match fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| Error::LabFile {
                    path,
                    reason: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    /// Adds `entry`, or replaces the entry of the same component (keeping its place); never
    /// drops another component. Returns the replaced entry's file when it had another name.
    fn put(&mut self, entry: InstalledComponent) -> Option<String> {
        let key = &entry.component.key;
        match self.components.iter_mut().find(|c| &c.component.key == key) {
            Some(old) => {
                let previous = std::mem::replace(old, entry);
                (previous.file != old.file).then_some(previous.file)
            }
            None => {
                self.components.push(entry);
                None
            }
        }
    }

    fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("serialises");
        write_atomic(&dir.join(INSTALLED), json.as_bytes(), MODE_PRIVATE).map(|_| ())
    }
}

/// The manifest text of a component: downloaded, read, built with kustomize, or written here
/// (the workload image's).
fn fetch(
    ctx: &Context<'_>,
    k: &Kubectl<'_>,
    component: &Component,
    o: &InstallOptions,
) -> Result<String> {
    match &component.source {
        Source::Url(url) => Cmd::new(ctx.tools.get(Tool::Curl)?, format!("downloading {url}"))
            .args(["-fsSL", "--retry", "3", url.as_str()])
            .output(ctx.env, &ctx.out),
        Source::Path(p) if p.is_dir() => k.kustomize(p.as_os_str()),
        Source::Path(p) => fs::read_to_string(p).map_err(|e| Error::io("reading", p, e)),
        Source::Kustomize(url) => k.kustomize(url.as_ref()),
        Source::Generated => {
            let image = &o.versions.workload_image;
            let text = if component.key == components::IMAGE_BUILD {
                // A k0s image gets the lab's own k0s release.
                let k0s = match image {
                    kubevirt::WorkloadImage::K0s => ctx
                        .record()?
                        .inputs
                        .k0s_version
                        .map(|v| v.as_str().to_string())
                        .ok_or_else(|| {
                            Error::Step(
                                "the lab has no k0s release pinned yet to build a k0s image with: \
                                 run `k0slab up` first"
                                    .into(),
                            )
                        })?,
                    _ => String::new(),
                };
                kubevirt::build_manifest(image, &k0s)
            } else {
                kubevirt::volume_manifest(image)
            };
            text.ok_or_else(|| Error::Step(format!("{} has nothing to build", component.title)))
        }
    }
}

/// The manifest to apply: a release asset with its clusterctl-style variables filled (as
/// clusterctl does), anything else as is (as a provider's `make deploy` applies its kustomize
/// output), and the Kairos controller's image replaced when asked.
fn prepare(
    ctx: &Context<'_>,
    component: &Component,
    text: String,
    image: Option<&str>,
) -> Result<String> {
    let text = if component.release {
        manifest::substitute(&text, ctx.env, &component.title)?
    } else {
        text
    };
    // Installed only where there is no default StorageClass: it becomes the default, as the
    // provider's environment makes it (`internal/kubevirtenv/storage.go`).
    if component.key == "local-path" {
        return manifest::set_annotation(
            &text,
            "StorageClass",
            "local-path",
            DEFAULT_CLASS,
            "true",
        );
    }
    match image {
        Some(image) if component.key == "kairos" => manifest::set_image(
            &text,
            components::KAIROS_DEPLOYMENT,
            components::KAIROS_CONTAINER,
            image,
        ),
        _ => Ok(text),
    }
}

/// Polls `waiting` (what is still missing, empty when nothing) until it is empty; once
/// `timeout` has passed since `started`, fails with `what` and everything still missing.
fn wait_until(
    started: Instant,
    timeout: Duration,
    poll: Duration,
    bar: &Bar,
    what: &str,
    mut waiting: impl FnMut() -> Result<Vec<String>>,
) -> Result<()> {
    loop {
        let missing = waiting()?;
        if missing.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(Error::Step(format!(
                "{what} after {}: {}",
                format_duration(timeout),
                missing.join("; ")
            )));
        }
        bar.message(&format!("waiting: {}", missing.join("; ")));
        std::thread::sleep(poll);
        check_interrupted()?;
    }
}

/// `kubectl get … -o json`, or `None` when the object does not exist.
fn get_if_exists(k: &Kubectl<'_>, description: &str, args: &[&str]) -> Result<Option<Value>> {
    match k.get_json(description, args) {
        Ok(v) => Ok(Some(v)),
        Err(Error::CommandFailed { stderr, .. }) if stderr.contains("(NotFound)") => Ok(None),
        Err(e) => Err(e),
    }
}

/// What keeps the webhooks of `injections` from taking requests: Certificates not Ready, then
/// webhooks without a `caBundle`. Both are read from the cluster, named as in the manifest.
fn webhooks_waiting(k: &Kubectl<'_>, injections: &[CaInjection]) -> Result<Vec<String>> {
    let mut waiting = Vec::new();
    let certificates: BTreeSet<&(String, String)> =
        injections.iter().map(|i| &i.certificate).collect();
    for (ns, name) in certificates {
        let cert = get_if_exists(
            k,
            "looking up a webhook Certificate",
            &["certificates.cert-manager.io", name, "--namespace", ns],
        )?;
        match cert {
            None => waiting.push(format!("Certificate {ns}/{name} not found")),
            Some(c) if !condition_true(&c, "Ready") => {
                let why: Vec<String> = milestones::false_conditions(&c)
                    .into_iter()
                    .filter(|w| w.starts_with("Ready="))
                    .collect();
                waiting.push(format!(
                    "Certificate {ns}/{name} not Ready: {}",
                    if why.is_empty() {
                        "no Ready condition yet".to_string()
                    } else {
                        why.join("; ")
                    }
                ));
            }
            Some(_) => {}
        }
    }
    if !waiting.is_empty() {
        return Ok(waiting); // the cainjector has nothing to inject yet
    }
    for i in injections {
        let resource = format!("{}s", i.kind.to_lowercase());
        let hook = get_if_exists(
            k,
            &format!("looking up {} {}", i.kind, i.name),
            &[&resource, &i.name],
        )?;
        let Some(hook) = hook else {
            waiting.push(format!("{} {} not found", i.kind, i.name));
            continue;
        };
        let without: Vec<&str> = hook["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|w| {
                w.pointer("/clientConfig/caBundle")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            })
            .map(|w| w["name"].as_str().unwrap_or("?"))
            .collect();
        if !without.is_empty() {
            waiting.push(format!(
                "caBundle not injected into {} {} (webhooks {}; from Certificate {}/{})",
                i.kind,
                i.name,
                without.join(", "),
                i.certificate.0,
                i.certificate.1
            ));
        }
    }
    Ok(waiting)
}

/// The named Deployments of the component's namespace (all of them when none are named) that
/// are not Available, with their conditions.
fn deployments_waiting(k: &Kubectl<'_>, component: &Component) -> Result<Vec<String>> {
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
    if wanted.is_empty() {
        return Ok(vec!["none found".into()]);
    }
    Ok(wanted
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
        .collect())
}

/// What keeps an operator's custom resource from being done: missing, not Available (with
/// its phase and the conditions that are not True), or a phase not yet `done`. A `failed`
/// phase is an error: waiting cannot help.
fn custom_resource_waiting(k: &Kubectl<'_>, cr: &CustomResource) -> Result<Vec<String>> {
    let mut args = vec![cr.resource.as_str(), cr.name.as_str()];
    if let Some(ns) = &cr.namespace {
        args.extend(["--namespace", ns.as_str()]);
    }
    let what = format!("{} {}", cr.resource, cr.name);
    let Some(object) = get_if_exists(k, &format!("reading {what}"), &args)? else {
        return Ok(vec![format!("{what} not found")]);
    };
    let phase = object
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    match &cr.ready {
        Readiness::Available if condition_true(&object, "Available") => Ok(Vec::new()),
        Readiness::Available => {
            let why = milestones::false_conditions(&object).join("; ");
            Ok(vec![format!(
                "{what} not Available (phase {}{}{})",
                if phase.is_empty() { "none yet" } else { phase },
                if why.is_empty() { "" } else { "; " },
                why
            )])
        }
        Readiness::Phase { done, .. } if phase == done => Ok(Vec::new()),
        Readiness::Phase { failed, .. } if phase == failed => {
            let message = object
                .pointer("/status/message")
                .and_then(Value::as_str)
                .map(String::from)
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| milestones::false_conditions(&object).join("; "));
            let message = if message.is_empty() {
                // A failed build pod leaves no message (kairos-operator osartifact_controller.go
                // 347-349): its pods' logs say why.
                format!(
                    "it gives no reason; its pods' logs do: kubectl get pods --namespace {}",
                    cr.namespace.as_deref().unwrap_or("default")
                )
            } else {
                message
            };
            Err(Error::Step(format!("{what} is {phase}: {message}")))
        }
        Readiness::Phase { .. } if object.pointer("/status/progress").is_some() => {
            Ok(vec![format!(
                "{what}: {}",
                kubevirt::data_volume_state(&object)
            )])
        }
        Readiness::Phase { .. } => Ok(vec![format!(
            "{what}: {}",
            if phase.is_empty() {
                "no phase yet"
            } else {
                phase
            }
        )]),
    }
}

/// Why no workload VM could run yet: no node offers KVM. Names each node's allocatable, and
/// a KubeVirt CR that turned on emulation (k0slab never does: on arm64 KubeVirt takes only
/// host-passthrough, which needs KVM).
fn kvm_waiting(k: &Kubectl<'_>) -> Result<Vec<String>> {
    let kubevirt = k.get_json(
        "reading the KubeVirt CR",
        &[
            "kubevirts.kubevirt.io",
            "kubevirt",
            "--namespace",
            "kubevirt",
        ],
    )?;
    if kubevirt::uses_emulation(&kubevirt) {
        return Err(Error::Step(
            "the KubeVirt CR sets developerConfiguration.useEmulation: workload VMs would be \
             emulated, and KubeVirt on arm64 accepts only the host-passthrough CPU model, which \
             needs KVM; remove it (kubectl edit kubevirt kubevirt -n kubevirt)"
                .into(),
        ));
    }
    let nodes = k.get_json("listing the nodes' devices", &["nodes"])?;
    if kubevirt::kvm_nodes(&nodes).is_empty() {
        let names: Vec<&str> = nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.pointer("/metadata/name")?.as_str())
            .collect();
        return Ok(vec![format!(
            "no node offers {} yet (nodes: {})",
            kubevirt::KVM_RESOURCE,
            names.join(", ")
        )]);
    }
    Ok(Vec::new())
}

/// KubeVirt's workload VMs need KVM, which only nested workers have: refused before anything
/// is applied on a lab without them.
fn require_nested(record: &LabRecord) -> Result<()> {
    if record.nodes.iter().any(|n| n.nested) {
        return Ok(());
    }
    Err(Error::Step(format!(
        "kairos install --infrastructure kubevirt needs workers with nested virtualization, and \
         lab {} has none ({}=none): without /dev/kvm KubeVirt could only emulate the workload VMs, \
         and on arm64 it accepts only the host-passthrough CPU model, which emulation cannot \
         provide (kubevirt pkg/virt-api/webhooks/arm64.go). Nothing was installed. Recreate the \
         lab with {}=workers on a Mac with an M3 or later, macOS 15 and Tart 2.20 or later \
         (`k0slab doctor` checks them)",
        record.name(),
        Key::Nested.env_name(),
        Key::Nested.env_name()
    )))
}

/// Whether the cluster has a default StorageClass (`storageclass.kubernetes.io/
/// is-default-class: "true"`, as kube-apiserver's DefaultStorageClass admission reads it).
fn has_default_storage_class(k: &Kubectl<'_>) -> Result<bool> {
    let list = k.get_json("listing StorageClasses", &["storageclasses"])?;
    Ok(list["items"].as_array().into_iter().flatten().any(|sc| {
        sc.pointer("/metadata/annotations")
            .and_then(|a| a.get(DEFAULT_CLASS))
            .and_then(Value::as_str)
            == Some("true")
    }))
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
    /// For the workload image's build and import (the provider's e2e allows its build 30
    /// minutes: `kairos_image_install.go` 422).
    pub image_timeout: Duration,
}

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

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
        ("--cdi-version", Some(&v.cdi)),
        ("--kubevirt-version", Some(&v.kubevirt)),
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
    crate::workflow::image::load(
        ctx,
        &crate::workflow::image::LoadOptions {
            source: crate::workflow::image::Source::Engine {
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
    let kubevirt = o.versions.infrastructure == Infrastructure::Kubevirt;
    if kubevirt {
        require_nested(&ctx.record()?)?;
    }
    let k = kubectl(ctx, &kubeconfig)?;
    let found = Found {
        default_storage_class: kubevirt && has_default_storage_class(&k)?,
    };
    let dir = ctx.dir.join(KAIROS_DIR);
    fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
    let mut record = Installed::read(&dir)?.unwrap_or(Installed {
        components: Vec::new(),
    });
    let plan = components::plan(&o.versions, found);
    let progress = Progress::new(&ctx.out);
    for (i, component) in plan.iter().enumerate() {
        let bar = progress.bar(&component.key, 22, 4);
        let step = (|| -> Result<()> {
            bar.step(0, &format!("fetching {}", component.source));
            let text = fetch(ctx, &k, component, o)?;
            let text = prepare(ctx, component, text, o.provider_image.as_deref())?;
            let injections = manifest::ca_injections(&text)?;
            let file = format!("{:02}-{}.yaml", i + 1, component.key);
            write_atomic(&dir.join(&file), text.as_bytes(), MODE_PRIVATE)?;
            // Recorded before it is applied: uninstall removes whatever of it got applied.
            let entry = InstalledComponent {
                component: component.clone(),
                file: file.clone(),
            };
            if let Some(replaced) = record.put(entry) {
                let _ = fs::remove_file(dir.join(replaced));
            }
            record.write(&dir)?;
            bar.step(1, "applying");
            k.apply(&format!("applying {}", component.title), &dir.join(&file))?;
            let started = Instant::now();
            if !injections.is_empty() {
                bar.step(2, "waiting for its webhooks' certificate and CA");
                wait_until(
                    started,
                    o.timeout,
                    ctx.poll_interval(),
                    &bar,
                    "webhooks not ready",
                    || webhooks_waiting(&k, &injections),
                )?;
            }
            let timeout = if component.source == Source::Generated {
                o.image_timeout
            } else {
                o.timeout
            };
            if let Some(cr) = &component.custom_resource {
                bar.step(3, &format!("waiting for {} {}", cr.resource, cr.name));
                wait_until(
                    started,
                    timeout,
                    ctx.poll_interval(),
                    &bar,
                    &format!("{} {} not done", cr.resource, cr.name),
                    || custom_resource_waiting(&k, cr),
                )?;
            }
            if component.custom_resource.is_none() || !component.deployments.is_empty() {
                bar.step(3, "waiting for its Deployments");
                wait_until(
                    started,
                    timeout,
                    ctx.poll_interval(),
                    &bar,
                    &format!("Deployment(s) in {} not Available", component.namespace),
                    || deployments_waiting(&k, component),
                )?;
            }
            // KubeVirt runs: its virt-handlers report KVM on the nodes that have it.
            if component.key == "kubevirt" {
                bar.step(
                    3,
                    &format!("waiting for a node to offer {}", kubevirt::KVM_RESOURCE),
                );
                wait_until(
                    started,
                    timeout,
                    ctx.poll_interval(),
                    &bar,
                    "no node can run a KubeVirt VM",
                    || kvm_waiting(&k),
                )?;
            }
            if component.key == "kairos" {
                check_crds(&k)?;
            }
            Ok(())
        })();
        match step {
            Ok(()) => bar.done(&format!(
                "{} {} Available",
                component.title, component.version
            )),
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

/// Manifests in `dir` the record does not name (an earlier k0slab rewrote the record to fewer
/// components but kept their files), newest name first.
fn unrecorded_manifests(dir: &Path, record: &Installed) -> Result<Vec<String>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml") && !record.components.iter().any(|c| &c.file == n))
        .collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}

pub fn uninstall(ctx: &Context<'_>) -> Result<()> {
    let kubeconfig = lab_kubeconfig(ctx)?;
    let k = kubectl(ctx, &kubeconfig)?;
    let dir = ctx.dir.join(KAIROS_DIR);
    let record = Installed::read(&dir)?.unwrap_or_else(|| {
        ctx.out
            .info("no Kairos install recorded in this lab; removing only stale webhooks");
        Installed {
            components: Vec::new(),
        }
    });
    // (what to say, file, whether to wait), newest first. An operator's custom resource is
    // waited for: its operator removes what it deployed, and then the CR's finalizer, so the
    // operator (deleted next) must still run until the CR is gone.
    let mut manifests: Vec<(String, String, bool)> = record
        .components
        .iter()
        .rev()
        .map(|c| {
            (
                format!("{} {}", c.component.title, c.component.version),
                c.file.clone(),
                c.component.custom_resource.is_some(),
            )
        })
        .collect();
    for file in unrecorded_manifests(&dir, &record)? {
        manifests.push((format!("{file} (from an earlier install)"), file, false));
    }
    // Read before deleting: the providers' labels and the namespaces of everything applied.
    let mut providers = BTreeSet::new();
    let mut namespaces: BTreeSet<String> = record
        .components
        .iter()
        .map(|c| c.component.namespace.clone())
        .collect();
    namespaces.insert(components::KAIROS_NAMESPACE.to_string());
    for (_, file, _) in &manifests {
        let path = dir.join(file);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let (p, n) = manifest::providers_and_namespaces(&text).map_err(|e| Error::LabFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        providers.extend(p);
        namespaces.extend(n);
    }
    for (what, file, wait) in &manifests {
        let path = dir.join(file);
        if path.is_file() {
            k.delete_file(&format!("removing {what}"), &path, *wait)?;
            ctx.out.info(&format!("removed {what}"));
        }
    }
    // What an earlier install of the same providers applied under other names (a release
    // replaced by a working copy, say): Cluster API providers label every object of theirs.
    for provider in &providers {
        let selector = format!("{PROVIDER_LABEL}={provider}");
        let labelled = k.get_json(
            &format!("listing the namespaces labelled {selector}"),
            &["namespaces", "-l", &selector],
        )?;
        namespaces.extend(
            labelled["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n.pointer("/metadata/name")?.as_str().map(String::from)),
        );
        let out = k.delete_selected(
            &format!("removing what is labelled {selector}"),
            SWEPT_KINDS,
            &selector,
        )?;
        let count = out.lines().filter(|l| l.ends_with(" deleted")).count();
        if count > 0 {
            ctx.out.info(&format!(
                "removed {count} more object(s) labelled {selector}"
            ));
        }
    }
    // Webhook configurations outlive their services and block the next install.
    for kind in [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ] {
        let list = k.get_json(&format!("listing {kind}"), &[kind])?;
        for hook in list["items"].as_array().into_iter().flatten() {
            let ours = hook["webhooks"].as_array().into_iter().flatten().any(|w| {
                w.pointer("/clientConfig/service/namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|ns| namespaces.contains(ns))
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
