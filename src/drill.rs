//! `k0slab drill`: what breaking the lab should do, from its topology (pure). The commands
//! that break it and watch are in `commands/drill.rs`.
//!
//! etcd answers only while a majority of its members runs: N members tolerate ⌊(N−1)/2⌋
//! down (etcd-io/etcd `server/etcdserver/api/etcdhttp/health.go` lines 99-101: no leader, no
//! health), and the API server's `/readyz` fails its etcd check without it (kubernetes/apiserver
//! `pkg/server/healthz/healthz.go` lines 295, 313). A `single` lab stores in kine, not etcd.

use serde::Serialize;

use crate::error::InputError;
use crate::lab_json::LabRecord;
use crate::roles::Role;
use crate::topology::{EndpointKind, Node, NodeKind};

/// What a scenario breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    ControllerDown,
    WorkerDown,
    EndpointDown,
    QuorumLoss,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::ControllerDown => "controller-down",
            Kind::WorkerDown => "worker-down",
            Kind::EndpointDown => "endpoint-down",
            Kind::QuorumLoss => "quorum-loss",
        }
    }

    fn parse(word: &str) -> Option<Kind> {
        [
            Kind::ControllerDown,
            Kind::WorkerDown,
            Kind::EndpointDown,
            Kind::QuorumLoss,
        ]
        .into_iter()
        .find(|k| k.name() == word)
    }
}

/// One scenario: what to stop. `machine` is `None` for "the etcd leader", found at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub kind: Kind,
    pub machine: Option<String>,
}

/// The expected outcome and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expectation {
    pub available: bool,
    pub reason: String,
}

/// The etcd members of the lab: its controllers, unless a `single` lab stores in kine.
pub fn members(record: &LabRecord) -> usize {
    let controllers: Vec<&Node> = record.nodes.iter().filter(|n| n.is_controller()).collect();
    if controllers.iter().any(|n| n.role == Some(Role::Single)) {
        0
    } else {
        controllers.len()
    }
}

/// How many members N tolerate down.
pub fn tolerated(n: usize) -> usize {
    n.saturating_sub(1) / 2
}

fn controllers(record: &LabRecord) -> Vec<&Node> {
    record.nodes.iter().filter(|n| n.is_controller()).collect()
}

fn workers(record: &LabRecord) -> Vec<&Node> {
    record
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Worker)
        .collect()
}

/// The scenarios of `all` for this lab, in order.
pub fn all(record: &LabRecord) -> Vec<Scenario> {
    let mut out = vec![Scenario {
        kind: Kind::ControllerDown,
        machine: None,
    }];
    if let Some(w) = workers(record).first() {
        out.push(Scenario {
            kind: Kind::WorkerDown,
            machine: Some(w.name.clone()),
        });
    }
    if record.endpoint.kind == EndpointKind::Haproxy {
        out.push(Scenario {
            kind: Kind::EndpointDown,
            machine: None,
        });
    }
    if members(record) >= 2 {
        out.push(Scenario {
            kind: Kind::QuorumLoss,
            machine: None,
        });
    }
    out
}

/// `drill [SCENARIO [NAME]]…`: scenario words, each optionally followed by a machine name.
pub fn parse(words: &[String], record: &LabRecord) -> Result<Vec<Scenario>, InputError> {
    const ALLOWED: &str =
        "controller-down [NAME], worker-down [NAME], endpoint-down, quorum-loss or all";
    if words.is_empty() {
        return Ok(all(record));
    }
    let mut out: Vec<Scenario> = Vec::new();
    for word in words {
        if word == "all" {
            out.extend(all(record));
            continue;
        }
        if let Some(kind) = Kind::parse(word) {
            out.push(Scenario {
                kind,
                machine: None,
            });
            continue;
        }
        // A machine name for the scenario before it.
        let Some(last) = out.last_mut().filter(|s| {
            s.machine.is_none() && matches!(s.kind, Kind::ControllerDown | Kind::WorkerDown)
        }) else {
            return Err(InputError::Invalid {
                origin: "drill scenario".into(),
                value: word.clone(),
                allowed: ALLOWED.into(),
            });
        };
        let fits = match last.kind {
            Kind::ControllerDown => controllers(record).iter().any(|n| n.name == *word),
            _ => workers(record).iter().any(|n| n.name == *word),
        };
        if !fits {
            return Err(InputError::Rule(format!(
                "{} {word}: lab {} has no {} {word}",
                last.kind.name(),
                record.name(),
                if last.kind == Kind::ControllerDown {
                    "controller"
                } else {
                    "worker"
                }
            )));
        }
        last.machine = Some(word.clone());
    }
    for s in &mut out {
        match s.kind {
            Kind::WorkerDown if s.machine.is_none() => {
                let Some(w) = workers(record).first().map(|w| w.name.clone()) else {
                    return Err(InputError::Rule(format!(
                        "worker-down: lab {} has no workers",
                        record.name()
                    )));
                };
                s.machine = Some(w);
            }
            Kind::EndpointDown if record.endpoint.kind != EndpointKind::Haproxy => {
                return Err(InputError::Rule(format!(
                    "endpoint-down: lab {}'s endpoint is {}, not a load-balancer VM",
                    record.name(),
                    record.endpoint.describe()
                )));
            }
            Kind::QuorumLoss if members(record) < 2 => {
                return Err(InputError::Rule(format!(
                    "quorum-loss: lab {} has {} etcd members; use controller-down",
                    record.name(),
                    members(record)
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The controllers `quorum-loss` stops: a majority, the last ones first.
pub fn majority(record: &LabRecord) -> Vec<String> {
    let c = controllers(record);
    let k = c.len() / 2 + 1;
    c.iter().rev().take(k).map(|n| n.name.clone()).collect()
}

/// What the lab should do with `stopped` down, by scenario.
pub fn expect(kind: Kind, stopped: &[String], record: &LabRecord) -> Expectation {
    let n = members(record);
    let down = stopped
        .iter()
        .filter(|s| controllers(record).iter().any(|c| c.name == **s))
        .count();
    let endpoint_is_first = record.endpoint.kind == EndpointKind::None
        && stopped.iter().any(|s| {
            record
                .node(s)
                .is_some_and(|n| n.address == record.endpoint.address)
        });
    let quorum = |reason_ok: String| {
        if n == 0 {
            Expectation {
                available: false,
                reason: "1 controller storing in kine: the API goes with it".into(),
            }
        } else if (n - down) * 2 > n {
            Expectation {
                available: true,
                reason: reason_ok,
            }
        } else {
            Expectation {
                available: false,
                reason: format!(
                    "{n} etcd members: losing {down} loses quorum ({} tolerated)",
                    tolerated(n)
                ),
            }
        }
    };
    match kind {
        Kind::ControllerDown | Kind::QuorumLoss if endpoint_is_first => Expectation {
            available: false,
            reason: "the API endpoint is control-plane-1's own address (no HA endpoint)".into(),
        },
        Kind::ControllerDown | Kind::QuorumLoss => quorum(format!(
            "{n} etcd members: losing {down} keeps quorum ({} of {n} left)",
            n - down
        )),
        Kind::WorkerDown => Expectation {
            available: true,
            reason: "a worker holds no etcd member; it turns NotReady".into(),
        },
        Kind::EndpointDown => Expectation {
            available: false,
            reason: "the endpoint is the load-balancer VM: the API is unreachable through it \
                     while the controllers stay healthy"
                .into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{resolve, Flags, LabName};
    use crate::topology::Topology;

    fn record(env: &[(&str, &str)]) -> LabRecord {
        let inputs = resolve(
            &Flags::default(),
            &crate::environment::Environment::from_pairs(env.iter().copied()),
            None,
            &LabName::try_from("k0slab".to_string()).unwrap(),
        )
        .unwrap()
        .inputs;
        let t = Topology::resolve(&inputs).unwrap();
        LabRecord {
            schema: 1,
            k0slab_version: "t".into(),
            inputs,
            nodes: t.nodes.clone(),
            endpoint: t.endpoint,
            secrets: crate::lab_json::Secrets {
                vrrp_auth_pass: "x".into(),
            },
            files: vec![],
            written: Default::default(),
            merged_into: vec![],
            assigned: Default::default(),
        }
    }

    #[test]
    fn quorum_by_member_count() {
        assert_eq!(
            [1, 2, 3, 4, 5, 7].map(tolerated),
            [0, 0, 1, 1, 2, 3],
            "N members tolerate (N-1)/2 down"
        );
        let three = record(&[("control_plane_count", "3"), ("worker_count", "2")]);
        let e = expect(Kind::ControllerDown, &["control-plane-3".into()], &three);
        assert!(e.available, "{e:?}");
        assert_eq!(
            e.reason,
            "3 etcd members: losing 1 keeps quorum (2 of 3 left)"
        );
        let e = expect(Kind::QuorumLoss, &majority(&three), &three);
        assert!(!e.available);
        assert_eq!(majority(&three), ["control-plane-3", "control-plane-2"]);
        let two = record(&[("control_plane_count", "2"), ("worker_count", "1")]);
        let e = expect(Kind::ControllerDown, &["control-plane-2".into()], &two);
        assert!(!e.available);
        assert!(
            e.reason
                .starts_with("2 etcd members: losing 1 loses quorum"),
            "{e:?}"
        );
    }

    #[test]
    fn all_depends_on_the_topology_and_names_are_checked() {
        let three = record(&[("control_plane_count", "3"), ("worker_count", "2")]);
        let kinds: Vec<Kind> = all(&three).iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::ControllerDown,
                Kind::WorkerDown,
                Kind::EndpointDown,
                Kind::QuorumLoss
            ]
        );
        let single = record(&[("worker_count", "0")]);
        assert_eq!(all(&single).len(), 1);
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let s = parse(
            &words(&["controller-down", "control-plane-2", "worker-down"]),
            &three,
        )
        .unwrap();
        assert_eq!(s[0].machine.as_deref(), Some("control-plane-2"));
        assert_eq!(s[1].machine.as_deref(), Some("worker-1"));
        assert!(parse(&words(&["controller-down", "worker-1"]), &three).is_err());
        assert!(parse(&words(&["explode"]), &three).is_err());
        assert!(parse(&words(&["endpoint-down"]), &single).is_err());
        assert!(parse(&words(&["quorum-loss"]), &single).is_err());
    }
}
