//! Health checks of a running lab, from what kubectl and Vagrant report.
//!
//! Gathering ([`Facts`]) is separate from judging ([`evaluate`]), which is pure and unit
//! tested against API objects. The checks, one line each:
//! - every machine of the lab runs, as Vagrant reports it (a stopped one is named, with
//!   `k0slab up` to start it);
//! - the API answers `/readyz` through the endpoint;
//! - exactly the nodes that run a kubelet are Kubernetes Nodes (pure controllers are not);
//! - each of them is Ready, with InternalIP = its static address, the taints and labels of
//!   its role;
//! - etcd has one member per controller, each at its planned address (a `single` node stores
//!   in kine and runs no etcd: then storage is checked instead);
//! - every kube-system pod is Running and Ready.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::output::last_line;
use crate::roles::Role;
use crate::tools::vagrant::MachineState;
use crate::topology::{Endpoint, Node};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// What was observed; each part is the tool's answer or why there is none.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Each machine's state, from `vagrant status`.
    pub machines: Result<BTreeMap<String, MachineState>, String>,
    pub readyz: Result<String, String>,
    pub nodes: Result<Value, String>,
    pub pods: Result<Value, String>,
    /// `k0s etcd member-list` output from a controller.
    pub etcd: Result<String, String>,
}

const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
const TAINT_KEYS: [&str; 2] = [
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
];

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn items(list: &Value) -> Vec<&Value> {
    list.get("items")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

/// `(major, minor, patch)` of a kubelet version like `v1.33.4+k0s`.
pub fn kubelet_version(node: &Value) -> Option<(u32, u32, u32)> {
    let v = str_at(node, &["status", "nodeInfo", "kubeletVersion"])?;
    let core = v.trim_start_matches('v').split(['+', '-']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// Whether an API object's status condition `kind` is "True".
pub fn condition_true(object: &Value, kind: &str) -> bool {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .is_some_and(|c| c["status"] == "True")
}

/// A Node's InternalIP addresses.
pub fn internal_ips(node: &Value) -> Vec<&str> {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|a| a["type"] == "InternalIP")
                .filter_map(|a| a["address"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

fn check_node(expected: &Node, node: &Value) -> Check {
    let name = format!("node {}", expected.name);
    let mut problems = Vec::new();
    if !condition_true(node, "Ready") {
        problems.push("NotReady".to_string());
    }
    let internal = internal_ips(node);
    let want_ip = expected.address.to_string();
    if internal != [want_ip.as_str()] {
        problems.push(format!(
            "InternalIP {} (expected {want_ip})",
            internal.join(",")
        ));
    }
    let taints: Vec<String> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter(|t| t["effect"] == "NoSchedule")
                .filter_map(|t| t["key"].as_str())
                .filter(|k| TAINT_KEYS.contains(k))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let labelled = node
        .pointer("/metadata/labels")
        .and_then(|l| l.get(CONTROL_PLANE_LABEL))
        .is_some_and(|v| v == "true");
    match expected.role {
        Some(Role::ControllerWorker) => {
            if expected.no_taints && !taints.is_empty() {
                problems.push(format!("tainted {} though noTaints", taints.join(",")));
            }
            if !expected.no_taints {
                // k0s v1.33.1 renamed the taint from master to control-plane.
                let key = match kubelet_version(node) {
                    Some(v) if v < (1, 33, 1) => TAINT_KEYS[1],
                    _ => TAINT_KEYS[0],
                };
                if !taints.iter().any(|t| t == key) {
                    problems.push(format!("missing taint {key}:NoSchedule"));
                }
            }
            if !labelled {
                problems.push(format!("missing label {CONTROL_PLANE_LABEL}=true"));
            }
        }
        Some(Role::Worker) => {
            if !taints.is_empty() {
                problems.push(format!(
                    "control-plane taint {} on a worker",
                    taints.join(",")
                ));
            }
            if labelled {
                problems.push("control-plane label on a worker".into());
            }
        }
        _ => {
            if !taints.is_empty() {
                problems.push(format!("tainted {}", taints.join(",")));
            }
        }
    }
    if problems.is_empty() {
        let taint_note = if taints.is_empty() {
            "no taints"
        } else {
            "tainted"
        };
        Check::new(name, true, format!("Ready, {want_ip}, {taint_note}"))
    } else {
        Check::new(name, false, problems.join("; "))
    }
}

fn check_nodes(nodes: &[Node], listed: &Value) -> Vec<Check> {
    let by_name: BTreeMap<&str, &Value> = items(listed)
        .into_iter()
        .filter_map(|n| Some((str_at(n, &["metadata", "name"])?, n)))
        .collect();
    let expected: Vec<&Node> = nodes.iter().filter(|n| n.runs_kubelet()).collect();
    let want: BTreeSet<&str> = expected.iter().map(|n| n.name.as_str()).collect();
    let have: BTreeSet<&str> = by_name.keys().copied().collect();
    let missing: Vec<&str> = want.difference(&have).copied().collect();
    let extra: Vec<&str> = have.difference(&want).copied().collect();
    let pure_controllers = nodes
        .iter()
        .filter(|n| n.role == Some(Role::Controller))
        .count();
    let mut detail = format!(
        "{} of {} registered",
        want.len() - missing.len(),
        want.len()
    );
    if pure_controllers > 0 {
        detail.push_str(&format!(
            " ({pure_controllers} controller-only node(s) run no kubelet)"
        ));
    }
    if !missing.is_empty() {
        detail.push_str(&format!("; missing: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        detail.push_str(&format!("; unexpected: {}", extra.join(", ")));
    }
    let mut checks = vec![Check::new(
        "nodes",
        missing.is_empty() && extra.is_empty(),
        detail,
    )];
    checks.extend(
        expected
            .iter()
            .filter_map(|n| by_name.get(n.name.as_str()).map(|v| check_node(n, v))),
    );
    checks
}

/// k0s `--single` stores in kine and runs no etcd: `k0s etcd member-list` then fails with
/// "wrong storage type: kine" (k0sproject/k0s `cmd/etcd/etcd.go` lines 36-37). That failure is
/// the healthy answer for a single-node lab.
const KINE_ERROR: &str = "wrong storage type: kine";

fn check_kine(member_list: &Result<String, String>) -> Check {
    match member_list {
        Err(e) if e.contains(KINE_ERROR) => Check::new(
            "storage",
            true,
            "kine, as k0s --single uses (no etcd to check)",
        ),
        Ok(out) => Check::new(
            "storage",
            false,
            format!("a single-node lab runs etcd, not kine: {}", last_line(out)),
        ),
        Err(e) => Check::new("storage", false, last_line(e)),
    }
}

fn check_etcd(nodes: &[Node], output: &str) -> Check {
    let controllers: Vec<&Node> = nodes.iter().filter(|n| n.is_controller()).collect();
    let json = output.find('{').and_then(|i| {
        serde_json::Deserializer::from_str(&output[i..])
            .into_iter::<Value>()
            .next()?
            .ok()
    });
    let Some(members) = json
        .as_ref()
        .and_then(|j| j.get("members"))
        .and_then(Value::as_object)
    else {
        return Check::new(
            "etcd",
            false,
            format!("no member list: {}", last_line(output)),
        );
    };
    let mut problems = Vec::new();
    for c in &controllers {
        match members.get(&c.name).and_then(Value::as_str) {
            None => problems.push(format!("{} is not a member", c.name)),
            Some(url) if !url.contains(&format!("//{}:", c.address)) => {
                problems.push(format!("{} peers at {url}, not {}", c.name, c.address))
            }
            Some(_) => {}
        }
    }
    for name in members.keys() {
        if !controllers.iter().any(|c| &c.name == name) {
            problems.push(format!("unexpected member {name}"));
        }
    }
    if problems.is_empty() {
        Check::new(
            "etcd",
            true,
            format!(
                "{}, one per controller",
                crate::output::count(members.len(), "member")
            ),
        )
    } else {
        Check::new(
            "etcd",
            false,
            format!(
                "{} for {}: {}",
                crate::output::count(members.len(), "member"),
                crate::output::count(controllers.len(), "controller"),
                problems.join("; ")
            ),
        )
    }
}

fn check_pods(pods: &Value) -> Check {
    let mut total = 0;
    let mut not_ready = Vec::new();
    for pod in items(pods) {
        let phase = str_at(pod, &["status", "phase"]).unwrap_or("");
        if phase == "Succeeded" {
            continue;
        }
        total += 1;
        if phase != "Running" || !condition_true(pod, "Ready") {
            let name = str_at(pod, &["metadata", "name"]).unwrap_or("?");
            not_ready.push(format!("{name} ({phase})"));
        }
    }
    if total == 0 {
        Check::new("kube-system pods", false, "no pods yet")
    } else if not_ready.is_empty() {
        Check::new(
            "kube-system pods",
            true,
            format!("{total} of {total} Running and Ready"),
        )
    } else {
        Check::new(
            "kube-system pods",
            false,
            format!(
                "{} of {total} not ready: {}",
                not_ready.len(),
                not_ready.join(", ")
            ),
        )
    }
}

/// What to do about machines that are not running: `k0slab up` starts (or creates) them.
pub const START_HINT: &str = "run `k0slab up`";

/// Every machine of the plan running, else the ones that are not, by state.
fn check_machines(nodes: &[Node], states: &BTreeMap<String, MachineState>) -> Check {
    let mut by_state: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for n in nodes {
        let state = states
            .get(&n.name)
            .map_or_else(|| "unknown to Vagrant".to_string(), ToString::to_string);
        if states.get(&n.name) != Some(&MachineState::Running) {
            by_state.entry(state).or_default().push(&n.name);
        }
    }
    if by_state.is_empty() {
        return Check::new(
            "machines",
            true,
            format!("{} of {} running", nodes.len(), nodes.len()),
        );
    }
    let parts: Vec<String> = by_state
        .iter()
        .map(|(state, names)| format!("{state}: {}", names.join(", ")))
        .collect();
    Check::new(
        "machines",
        false,
        format!("{}: {START_HINT}", parts.join("; ")),
    )
}

/// Judges the facts against the lab's plan.
pub fn evaluate(nodes: &[Node], endpoint: &Endpoint, facts: &Facts) -> Vec<Check> {
    let mut checks = vec![match &facts.machines {
        Ok(states) => check_machines(nodes, states),
        Err(e) => Check::new(
            "machines",
            false,
            format!("Vagrant could not tell: {}", last_line(e)),
        ),
    }];
    checks.push(match &facts.readyz {
        Ok(body) if body.trim() == "ok" => {
            Check::new("API", true, format!("{}/readyz: ok", endpoint.url()))
        }
        Ok(body) => Check::new(
            "API",
            false,
            format!("{}/readyz: {}", endpoint.url(), last_line(body)),
        ),
        Err(e) => Check::new(
            "API",
            false,
            format!("{} unreachable: {}", endpoint.url(), last_line(e)),
        ),
    });
    match &facts.nodes {
        Ok(list) => checks.extend(check_nodes(nodes, list)),
        Err(e) => checks.push(Check::new("nodes", false, last_line(e))),
    }
    let single = nodes.iter().any(|n| n.role == Some(Role::Single));
    checks.push(match (&facts.etcd, single) {
        (result, true) => check_kine(result),
        (Ok(out), false) => check_etcd(nodes, out),
        (Err(e), false) => Check::new("etcd", false, last_line(e)),
    });
    checks.push(match &facts.pods {
        Ok(list) => check_pods(list),
        Err(e) => Check::new("kube-system pods", false, last_line(e)),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{EndpointKind, NodeKind};
    use serde_json::json;

    fn node(name: &str, role: Role, ip: &str, no_taints: bool) -> Node {
        Node {
            name: name.into(),
            kind: if role == Role::Worker {
                NodeKind::Worker
            } else {
                NodeKind::Controller
            },
            role: Some(role),
            address: ip.parse().unwrap(),
            cpus: 2,
            memory_mb: 2048,
            disk_gb: 32,
            no_taints,
            nested: false,
        }
    }

    fn lab() -> Vec<Node> {
        vec![
            node(
                "control-plane-1",
                Role::ControllerWorker,
                "192.168.64.10",
                true,
            ),
            node("control-plane-2", Role::Controller, "192.168.64.11", false),
            node("control-plane-3", Role::Controller, "192.168.64.12", false),
            node("worker-1", Role::Worker, "192.168.64.20", false),
        ]
    }

    fn endpoint() -> Endpoint {
        Endpoint {
            kind: EndpointKind::Cplb,
            address: "192.168.64.100".parse().unwrap(),
        }
    }

    fn k8s_node(name: &str, ip: &str, ready: bool, cp: bool, taint: Option<&str>) -> Value {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if cp {
            labels[CONTROL_PLANE_LABEL] = json!("true");
        }
        json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taint.map(|k| vec![json!({"key": k, "effect": "NoSchedule"})]).unwrap_or_default()},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": "v1.33.4+k0s"}
            }
        })
    }

    fn running(nodes: &[Node]) -> BTreeMap<String, MachineState> {
        nodes
            .iter()
            .map(|n| (n.name.clone(), MachineState::Running))
            .collect()
    }

    fn healthy() -> Facts {
        Facts {
            machines: Ok(running(&lab())),
            readyz: Ok("ok".into()),
            nodes: Ok(json!({"items": [
                k8s_node("control-plane-1", "192.168.64.10", true, true, None),
                k8s_node("worker-1", "192.168.64.20", true, false, None),
            ]})),
            pods: Ok(json!({"items": [
                {"metadata": {"name": "coredns-1"}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
                {"metadata": {"name": "job-done"}, "status": {"phase": "Succeeded"}},
            ]})),
            etcd: Ok("{\"members\":{\"control-plane-1\":\"https://192.168.64.10:2380\",\"control-plane-2\":\"https://192.168.64.11:2380\",\"control-plane-3\":\"https://192.168.64.12:2380\"}}\n".into()),
        }
    }

    fn failing(checks: &[Check]) -> Vec<(String, String)> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| (c.name.clone(), c.detail.clone()))
            .collect()
    }

    #[test]
    fn a_healthy_lab_passes_every_check() {
        let checks = evaluate(&lab(), &endpoint(), &healthy());
        assert_eq!(failing(&checks), vec![]);
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "machines",
                "API",
                "nodes",
                "node control-plane-1",
                "node worker-1",
                "etcd",
                "kube-system pods"
            ]
        );
        assert_eq!(checks[0].detail, "4 of 4 running");
        assert!(checks[2]
            .detail
            .contains("2 of 2 registered (2 controller-only node(s) run no kubelet)"));
        assert_eq!(checks[6].detail, "1 of 1 Running and Ready");
    }

    #[test]
    fn each_problem_is_named() {
        let mut f = healthy();
        f.readyz = Err(
            "Unable to connect to the server: dial tcp 192.168.64.100:6443: i/o timeout".into(),
        );
        f.nodes = Ok(json!({"items": [
            k8s_node("control-plane-1", "192.168.64.10", true, true, Some("node-role.kubernetes.io/control-plane")),
            k8s_node("control-plane-2", "192.168.64.11", true, true, None),
            k8s_node("worker-1", "192.168.64.5", false, false, None),
        ]}));
        f.etcd = Ok("{\"members\":{\"control-plane-1\":\"https://192.168.64.10:2380\",\"control-plane-2\":\"https://192.168.64.7:2380\"}}".into());
        f.pods = Ok(json!({"items": [
            {"metadata": {"name": "kube-proxy-x"}, "status": {"phase": "Pending"}},
        ]}));
        let got = failing(&evaluate(&lab(), &endpoint(), &f));
        let text = format!("{got:?}");
        for expect in [
            "unreachable: Unable to connect",
            "unexpected: control-plane-2",
            "tainted node-role.kubernetes.io/control-plane though noTaints",
            "NotReady",
            "InternalIP 192.168.64.5 (expected 192.168.64.20)",
            "control-plane-2 peers at https://192.168.64.7:2380, not 192.168.64.11",
            "control-plane-3 is not a member",
            "kube-proxy-x (Pending)",
        ] {
            assert!(text.contains(expect), "{expect} in {text}");
        }
        assert_eq!(got.len(), 6);
    }

    #[test]
    fn stopped_machines_are_named_with_how_to_start_them() {
        let mut states = running(&lab());
        states.insert("control-plane-2".into(), MachineState::Stopped);
        states.insert("worker-1".into(), MachineState::Stopped);
        states.remove("control-plane-3");
        let mut f = healthy();
        f.machines = Ok(states);
        let got = failing(&evaluate(&lab(), &endpoint(), &f));
        assert_eq!(
            got,
            [(
                "machines".to_string(),
                "stopped: control-plane-2, worker-1; unknown to Vagrant: control-plane-3: run \
                 `k0slab up`"
                    .to_string()
            )]
        );
        f.machines = Err("vagrant failed:\nsomething broke".into());
        let got = failing(&evaluate(&lab(), &endpoint(), &f));
        assert_eq!(
            got[0],
            (
                "machines".into(),
                "Vagrant could not tell: something broke".into()
            )
        );
    }

    #[test]
    fn controller_worker_without_no_taints_needs_the_versioned_taint() {
        let cw = node(
            "control-plane-1",
            Role::ControllerWorker,
            "192.168.64.10",
            false,
        );
        let mut n = k8s_node(
            "control-plane-1",
            "192.168.64.10",
            true,
            true,
            Some("node-role.kubernetes.io/control-plane"),
        );
        assert!(check_node(&cw, &n).ok);
        n["status"]["nodeInfo"]["kubeletVersion"] = json!("v1.32.5+k0s");
        let c = check_node(&cw, &n);
        assert!(
            !c.ok && c.detail.contains("node-role.kubernetes.io/master"),
            "{c:?}"
        );
    }

    #[test]
    fn missing_nodes_and_errors() {
        let mut f = healthy();
        f.nodes =
            Ok(json!({"items": [k8s_node("control-plane-1", "192.168.64.10", true, true, None)]}));
        f.etcd = Err("vagrant ssh failed".into());
        f.pods = Ok(json!({"items": []}));
        let got = failing(&evaluate(&lab(), &endpoint(), &f));
        assert_eq!(
            got[0],
            (
                "nodes".into(),
                "1 of 2 registered (2 controller-only node(s) run no kubelet); missing: worker-1"
                    .into()
            )
        );
        assert_eq!(got[1].0, "etcd");
        assert_eq!(got[2], ("kube-system pods".into(), "no pods yet".into()));
    }

    #[test]
    fn a_single_node_stores_in_kine_and_that_is_healthy() {
        let single = [node(
            "control-plane-1",
            Role::Single,
            "192.168.64.10",
            false,
        )];
        let kine = Err(
            "`vagrant ssh` failed: exit status 1:\nError: wrong storage type: kine".to_string(),
        );
        let c = check_kine(&kine);
        assert!(c.ok && c.name == "storage", "{c:?}");
        let c = check_kine(&Ok(
            "{\"members\":{\"control-plane-1\":\"https://192.168.64.10:2380\"}}".into(),
        ));
        assert!(!c.ok, "etcd on a single node is not what k0s --single does");
        let c = check_kine(&Err("ssh: connect to host: no route".into()));
        assert!(!c.ok);
        assert_eq!(single[0].role, Some(Role::Single));
        // Everywhere else the kine answer is a failure of the etcd check.
        let mut f = healthy();
        f.etcd = kine;
        let got = evaluate(&lab(), &endpoint(), &f);
        let etcd = got.iter().find(|c| c.name == "etcd").unwrap();
        assert!(!etcd.ok);
    }
}
