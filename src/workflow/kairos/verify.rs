//! `kairos verify`: a workload cluster followed through its milestones.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::{kubectl, lab_kubeconfig};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::kairos::kubevirt;
use crate::kairos::manifest;
use crate::kairos::milestones::{self, Expected, Milestone, Observation, State};
use crate::lab::files::MODE_PRIVATE;
use crate::output;
use crate::output::OutputFormat;
use crate::progress::{format_duration, Progress};
use crate::tools::kubectl::Kubectl;
use crate::tools::process::check_interrupted;
use crate::workflow::context::Context;

/// Options of `kairos verify`.
pub struct VerifyOptions {
    pub cluster_manifest: PathBuf,
    pub keep: bool,
    /// `None`: 30 minutes, or the provider's own budgets for a KubeVirt cluster.
    pub timeout: Option<Duration>,
    pub init_annotation: Option<String>,
    pub format: OutputFormat,
}

/// What the cluster manifest asks for.
fn expected(manifest_path: &Path, init_annotation: Option<&str>) -> Result<Expected> {
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
        init_annotation: init_annotation.map(str::to_string),
        k3s: kcp
            .get("spec")
            .and_then(|s| s.get("distribution"))
            .and_then(|d| d.as_str())
            == Some("k3s"),
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

/// The documents of `manifest` that do not exist on the cluster yet, as one YAML text with
/// the Cluster first: deleting it first lets Cluster API remove what it owns in order.
fn not_yet_there(k: &Kubectl<'_>, manifest: &Path, scratch: &Path) -> Result<String> {
    let text = fs::read_to_string(manifest).map_err(|e| Error::io("reading", manifest, e))?;
    let mut docs = manifest::documents(&text)?;
    docs.sort_by_key(|d| manifest::kind_and_name(d).0 != "Cluster");
    let probe = scratch.join("probe.yaml");
    let mut created = Vec::new();
    for doc in docs {
        let one = serde_yaml_ng::to_string(&doc).map_err(|e| Error::Step(e.to_string()))?;
        write_atomic(&probe, one.as_bytes(), MODE_PRIVATE)?;
        let (kind, name) = manifest::kind_and_name(&doc);
        match k.get_file(&format!("looking up {kind} {name}"), &probe) {
            // Nothing printed, or (as some kubectl versions print it) an empty List.
            Ok(found)
                if found.trim().is_empty()
                    || serde_json::from_str::<Value>(&found).is_ok_and(|v| {
                        v["kind"] == "List" && v["items"].as_array().is_some_and(Vec::is_empty)
                    }) =>
            {
                created.push(one)
            }
            Ok(_) => {}
            // A kind the cluster does not know yet has no objects either.
            Err(Error::CommandFailed { stderr, .. })
                if stderr.contains("resource mapping not found")
                    || stderr.contains("doesn't have a resource type") =>
            {
                created.push(one)
            }
            Err(err) => return Err(err),
        }
    }
    Ok(created.join("---\n"))
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

/// A KubeVirt workload cluster's budgets, the provider's own e2e's (kairos-io/
/// cluster-api-provider-kairos c300236 `test/e2e/scenarios_test.go` 142-192): 45 minutes to
/// Provisioned, 50 for the control plane (the OS install alone takes 20-25 on a small VM), 15
/// for a Ready Node.
const CAPK_TIMEOUT: Duration = Duration::from_secs((45 + 50 + 15) * 60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A KubeVirt cluster's control-plane endpoint, which the lab gives it: the lab has no
/// LoadBalancer controller (and Softnet drops addresses beside a VM's lease), so `verify`
/// writes the `<cluster>-control-plane-lb` Service's status itself, with a nested worker's
/// own address ([`kubevirt::pick_ingress`]).
struct Endpoint {
    service: String,
    namespace: String,
    ip: Ipv4Addr,
    set: bool,
}

impl Endpoint {
    fn choose(ctx: &Context<'_>, k: &Kubectl<'_>, e: &Expected) -> Result<Endpoint> {
        let record = ctx.record()?;
        let workers: Vec<Ipv4Addr> = record
            .nodes
            .iter()
            .filter(|n| n.nested && !n.is_controller())
            .map(|n| n.address)
            .collect();
        let service = kubevirt::lb_service(&e.cluster);
        let services = k.get_json(
            "listing the LoadBalancer Services",
            &["services", "--all-namespaces"],
        )?;
        let taken: Vec<Ipv4Addr> = services["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                !(s.pointer("/metadata/name").and_then(Value::as_str) == Some(service.as_str())
                    && s.pointer("/metadata/namespace").and_then(Value::as_str)
                        == Some(e.namespace.as_str()))
            })
            .filter_map(|s| kubevirt::ingress_ip(s)?.parse().ok())
            .collect();
        let ip = kubevirt::pick_ingress(&workers, &taken).ok_or_else(|| {
            Error::Step(if workers.is_empty() {
                format!(
                    "lab {} has no nested workers, whose address a KubeVirt cluster's control-plane \
                     Service needs (and whose /dev/kvm its VMs need): recreate it with K0SLAB_NESTED=workers",
                    record.name()
                )
            } else {
                format!(
                    "every nested worker's address is the control-plane endpoint of another workload \
                     cluster already ({}): delete one first",
                    taken.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )
            })
        })?;
        Ok(Endpoint {
            service,
            namespace: e.namespace.clone(),
            ip,
            set: false,
        })
    }

    /// Gives the Service its address once the provider made it.
    fn settle(&mut self, ctx: &Context<'_>, k: &Kubectl<'_>) -> Result<()> {
        let found = k
            .get_json(
                "reading the control-plane Service",
                &["services", &self.service, "--namespace", &self.namespace],
            )
            .ok();
        let Some(svc) = found else {
            return Ok(());
        };
        if kubevirt::ingress_ip(&svc).is_some() {
            return Ok(());
        }
        let patch = format!(
            r#"{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"{}","ipMode":"VIP"}}]}}}}}}"#,
            self.ip
        );
        k.patch_status(
            "giving the control-plane Service its address",
            "service",
            &self.service,
            &self.namespace,
            &patch,
        )?;
        if !self.set {
            self.set = true;
            ctx.out.progress(&format!(
                "Service {}/{} gets {}:6443, a nested worker's own address: kube-proxy on every node forwards it to the workload API",
                self.namespace, self.service, self.ip
            ));
        }
        Ok(())
    }
}

/// The workload VMs and volumes of a KubeVirt cluster's namespace, as one line.
fn vm_phases(k: &Kubectl<'_>, namespace: &str) -> String {
    let items = |kind: &str| -> Vec<Value> {
        k.get_json(
            &format!("listing {kind}"),
            &[kind, "--namespace", namespace],
        )
        .ok()
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
    };
    kubevirt::phases(
        &items("virtualmachineinstances.kubevirt.io"),
        &items("virtualmachines.kubevirt.io"),
        &items("datavolumes.cdi.kubevirt.io"),
    )
}

pub fn verify(ctx: &Context<'_>, o: &VerifyOptions) -> Result<()> {
    if !o.cluster_manifest.is_file() {
        return Err(crate::error::InputError::Invalid {
            origin: "flag --cluster-manifest".into(),
            value: o.cluster_manifest.display().to_string(),
            allowed: "an existing manifest file".into(),
        }
        .into());
    }
    let kubeconfig = lab_kubeconfig(ctx)?;
    let k = kubectl(ctx, &kubeconfig)?;
    let e = expected(&o.cluster_manifest, o.init_annotation.as_deref())?;
    let capk = {
        let text = fs::read_to_string(&o.cluster_manifest)
            .map_err(|err| Error::io("reading", &o.cluster_manifest, err))?;
        let docs = manifest::documents(&text)?;
        let refused = kubevirt::arm64_refusals(&docs);
        if !refused.is_empty() {
            return Err(Error::Step(format!(
                "{} asks for VMs KubeVirt refuses on arm64 (every VM of this lab is arm64; kubevirt \
                 pkg/virt-api/webhooks/arm64.go), so no workload machine could ever start; nothing was \
                 applied:\n  {}",
                o.cluster_manifest.display(),
                refused.join("\n  ")
            )));
        }
        kubevirt::is_capk(&docs)
    };
    let timeout = o
        .timeout
        .unwrap_or(if capk { CAPK_TIMEOUT } else { DEFAULT_TIMEOUT });
    let mut endpoint = if capk {
        Some(Endpoint::choose(ctx, &k, &e)?)
    } else {
        None
    };
    let scratch = tempfile::tempdir()
        .map_err(|err| Error::io("creating a temporary directory", std::env::temp_dir(), err))?;
    // What the manifest adds (and so what the clean-up may remove): not what existed before,
    // such as credentials a sample asks users to create first.
    let created = not_yet_there(&k, &o.cluster_manifest, scratch.path())?;
    let created_file = scratch.path().join("created.yaml");
    write_atomic(&created_file, created.as_bytes(), MODE_PRIVATE)?;
    if let Err(refused) = k.apply(
        "applying the workload cluster manifest",
        &o.cluster_manifest,
    ) {
        // kubectl applies the objects it accepts: take them back unless asked to keep them.
        if !o.keep {
            k.delete_file("deleting what was applied", &created_file, true)?;
        }
        return Err(refused);
    }
    let started = Instant::now();
    let progress = Progress::new(&ctx.out);
    let spinner = progress.spinner("verify");
    let mut reached: BTreeMap<Milestone, Duration> = BTreeMap::new();
    let mut init_seen: Option<String> = None;
    let mut confirmed = false;
    let (last, failure) = loop {
        if let Some(endpoint) = endpoint.as_mut() {
            endpoint.settle(ctx, &k)?;
        }
        let vms = if capk {
            vm_phases(&k, &e.namespace)
        } else {
            String::new()
        };
        let obs = observe(ctx, &k, &e, scratch.path())?;
        let (states, summary) = milestones::evaluate(&e, &obs, init_seen.as_deref());
        for (m, s) in &states {
            if s.reached {
                reached.entry(*m).or_insert_with(|| started.elapsed());
            }
        }
        // The init machine is tracked from the first look whose bootstrap data names one.
        if let Some(s) = summary {
            init_seen.get_or_insert(s.init_machine);
        }
        let done = states.values().filter(|s| s.reached).count();
        spinner.message(&if vms.is_empty() {
            format!("{done} of {} milestones", states.len())
        } else {
            format!("{done} of {} milestones; {vms}", states.len())
        });
        let broken: Vec<String> = states
            .iter()
            .filter(|(_, s)| s.broken)
            .map(|(m, s)| format!("{}: {}", m.title(), s.detail))
            .collect();
        if !broken.is_empty() {
            let mut why = broken.join("\n  ");
            if capk && why.contains("without --enable-worker") {
                why.push_str(&format!("\n  {}", kubevirt::CAPK_K0S_HA));
            }
            break (states.clone(), Some(why));
        }
        if done == states.len() {
            // One more look: the init machine must not change once everything is up.
            if confirmed {
                break (states, None);
            }
            confirmed = true;
            continue;
        }
        if started.elapsed() >= timeout {
            let (m, s): (&Milestone, &State) = states
                .iter()
                .find(|(_, s)| !s.reached)
                .expect("one is missing");
            let mut why = format!(
                "{} not reached after {}: {}",
                m.title(),
                format_duration(timeout),
                s.detail
            );
            if !vms.is_empty() {
                why.push_str(&format!("\n  KubeVirt: {vms}"));
            }
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
            "kept workload cluster {}/{} (--keep); delete it with: kubectl --kubeconfig {} delete cluster {} --namespace {}",
            e.namespace,
            e.cluster,
            kubeconfig.display(),
            e.cluster,
            e.namespace
        ));
    } else {
        k.delete_file("deleting the workload cluster", &created_file, true)?;
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
