//! k0sctl.yaml parsed back and held to k0sctl's own rules, for every scenario and a sweep of
//! topologies: apiVersion/kind, at least one controller, unique addresses, `single` alone,
//! `noTaints` only with `controller+worker`, privateAddress a valid IP, plus k0slab's own
//! promises (node-ip flags, sans, CPLB/NLLB or externalAddress, telemetry off).

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k0slab::environment::Environment;
use k0slab::inputs::{self, Flags, LabName};
use k0slab::topology::{EndpointKind, Topology};
use serde_yaml_ng::Value;

/// Checks one k0sctl.yaml; returns the problems found (empty when it is valid).
fn problems(yaml: &str, topology: &Topology) -> Vec<String> {
    let mut p = Vec::new();
    let doc: Value = match serde_yaml_ng::from_str(yaml) {
        Ok(v) => v,
        Err(e) => return vec![format!("not YAML: {e}")],
    };
    let s = |v: &Value| v.as_str().map(str::to_string);
    if s(&doc["apiVersion"]).as_deref() != Some("k0sctl.k0sproject.io/v1beta1") {
        p.push("apiVersion".into());
    }
    if s(&doc["kind"]).as_deref() != Some("Cluster") {
        p.push("kind".into());
    }
    if s(&doc["metadata"]["name"]).as_deref() != Some(topology.name.as_str()) {
        p.push("metadata.name is not the lab name".into());
    }
    let hosts = doc["spec"]["hosts"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let roles: Vec<String> = hosts.iter().filter_map(|h| s(&h["role"])).collect();
    if roles.len() != hosts.len() {
        p.push("a host without a role".into());
    }
    let valid = ["controller", "worker", "controller+worker", "single"];
    if let Some(r) = roles.iter().find(|r| !valid.contains(&r.as_str())) {
        p.push(format!("unknown role {r}"));
    }
    if !roles.iter().any(|r| r != "worker") {
        p.push("no controller".into());
    }
    if roles.iter().any(|r| r == "single") && hosts.len() != 1 {
        p.push("single is not the only host".into());
    }
    let mut seen = BTreeSet::new();
    for h in &hosts {
        let role = s(&h["role"]).unwrap_or_default();
        let addr = s(&h["ssh"]["address"]).unwrap_or_default();
        if !seen.insert(addr.clone()) {
            p.push(format!("duplicate address {addr}"));
        }
        let private = s(&h["privateAddress"]).unwrap_or_default();
        if private.parse::<Ipv4Addr>().is_err() {
            p.push(format!("privateAddress {private:?} is not an IP"));
        }
        if private != addr {
            p.push(format!("{addr}: privateAddress differs from ssh.address"));
        }
        if h["noTaints"].as_bool() == Some(true) && role != "controller+worker" {
            p.push(format!("{addr}: noTaints with role {role}"));
        }
        if h["uploadBinary"].as_bool() != Some(true) {
            p.push(format!("{addr}: uploadBinary is not true"));
        }
        if s(&h["ssh"]["user"]).as_deref() != Some("admin") {
            p.push(format!("{addr}: ssh.user"));
        }
        if !s(&h["ssh"]["keyPath"]).is_some_and(|k| k.ends_with("/id_ed25519")) {
            p.push(format!("{addr}: ssh.keyPath"));
        }
        let flags: Vec<String> = h["installFlags"]
            .as_sequence()
            .map(|f| f.iter().filter_map(s).collect())
            .unwrap_or_default();
        let node_ip = format!("--kubelet-extra-args=--node-ip={private}");
        let wants_kubelet = role != "controller";
        if wants_kubelet != flags.contains(&node_ip) {
            p.push(format!("{addr}: node-ip flag for role {role}: {flags:?}"));
        }
    }
    let spec = &doc["spec"]["k0s"]["config"]["spec"];
    let endpoint = topology.endpoint.address.to_string();
    let sans: Vec<String> = spec["api"]["sans"]
        .as_sequence()
        .map(|v| v.iter().filter_map(s).collect())
        .unwrap_or_default();
    if !sans.contains(&endpoint) {
        p.push(format!("endpoint {endpoint} not in sans {sans:?}"));
    }
    if spec["telemetry"]["enabled"].as_bool() != Some(false) {
        p.push("telemetry not disabled".into());
    }
    let external = s(&spec["api"]["externalAddress"]);
    let cplb = &spec["network"]["controlPlaneLoadBalancing"];
    let nllb = &spec["network"]["nodeLocalLoadBalancing"];
    // Pod traffic between nodes must be tunnelled: Softnet drops packets from pod addresses.
    if spec["network"]["provider"] != "calico" || spec["network"]["calico"]["mode"] != "vxlan" {
        p.push("pod network is not Calico in VXLAN mode".into());
    }
    match topology.endpoint.kind {
        EndpointKind::Cplb => {
            if external.is_some() {
                p.push("externalAddress with CPLB/NLLB".into());
            }
            if cplb["enabled"].as_bool() != Some(true)
                || s(&cplb["type"]).as_deref() != Some("Keepalived")
            {
                p.push("CPLB not enabled as Keepalived".into());
            }
            let vrrp = &cplb["keepalived"]["vrrpInstances"][0];
            let vip = format!("{endpoint}/{}", topology.subnet.prefix_len());
            if vrrp["virtualIPs"][0].as_str() != Some(vip.as_str()) {
                p.push(format!("VIP is not {vip}"));
            }
            if !s(&vrrp["authPass"]).is_some_and(|a| !a.is_empty() && a.len() <= 8) {
                p.push("authPass missing or longer than 8".into());
            }
            if !cplb["keepalived"]["virtualServers"].is_null() {
                p.push("virtualServers are not supported with controller+worker".into());
            }
            if nllb["enabled"].as_bool() != Some(true) {
                p.push("NLLB not enabled".into());
            }
        }
        EndpointKind::Haproxy => {
            if external.as_deref() != Some(endpoint.as_str()) {
                p.push("externalAddress is not the load balancer".into());
            }
            if !cplb.is_null() || !nllb.is_null() {
                p.push("load balancing in haproxy mode (NLLB forbids externalAddress)".into());
            }
        }
        EndpointKind::None => {
            if external.is_some() || !cplb.is_null() || !nllb.is_null() {
                p.push("endpoint none with externalAddress or load balancing".into());
            }
        }
    }
    match &topology.k0s_version {
        Some(v) => {
            if s(&doc["spec"]["k0s"]["version"]).as_deref() != Some(v.as_str()) {
                p.push("pinned version missing".into());
            }
        }
        None => {
            if !doc["spec"]["k0s"]["version"].is_null() {
                p.push("version set though not pinned".into());
            }
        }
    }
    let expected_hosts = topology.cluster_nodes().count();
    if hosts.len() != expected_hosts {
        p.push(format!("{} hosts, expected {expected_hosts}", hosts.len()));
    }
    p
}

#[test]
fn scenarios_follow_k0sctl_rules() {
    for (scenario, env) in common::SCENARIOS {
        let (topology, files) = common::render(env);
        let found = problems(common::file(&files, "k0sctl.yaml"), &topology);
        assert!(found.is_empty(), "{scenario}: {found:?}");
    }
}

#[test]
fn the_done_criterion_of_three_plus_two() {
    let (_, files) = common::render(&[("control_plane_count", "3"), ("worker_count", "2")]);
    let doc: Value = serde_yaml_ng::from_str(common::file(&files, "k0sctl.yaml")).unwrap();
    let hosts: Vec<(String, String, bool)> = doc["spec"]["hosts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["hostname"].as_str().unwrap().to_string(),
                format!(
                    "{} {}",
                    h["role"].as_str().unwrap(),
                    h["ssh"]["address"].as_str().unwrap()
                ),
                h["noTaints"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let expect = |n: &str, r: &str, t| (n.to_string(), r.to_string(), t);
    assert_eq!(
        hosts,
        vec![
            expect("control-plane-1", "controller+worker 192.168.64.10", true),
            expect("control-plane-2", "controller 192.168.64.11", false),
            expect("control-plane-3", "controller 192.168.64.12", false),
            expect("worker-1", "worker 192.168.64.20", false),
            expect("worker-2", "worker 192.168.64.21", false),
        ]
    );
    let sans = &doc["spec"]["k0s"]["config"]["spec"]["api"]["sans"];
    assert_eq!(sans[0].as_str(), Some("192.168.64.100"));
}

#[test]
fn every_valid_topology_follows_k0sctl_rules() {
    let mut rendered = 0;
    for controllers in 1..=10u32 {
        for workers in [0u32, 1, 2, 7, 80] {
            for workloads in ["true", "false"] {
                for endpoint in ["auto", "none", "haproxy"] {
                    let c = controllers.to_string();
                    let w = workers.to_string();
                    let env = [
                        ("control_plane_count", c.as_str()),
                        ("worker_count", w.as_str()),
                        ("K0SLAB_CONTROLLER_WORKLOADS", workloads),
                        ("K0SLAB_ENDPOINT", endpoint),
                    ];
                    let inputs = inputs::resolve(
                        &Flags::default(),
                        &Environment::from_pairs(env),
                        None,
                        &LabName::try_from("k0slab".to_string()).unwrap(),
                    )
                    .unwrap()
                    .inputs;
                    let refused = (workloads == "false" && workers == 0)
                        || (endpoint == "haproxy" && controllers == 1);
                    match Topology::resolve(&inputs) {
                        Err(e) => assert!(refused, "{env:?} refused: {e}"),
                        Ok(_) => {
                            assert!(!refused, "{env:?} accepted");
                            let (topology, files) = common::render(&env);
                            let found = problems(common::file(&files, "k0sctl.yaml"), &topology);
                            assert!(found.is_empty(), "{env:?}: {found:?}");
                            rendered += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(rendered > 250, "{rendered}");
}

#[test]
fn the_checker_catches_broken_files() {
    let (topology, files) = common::render(&[("control_plane_count", "3"), ("worker_count", "2")]);
    let good = common::file(&files, "k0sctl.yaml");
    assert!(problems(good, &topology).is_empty());
    let broken = [
        good.replacen("role: controller\n", "role: single\n", 1),
        good.replacen("    noTaints: true", "    noTaints: true\n", 1)
            .replacen("role: controller+worker", "role: controller", 1),
        good.replacen(
            "privateAddress: 192.168.64.11",
            "privateAddress: 192.168.64.300",
            1,
        ),
        good.replacen("address: 192.168.64.12", "address: 192.168.64.11", 1),
        good.replace("kind: Cluster", "kind: Clusters"),
        good.replace("- 192.168.64.100\n", "- 192.168.64.99\n"),
        good.replace(
            "telemetry:\n          enabled: false",
            "telemetry:\n          enabled: true",
        ),
        good.replacen(
            "    - --kubelet-extra-args=--node-ip=192.168.64.20\n",
            "",
            1,
        ),
    ];
    for (i, b) in broken.iter().enumerate() {
        assert_ne!(b, good, "case {i} changed nothing");
        assert!(!problems(b, &topology).is_empty(), "case {i} passed:\n{b}");
    }
}
