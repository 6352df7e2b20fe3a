//! The milestones of a Kairos workload cluster, judged from API objects (pure).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::bootstrap_rules::{self, MachineBootstrap, Summary};
use crate::health::condition_true;
use crate::output::last_line;

const CLUSTER_LABEL: &str = "cluster.x-k8s.io/cluster-name";
const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";

/// What the cluster manifest asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    pub cluster: String,
    pub namespace: String,
    pub control_plane: String,
    pub replicas: u32,
    pub workers: u32,
    /// A Machine annotation the init machine must also carry, when the user names one (the
    /// real providers write none: kairos-io/kairos-capi finds no init machine at all).
    pub init_annotation: Option<String>,
    /// The KairosControlPlane's `spec.distribution`: `k3s` is judged by the k3s rules; the
    /// providers' default is k0s.
    pub k3s: bool,
}

/// The milestones, in the order they are expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Milestone {
    BootstrapData,
    BootstrapRules,
    InitMachine,
    ControlPlaneInitialized,
    ControlPlaneReplicas,
    MachinesRunning,
    WorkloadKubeconfig,
    WorkloadNodesReady,
}

impl Milestone {
    pub const ALL: [Milestone; 8] = [
        Milestone::BootstrapData,
        Milestone::BootstrapRules,
        Milestone::InitMachine,
        Milestone::ControlPlaneInitialized,
        Milestone::ControlPlaneReplicas,
        Milestone::MachinesRunning,
        Milestone::WorkloadKubeconfig,
        Milestone::WorkloadNodesReady,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Milestone::BootstrapData => "KairosConfigs ready, data Secrets present",
            Milestone::BootstrapRules => "bootstrap data follows the init/join rules",
            Milestone::InitMachine => "one init machine, the same throughout",
            Milestone::ControlPlaneInitialized => "KairosControlPlane initialized",
            Milestone::ControlPlaneReplicas => "control-plane replicas ready and updated",
            Milestone::MachinesRunning => "Machines Running",
            Milestone::WorkloadKubeconfig => "workload kubeconfig Secret works",
            Milestone::WorkloadNodesReady => "workload Nodes Ready",
        }
    }
}

/// One milestone's state at one look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub reached: bool,
    /// A broken rule: waiting longer cannot help.
    pub broken: bool,
    pub detail: String,
}

fn state(reached: bool, detail: impl Into<String>) -> State {
    State {
        reached,
        broken: false,
        detail: detail.into(),
    }
}

fn broken(detail: impl Into<String>) -> State {
    State {
        reached: false,
        broken: true,
        detail: detail.into(),
    }
}

/// What was read from the management cluster (and the workload cluster) at one look.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub kairos_configs: Vec<Value>,
    pub machines: Vec<Value>,
    pub control_plane: Option<Value>,
    /// Bootstrap data by Secret name, decoded (`None`: the Secret does not exist).
    pub secrets: BTreeMap<String, Option<String>>,
    /// The workload cluster, once its kubeconfig Secret exists: `/readyz` and its nodes.
    pub workload: Option<(Result<String, String>, Result<Value, String>)>,
}

fn name(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// The objects that belong to cluster `cluster`.
pub fn of_cluster<'a>(items: &'a [Value], cluster: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|v| label(v, CLUSTER_LABEL) == Some(cluster))
        .collect()
}

fn is_control_plane(machine: &Value) -> bool {
    label(machine, CONTROL_PLANE_LABEL).is_some()
}

/// The Secret holding `machine`'s bootstrap data: the Machine's own reference, else its
/// KairosConfig's status.
fn data_secret(machine: &Value, configs: &[&Value]) -> Option<String> {
    if let Some(s) = machine
        .pointer("/spec/bootstrap/dataSecretName")
        .and_then(Value::as_str)
    {
        return Some(s.to_string());
    }
    let config = machine
        .pointer("/spec/bootstrap/configRef/name")
        .and_then(Value::as_str)
        .unwrap_or_else(|| name(machine));
    configs
        .iter()
        .find(|c| name(c) == config)
        .and_then(|c| c.pointer("/status/dataSecretName"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn int(v: Option<&Value>, path: &str) -> i64 {
    v.and_then(|v| v.pointer(path))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The conditions of an object that are not True, for failure messages.
pub fn false_conditions(object: &Value) -> Vec<String> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["status"] != "True")
        .map(|c| {
            format!(
                "{}={} ({}{}{})",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or(""),
                if c["message"].is_string() { ": " } else { "" },
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The control-plane Machines of the cluster that carry `annotation`.
pub fn annotated(expected: &Expected, machines: &[Value], annotation: &str) -> Vec<String> {
    of_cluster(machines, &expected.cluster)
        .into_iter()
        .filter(|m| is_control_plane(m))
        .filter(|m| {
            m.pointer("/metadata/annotations")
                .and_then(|a| a.get(annotation))
                .and_then(Value::as_str)
                .is_some_and(|v| v != "false")
        })
        .map(|m| name(m).to_string())
        .collect()
}

/// Whether a KairosConfig says its data Secret is there: `status.ready`, or Cluster API
/// v1beta2's `status.initialization.dataSecretCreated` (kairos-io/kairos-capi sets both,
/// `kairosconfig_controller.go` 520-533).
fn data_ready(config: &Value) -> bool {
    ["/status/ready", "/status/initialization/dataSecretCreated"]
        .iter()
        .any(|p| config.pointer(p).and_then(Value::as_bool) == Some(true))
}

/// The init machine milestone: found from the bootstrap data, the same at every look, and
/// carrying the annotation when the user names one.
fn init_machine(
    expected: &Expected,
    obs: &Observation,
    summary: Option<&Summary>,
    init_seen: Option<&str>,
) -> State {
    let Some(s) = summary else {
        return state(false, "waiting for the bootstrap data");
    };
    let init = s.init_machine.as_str();
    if let Some(seen) = init_seen.filter(|seen| *seen != init) {
        return broken(format!(
            "the init machine changed from {seen} to {init} while the test ran"
        ));
    }
    let Some(annotation) = &expected.init_annotation else {
        return state(
            true,
            format!("{init} (the controller without a join token)"),
        );
    };
    match annotated(expected, &obs.machines, annotation).as_slice() {
        [one] if one == init => state(true, format!("{init} ({annotation})")),
        [one] => broken(format!(
            "{one} carries {annotation}, but {init} initialises the cluster"
        )),
        [] => state(
            false,
            format!(
                "{init} initialises the cluster; no control-plane Machine has {annotation} yet"
            ),
        ),
        many => broken(format!(
            "{} Machines carry {annotation}: {}",
            many.len(),
            many.join(", ")
        )),
    }
}

/// Judges every milestone; `init_seen` is the init machine recorded at an earlier look.
pub fn evaluate(
    expected: &Expected,
    obs: &Observation,
    init_seen: Option<&str>,
) -> (BTreeMap<Milestone, State>, Option<Summary>) {
    let mut out = BTreeMap::new();
    let total = (expected.replicas + expected.workers) as usize;
    let configs = of_cluster(&obs.kairos_configs, &expected.cluster);
    let machines = of_cluster(&obs.machines, &expected.cluster);

    // Bootstrap data.
    let ready = configs
        .iter()
        .filter(|c| {
            data_ready(c)
                && c.pointer("/status/dataSecretName")
                    .and_then(Value::as_str)
                    .is_some_and(|s| matches!(obs.secrets.get(s), Some(Some(_))))
        })
        .count();
    let all_data = configs.len() == total && ready == total;
    out.insert(
        Milestone::BootstrapData,
        state(
            all_data,
            format!("{ready} of {total} KairosConfigs ready with their Secret"),
        ),
    );

    // Rules over the data of every machine.
    let bootstrap: Vec<MachineBootstrap> = machines
        .iter()
        .filter_map(|m| {
            let secret = data_secret(m, &configs)?;
            Some(MachineBootstrap {
                machine: name(m).to_string(),
                control_plane: Some(is_control_plane(m)),
                cloud_config: obs.secrets.get(&secret)?.clone()?,
            })
        })
        .collect();
    let mut summary = None;
    let rules = if bootstrap.len() < total || !all_data {
        state(
            false,
            format!(
                "{} of {total} machines have bootstrap data",
                bootstrap.len()
            ),
        )
    } else {
        let checked = if expected.k3s {
            bootstrap_rules::check_k3s(&bootstrap)
        } else {
            bootstrap_rules::check(&bootstrap, expected.replicas)
        };
        match checked {
            Ok(s) => {
                let detail = format!(
                    "init {}, {} joining controller(s), {} worker(s)",
                    s.init_machine,
                    s.joining.len(),
                    s.workers.len()
                );
                summary = Some(s);
                state(true, detail)
            }
            Err(v) => broken(
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    };
    out.insert(Milestone::BootstrapRules, rules);

    out.insert(
        Milestone::InitMachine,
        init_machine(expected, obs, summary.as_ref(), init_seen),
    );

    // The control plane's status.
    let kcp = obs.control_plane.as_ref();
    let initialized = kcp
        .and_then(|k| k.pointer("/status/initialized"))
        .and_then(Value::as_bool)
        == Some(true)
        || kcp.is_some_and(|k| {
            k.pointer("/status/initialization/controlPlaneInitialized")
                .and_then(Value::as_bool)
                == Some(true)
        });
    out.insert(
        Milestone::ControlPlaneInitialized,
        state(
            initialized,
            if initialized {
                "status.initialized".to_string()
            } else {
                kcp.map(|k| false_conditions(k).join("; "))
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "not initialized yet".into())
            },
        ),
    );
    let r = i64::from(expected.replicas);
    let (ready_r, updated, unavailable) = (
        int(kcp, "/status/readyReplicas"),
        int(kcp, "/status/updatedReplicas"),
        int(kcp, "/status/unavailableReplicas"),
    );
    out.insert(
        Milestone::ControlPlaneReplicas,
        state(
            ready_r == r && updated == r && unavailable == 0,
            format!("ready {ready_r}/{r}, updated {updated}/{r}, unavailable {unavailable}"),
        ),
    );

    // Machines.
    let running = machines
        .iter()
        .filter(|m| m.pointer("/status/phase").and_then(Value::as_str) == Some("Running"))
        .count();
    let not_running: Vec<String> = machines
        .iter()
        .filter(|m| m.pointer("/status/phase").and_then(Value::as_str) != Some("Running"))
        .map(|m| {
            format!(
                "{} {}",
                name(m),
                m.pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("Pending")
            )
        })
        .collect();
    // Cluster API marks a Machine Running only once a Node refers to it: a controller
    // without a kubelet can never get there, so waiting cannot help.
    let no_kubelet = if !expected.k3s && bootstrap.len() == total && all_data {
        bootstrap_rules::without_kubelet(&bootstrap)
    } else {
        Vec::new()
    };
    out.insert(
        Milestone::MachinesRunning,
        if !no_kubelet.is_empty() {
            broken(format!(
                "finding for the provider: {} start a k0s controller without --enable-worker (or --single), so they register no Node, and Cluster API marks a Machine Running (and the KairosControlPlane counts it ready) only once a Node refers to it; add --enable-worker to the controllers' k0s args",
                no_kubelet.join(", ")
            ))
        } else {
            state(
                machines.len() == total && running == total,
                if not_running.is_empty() {
                    format!("{running} of {total} Running")
                } else {
                    format!("{running} of {total} Running; {}", not_running.join(", "))
                },
            )
        },
    );

    // The workload cluster.
    let (api, nodes) = match &obs.workload {
        None => (
            state(false, "no kubeconfig Secret yet"),
            state(false, "no kubeconfig yet"),
        ),
        Some((readyz, nodes)) => {
            let api = match readyz {
                Ok(b) if b.trim() == "ok" => state(true, "/readyz: ok"),
                Ok(b) => state(false, format!("/readyz: {}", b.trim())),
                Err(e) => state(false, last_line(e)),
            };
            let want = summary.as_ref().map(|s| s.kubelet_machines.len());
            let nodes = match (nodes, want) {
                (Ok(list), Some(want)) => {
                    let items = list["items"].as_array().cloned().unwrap_or_default();
                    let ready = items.iter().filter(|n| condition_true(n, "Ready")).count();
                    state(
                        ready >= want && want > 0,
                        format!("{ready} of {want} Nodes Ready ({} registered)", items.len()),
                    )
                }
                (Ok(_), None) => state(false, "waiting for the bootstrap data"),
                (Err(e), _) => state(false, last_line(e)),
            };
            (api, nodes)
        }
    };
    out.insert(Milestone::WorkloadKubeconfig, api);
    out.insert(Milestone::WorkloadNodesReady, nodes);
    (out, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expected() -> Expected {
        Expected {
            cluster: "demo".into(),
            namespace: "default".into(),
            control_plane: "demo-cp".into(),
            replicas: 1,
            workers: 0,
            init_annotation: None,
            k3s: false,
        }
    }

    const ANNOTATION: &str = "example.com/init-machine";

    fn machine(name: &str, annotated: bool, phase: &str) -> Value {
        json!({"metadata": {"name": name,
            "labels": {CLUSTER_LABEL: "demo", CONTROL_PLANE_LABEL: ""},
            "annotations": if annotated { json!({ANNOTATION: "true"}) } else { json!({}) }},
            "spec": {"bootstrap": {"configRef": {"name": name}}},
            "status": {"phase": phase}})
    }

    /// A KairosConfig as kairos-io/kairos-capi leaves it: `initialization.dataSecretCreated`
    /// and a Secret named `<config>-<6 random>`.
    fn config(name: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {CLUSTER_LABEL: "demo"}},
            "status": {"initialization": {"dataSecretCreated": true}, "dataSecretName": format!("{name}-x7k2q9")}})
    }

    fn healthy() -> Observation {
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "demo-cp-0-x7k2q9".to_string(),
            Some("k0s:\n  enabled: true\n  args: [--single]\n".to_string()),
        );
        Observation {
            kairos_configs: vec![config("demo-cp-0")],
            machines: vec![machine("demo-cp-0", false, "Running")],
            control_plane: Some(
                json!({"status": {"initialized": true, "readyReplicas": 1, "updatedReplicas": 1, "unavailableReplicas": 0,
                    "conditions": [{"type": "Ready", "status": "True"}, {"type": "Available", "status": "True"}]}}),
            ),
            secrets,
            workload: Some((
                Ok("ok".into()),
                Ok(
                    json!({"items": [{"status": {"conditions": [{"type": "Ready", "status": "True"}]}}]}),
                ),
            )),
        }
    }

    #[test]
    fn a_healthy_single_node_cluster_reaches_every_milestone_without_an_annotation() {
        let (states, summary) = evaluate(&expected(), &healthy(), None);
        for m in Milestone::ALL {
            assert!(states[&m].reached, "{m:?}: {:?}", states[&m]);
        }
        assert_eq!(summary.unwrap().init_machine, "demo-cp-0");
        assert_eq!(
            states[&Milestone::InitMachine].detail,
            "demo-cp-0 (the controller without a join token)"
        );
    }

    #[test]
    fn an_init_machine_that_changes_is_broken() {
        let (states, _) = evaluate(&expected(), &healthy(), Some("demo-cp-1"));
        assert!(states[&Milestone::InitMachine].broken);
        assert!(states[&Milestone::InitMachine]
            .detail
            .contains("changed from demo-cp-1 to demo-cp-0"));
    }

    #[test]
    fn a_named_annotation_is_checked_against_the_bootstrap_data() {
        let mut e = expected();
        e.init_annotation = Some(ANNOTATION.into());
        let (s, _) = evaluate(&e, &healthy(), None);
        assert!(!s[&Milestone::InitMachine].reached && !s[&Milestone::InitMachine].broken);
        let mut o = healthy();
        o.machines = vec![machine("demo-cp-0", true, "Running")];
        assert!(evaluate(&e, &o, None).0[&Milestone::InitMachine].reached);
        o.machines.push(machine("demo-cp-1", true, "Running"));
        let (s, _) = evaluate(&e, &o, None);
        assert!(
            s[&Milestone::InitMachine].broken,
            "{:?}",
            s[&Milestone::InitMachine]
        );
    }

    #[test]
    fn controllers_without_a_kubelet_are_a_finding_at_the_first_look() {
        let mut e = expected();
        e.replicas = 3;
        let join = "k0s:\n  enabled: true\n  args: [--token-file=/etc/k0s/controller-token]\nwrite_files:\n- path: /etc/k0s/controller-token\n  content: t\n";
        let mut o = Observation {
            control_plane: Some(json!({"status": {"initialized": true, "readyReplicas": 0}})),
            workload: None,
            ..Observation::default()
        };
        for (i, data) in ["k0s:\n  enabled: true\n", join, join]
            .into_iter()
            .enumerate()
        {
            let name = format!("demo-cp-{i}");
            o.kairos_configs.push(config(&name));
            o.machines.push(machine(&name, false, "Provisioned"));
            o.secrets
                .insert(format!("{name}-x7k2q9"), Some(data.to_string()));
        }
        let (s, _) = evaluate(&e, &o, None);
        assert!(
            s[&Milestone::BootstrapRules].reached,
            "{:?}",
            s[&Milestone::BootstrapRules]
        );
        let running = &s[&Milestone::MachinesRunning];
        assert!(running.broken, "{running:?}");
        assert!(
            running.detail.starts_with("finding for the provider: demo-cp-0, demo-cp-1, demo-cp-2 start a k0s controller without --enable-worker"),
            "{}",
            running.detail
        );
    }

    #[test]
    fn waiting_states_say_what_is_missing() {
        let mut o = healthy();
        o.control_plane = Some(json!({"status": {"initialized": false, "conditions": [
            {"type": "Ready", "status": "False", "reason": "WaitingForMachines"}]}}));
        o.machines = vec![machine("demo-cp-0", false, "Provisioning")];
        o.kairos_configs = vec![
            json!({"metadata": {"name": "demo-cp-0", "labels": {CLUSTER_LABEL: "demo"}},
            "status": {"initialization": {"dataSecretCreated": false}}}),
        ];
        o.workload = None;
        let (s, _) = evaluate(&expected(), &o, None);
        assert_eq!(
            s[&Milestone::ControlPlaneInitialized].detail,
            "Ready=False (WaitingForMachines)"
        );
        assert_eq!(
            s[&Milestone::BootstrapData].detail,
            "0 of 1 KairosConfigs ready with their Secret"
        );
        assert!(!s[&Milestone::InitMachine].reached && !s[&Milestone::InitMachine].broken);
        assert_eq!(
            s[&Milestone::MachinesRunning].detail,
            "0 of 1 Running; demo-cp-0 Provisioning"
        );
        assert!(!s[&Milestone::WorkloadKubeconfig].reached);
    }
}
