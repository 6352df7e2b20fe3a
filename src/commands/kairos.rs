//! `k0slab kairos install | verify | uninstall`: the Kairos Cluster API providers on the lab.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Context;
use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::health::condition_true;
use crate::kairos::components::{self, Component, Source, Versions};
use crate::kairos::manifest;
use crate::kairos::milestones::{self, Expected, Milestone, Observation, State};
use crate::kubeconfig;
use crate::kubectl::Kubectl;
use crate::output;
use crate::process::{check_interrupted, Cmd};
use crate::progress::{format_duration, Bar, Progress};
use crate::render::MODE_PRIVATE;
use crate::tools::Tool;

/// Where `install` keeps the manifests it applied (for `uninstall`).
pub const KAIROS_DIR: &str = "kairos";
const INSTALLED: &str = "installed.json";

/// The default Machine annotation that records the init machine.
pub const INIT_ANNOTATION: &str = "controlplane.cluster.x-k8s.io/kairos-init-machine";

#[derive(Debug, Serialize, Deserialize)]
struct Installed {
    components: Vec<InstalledComponent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct InstalledComponent {
    component: Component,
    /// The manifest as applied, inside `lab/kairos/`.
    file: String,
}

fn kubectl<'a>(ctx: &'a Context<'_>, kubeconfig: &'a Path) -> Result<Kubectl<'a>> {
    Ok(Kubectl {
        path: ctx.tools.get(Tool::Kubectl)?,
        kubeconfig,
        env: ctx.env,
        out: &ctx.out,
    })
}

/// The lab's kubeconfig, which every kairos command talks to.
fn lab_kubeconfig(ctx: &Context<'_>) -> Result<PathBuf> {
    let record = ctx.record()?;
    let path = ctx.dir.join(kubeconfig::FILE_NAME);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Step(format!(
            "lab {} has no kubeconfig yet: run `k0slab up` first",
            record.name()
        )))
    }
}

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

pub fn install(ctx: &Context<'_>, o: &InstallOptions) -> Result<()> {
    let kubeconfig = lab_kubeconfig(ctx)?;
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

/// Options of `kairos verify`.
pub struct VerifyOptions {
    pub cluster_manifest: PathBuf,
    pub keep: bool,
    pub timeout: Duration,
    pub init_annotation: String,
    pub format: OutputFormat,
}

/// What the cluster manifest asks for.
fn expected(manifest_path: &Path, init_annotation: &str) -> Result<Expected> {
    let text =
        fs::read_to_string(manifest_path).map_err(|e| Error::io("reading", manifest_path, e))?;
    let docs = manifest::documents(&text)?;
    let ns_of = |d: &serde_yaml_ng::Value| {
        d.get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(|n| n.as_str())
            .unwrap_or("default")
            .to_string()
    };
    let replicas_of = |d: &serde_yaml_ng::Value| {
        d.get("spec")
            .and_then(|s| s.get("replicas"))
            .and_then(|r| r.as_u64())
            .unwrap_or(1) as u32
    };
    let cluster = docs
        .iter()
        .find(|d| manifest::kind_and_name(d).0 == "Cluster")
        .ok_or_else(|| Error::Step(format!("{} has no Cluster", manifest_path.display())))?;
    let kcp = docs
        .iter()
        .find(|d| manifest::kind_and_name(d).0 == "KairosControlPlane")
        .ok_or_else(|| {
            Error::Step(format!(
                "{} has no KairosControlPlane",
                manifest_path.display()
            ))
        })?;
    let workers = docs
        .iter()
        .filter(|d| manifest::kind_and_name(d).0 == "MachineDeployment")
        .map(replicas_of)
        .sum();
    Ok(Expected {
        cluster: manifest::kind_and_name(cluster).1.to_string(),
        namespace: ns_of(cluster),
        control_plane: manifest::kind_and_name(kcp).1.to_string(),
        replicas: replicas_of(kcp),
        workers,
        init_annotation: init_annotation.to_string(),
    })
}

fn decode_secret(secret: &Value) -> Option<String> {
    let b64 = secret.pointer("/data/value")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// One look at the management cluster (and the workload cluster, once it has a kubeconfig).
fn observe(
    ctx: &Context<'_>,
    k: &Kubectl<'_>,
    e: &Expected,
    scratch: &Path,
) -> Result<Observation> {
    let ns = e.namespace.as_str();
    let items = |kind: &str| -> Vec<Value> {
        k.get_json(&format!("listing {kind}"), &[kind, "--namespace", ns])
            .ok()
            .and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    };
    let kairos_configs = items("kairosconfigs");
    let machines = items("machines");
    let control_plane = k
        .get_json(
            "reading the KairosControlPlane",
            &["kairoscontrolplanes", &e.control_plane, "--namespace", ns],
        )
        .ok();
    let mut secrets = BTreeMap::new();
    for c in milestones::of_cluster(&kairos_configs, &e.cluster) {
        if let Some(name) = c.pointer("/status/dataSecretName").and_then(Value::as_str) {
            let data = k
                .get_json(
                    "reading bootstrap data",
                    &["secret", name, "--namespace", ns],
                )
                .ok()
                .and_then(|s| decode_secret(&s));
            secrets.insert(name.to_string(), data);
        }
    }
    let kubeconfig_secret = format!("{}-kubeconfig", e.cluster);
    let workload = k
        .get_json(
            "reading the workload kubeconfig",
            &["secret", &kubeconfig_secret, "--namespace", ns],
        )
        .ok()
        .and_then(|s| decode_secret(&s))
        .map(|text| -> Result<_> {
            let path = scratch.join("workload-kubeconfig");
            write_atomic(&path, text.as_bytes(), MODE_PRIVATE)?;
            let w = kubectl(ctx, &path)?;
            Ok((
                w.readyz().map_err(|e| e.to_string()),
                w.get_json("listing the workload cluster's nodes", &["nodes"])
                    .map_err(|e| e.to_string()),
            ))
        })
        .transpose()?;
    Ok(Observation {
        kairos_configs,
        machines,
        control_plane,
        secrets,
        workload,
    })
}

#[derive(Serialize)]
struct MilestoneReport {
    milestone: Milestone,
    title: &'static str,
    reached: bool,
    /// Seconds after the manifest was applied.
    reached_after_s: Option<f64>,
    detail: String,
}

#[derive(Serialize)]
struct VerifyReport<'a> {
    cluster: &'a str,
    namespace: &'a str,
    replicas: u32,
    workers: u32,
    passed: bool,
    failure: Option<String>,
    milestones: Vec<MilestoneReport>,
    kept: bool,
}

pub fn verify(ctx: &Context<'_>, o: &VerifyOptions) -> Result<()> {
    let kubeconfig = lab_kubeconfig(ctx)?;
    let k = kubectl(ctx, &kubeconfig)?;
    let e = expected(&o.cluster_manifest, &o.init_annotation)?;
    let scratch = tempfile::tempdir()
        .map_err(|err| Error::io("creating a temporary directory", std::env::temp_dir(), err))?;
    k.apply(
        "applying the workload cluster manifest",
        &o.cluster_manifest,
    )?;
    let started = Instant::now();
    let progress = Progress::new(&ctx.out);
    let spinner = progress.spinner("verify");
    let mut reached: BTreeMap<Milestone, Duration> = BTreeMap::new();
    let mut init_seen: Option<String> = None;
    let mut confirmed = false;
    let (last, failure) = loop {
        let obs = observe(ctx, &k, &e, scratch.path())?;
        let (states, _) = milestones::evaluate(&e, &obs, init_seen.as_deref());
        for (m, s) in &states {
            if s.reached {
                reached.entry(*m).or_insert_with(|| started.elapsed());
            }
        }
        if states[&Milestone::InitMachineRecorded].reached {
            if let [one] = milestones::recorded_init(&e, &obs.machines).as_slice() {
                init_seen.get_or_insert_with(|| one.clone());
            }
        }
        let done = states.values().filter(|s| s.reached).count();
        spinner.message(&format!("{done} of {} milestones", states.len()));
        if let Some((m, s)) = states.iter().find(|(_, s)| s.broken) {
            break (states.clone(), Some(format!("{}: {}", m.title(), s.detail)));
        }
        if done == states.len() {
            // One more look: the init machine must not change once everything is up.
            if confirmed {
                break (states, None);
            }
            confirmed = true;
            continue;
        }
        if started.elapsed() >= o.timeout {
            let (m, s): (&Milestone, &State) = states
                .iter()
                .find(|(_, s)| !s.reached)
                .expect("one is missing");
            let mut why = format!(
                "{} not reached after {}: {}",
                m.title(),
                format_duration(o.timeout),
                s.detail
            );
            if let Some(kcp) = &obs.control_plane {
                let c = milestones::false_conditions(kcp);
                if !c.is_empty() {
                    why.push_str(&format!(
                        "\n  KairosControlPlane {} conditions: {}",
                        e.control_plane,
                        c.join("; ")
                    ));
                }
            }
            break (states, Some(why));
        }
        std::thread::sleep(ctx.poll_interval());
        check_interrupted()?;
    };
    match &failure {
        None => spinner.done("every milestone reached"),
        Some(_) => spinner.failed("verification failed"),
    }
    let report = VerifyReport {
        cluster: &e.cluster,
        namespace: &e.namespace,
        replicas: e.replicas,
        workers: e.workers,
        passed: failure.is_none(),
        failure: failure.clone(),
        kept: o.keep,
        milestones: Milestone::ALL
            .iter()
            .map(|m| MilestoneReport {
                milestone: *m,
                title: m.title(),
                reached: last[m].reached,
                reached_after_s: reached
                    .get(m)
                    .filter(|_| last[m].reached)
                    .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
                detail: last[m].detail.clone(),
            })
            .collect(),
    };
    match o.format {
        OutputFormat::Json => ctx
            .out
            .result(&serde_json::to_string_pretty(&report).expect("serialises")),
        OutputFormat::Table => ctx.out.result(&output::table(
            &["milestone", "status", "at", "detail"],
            report
                .milestones
                .iter()
                .map(|m| {
                    vec![
                        m.title.to_string(),
                        if m.reached {
                            "ok"
                        } else if last[&m.milestone].broken {
                            "BROKEN"
                        } else {
                            "FAIL"
                        }
                        .to_string(),
                        m.reached_after_s.map_or("-".into(), |s| format!("{s:.1}s")),
                        m.detail.clone(),
                    ]
                })
                .collect(),
            &[2],
        )),
    }
    if o.keep {
        ctx.out.progress(&format!(
            "kept workload cluster {}/{} (--keep); delete it with: kubectl --kubeconfig {} delete -f {}",
            e.namespace,
            e.cluster,
            kubeconfig.display(),
            o.cluster_manifest.display()
        ));
    } else {
        k.delete_file("deleting the workload cluster", &o.cluster_manifest, true)?;
        ctx.out.progress(&format!(
            "deleted workload cluster {}/{}",
            e.namespace, e.cluster
        ));
    }
    match failure {
        None => Ok(()),
        Some(why) => Err(Error::Unhealthy(format!(
            "kairos verify failed for cluster {}: {why}",
            e.cluster
        ))),
    }
}
