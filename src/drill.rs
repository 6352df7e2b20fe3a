//! `k0slab drill`: what breaking the lab should do, from its topology (pure). The commands
//! that break it and watch are in `commands/drill.rs`.
//!
//! etcd answers only while a majority of its members runs: N members tolerate ⌊(N−1)/2⌋
//! down (etcd-io/etcd `server/etcdserver/api/etcdhttp/health.go` lines 99-101: no leader, no
//! health), and the API server's `/readyz` fails its etcd check without it (kubernetes/apiserver
//! `pkg/server/healthz/healthz.go` lines 295, 313). A `single` lab stores in kine, not etcd.

use std::time::Duration;

use serde::Serialize;

use crate::error::InputError;
use crate::roles::Role;
use crate::topology::{EndpointKind, Node, NodeKind, Topology};

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
    /// Whether the stopped machines that run a kubelet are still Ready when they are looked
    /// at; `None`: not judged (none stopped, the API is expected down, or the look falls near
    /// the end of the node controller's grace period, where either can be seen).
    pub node_ready: Option<bool>,
}

/// How often the node controller looks at the nodes' heartbeats: kube-controller-manager's
/// `--node-monitor-period`, 5 s by default (kubernetes/kubernetes
/// `staging/src/k8s.io/cloud-provider/config/v1alpha1/defaults.go`, `NodeMonitorPeriod`).
pub const NODE_MONITOR_PERIOD: Duration = Duration::from_secs(5);
/// How often a kubelet renews its Lease, the heartbeat the node controller reads: a quarter of
/// `nodeLeaseDurationSeconds` (40 s), so 10 s (kubernetes/kubernetes `pkg/kubelet/kubelet.go`,
/// `nodeLeaseRenewIntervalFraction = 0.25`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// How long the node controller lets a node go without a heartbeat before it marks it NotReady
/// (Ready "Unknown"): kube-controller-manager's `--node-monitor-grace-period`, which k0s leaves
/// at Kubernetes' default (k0sproject/k0s `pkg/component/controller/controllermanager.go`
/// lines 41-48 and 83-98 set no such flag; only a user's `extraArgs` would, and k0slab writes
/// none). The default is 40 s (kubernetes/kubernetes
/// `pkg/controller/nodelifecycle/config/v1alpha1/defaults.go`), 50 s since Kubernetes
/// v1.32.0-alpha.2 (kubernetes/kubernetes#126287, `CHANGELOG/CHANGELOG-1.32.md`). `kubelet`:
/// the lab's Kubernetes release, as its nodes report it (k0s ships one release of all
/// components); unknown: the newer default.
pub fn node_grace_period(kubelet: Option<(u32, u32, u32)>) -> Duration {
    match kubelet {
        Some(v) if v < (1, 32, 0) => Duration::from_secs(40),
        _ => Duration::from_secs(50),
    }
}

/// When the stopped nodes are looked at: how long after their halt began and after it ended,
/// against the node controller's grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub grace: Duration,
    pub since_halt_began: Duration,
    pub since_halted: Duration,
}

impl Watch {
    /// The look as planned: right after the window of `observe`.
    pub fn planned(grace: Duration, observe: Duration) -> Self {
        Self {
            grace,
            since_halt_began: observe,
            since_halted: observe,
        }
    }

    /// Whether a node stopped then is still Ready at the look. Its last heartbeat came at most
    /// [`HEARTBEAT_INTERVAL`] before the halt began and at the latest when it ended; the node
    /// controller marks it NotReady at its first look ([`NODE_MONITOR_PERIOD`]) after that
    /// heartbeat plus the grace period. `None`: the look may fall either side.
    pub fn node_ready(&self) -> Option<bool> {
        if self.since_halted >= self.grace + NODE_MONITOR_PERIOD {
            Some(false)
        } else if self.since_halt_began + HEARTBEAT_INTERVAL < self.grace {
            Some(true)
        } else {
            None
        }
    }

    fn describe(&self, nodes: &[String]) -> String {
        let nodes = nodes.join(", ");
        let grace = self.grace.as_secs();
        let watched = crate::progress::format_duration(self.since_halt_began);
        match self.node_ready() {
            Some(false) => format!(
                "{nodes} NotReady {watched} after the stop: the node controller's {grace}s \
                 grace period is over"
            ),
            Some(true) => format!(
                "{nodes} still Ready {watched} after the stop: the node controller marks it \
                 NotReady only after its {grace}s grace period"
            ),
            None => format!(
                "{nodes} Ready or NotReady {watched} after the stop, near the end of the node \
                 controller's {grace}s grace period"
            ),
        }
    }
}

/// The etcd members of the lab: its controllers, unless a `single` lab stores in kine.
pub fn members(record: &Topology) -> usize {
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

fn controllers(record: &Topology) -> Vec<&Node> {
    record.nodes.iter().filter(|n| n.is_controller()).collect()
}

fn workers(record: &Topology) -> Vec<&Node> {
    record
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Worker)
        .collect()
}

/// The scenarios of `all` for this lab, in order.
pub fn all(record: &Topology) -> Vec<Scenario> {
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
pub fn parse(words: &[String], record: &Topology) -> Result<Vec<Scenario>, InputError> {
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
                record.name.as_str(),
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
                        record.name.as_str()
                    )));
                };
                s.machine = Some(w);
            }
            Kind::EndpointDown if record.endpoint.kind != EndpointKind::Haproxy => {
                return Err(InputError::Rule(format!(
                    "endpoint-down: lab {}'s endpoint is {}, not a load-balancer VM",
                    record.name.as_str(),
                    record.endpoint.describe()
                )));
            }
            Kind::QuorumLoss if members(record) < 2 => {
                return Err(InputError::Rule(format!(
                    "quorum-loss: lab {} has {} etcd members; use controller-down",
                    record.name.as_str(),
                    members(record)
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The controllers `quorum-loss` stops: a majority, the last ones first.
pub fn majority(record: &Topology) -> Vec<String> {
    let c = controllers(record);
    let k = c.len() / 2 + 1;
    c.iter().rev().take(k).map(|n| n.name.clone()).collect()
}

/// What the lab should do with `stopped` down, by scenario, looked at as `watch` says.
pub fn expect(kind: Kind, stopped: &[String], record: &Topology, watch: &Watch) -> Expectation {
    let mut e = expect_api(kind, stopped, record);
    let kubelets: Vec<String> = stopped
        .iter()
        .filter(|s| record.node(s).is_some_and(Node::runs_kubelet))
        .cloned()
        .collect();
    // The nodes can be looked at only through an API that answers.
    if e.available && !kubelets.is_empty() {
        e.node_ready = watch.node_ready();
        e.reason = format!("{}; {}", e.reason, watch.describe(&kubelets));
    }
    e
}

fn expect_api(kind: Kind, stopped: &[String], record: &Topology) -> Expectation {
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
                node_ready: None,
            }
        } else if (n - down) * 2 > n {
            Expectation {
                available: true,
                reason: reason_ok,
                node_ready: None,
            }
        } else {
            Expectation {
                available: false,
                reason: format!(
                    "{n} etcd members: losing {down} loses quorum ({} tolerated)",
                    tolerated(n)
                ),
                node_ready: None,
            }
        }
    };
    match kind {
        Kind::ControllerDown | Kind::QuorumLoss if endpoint_is_first => Expectation {
            available: false,
            reason: "the API endpoint is control-plane-1's own address (no HA endpoint)".into(),
            node_ready: None,
        },
        Kind::ControllerDown | Kind::QuorumLoss => quorum(format!(
            "{n} etcd members: losing {down} keeps quorum ({} of {n} left)",
            n - down
        )),
        Kind::WorkerDown => Expectation {
            available: true,
            reason: "a worker holds no etcd member".into(),
            node_ready: None,
        },
        Kind::EndpointDown => Expectation {
            available: false,
            reason: "the endpoint is the load-balancer VM: the API is unreachable through it \
                     while the controllers stay healthy"
                .into(),
            node_ready: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::{resolve, Flags, LabName};
    use crate::topology::Topology;

    fn record(env: &[(&str, &str)]) -> Topology {
        let inputs = resolve(
            &Flags::default(),
            &crate::environment::Environment::from_pairs(env.iter().copied()),
            None,
            &LabName::try_from("k0slab".to_string()).unwrap(),
        )
        .unwrap()
        .inputs;
        Topology::resolve(&inputs).unwrap()
    }

    #[test]
    fn quorum_by_member_count() {
        assert_eq!(
            [1, 2, 3, 4, 5, 7].map(tolerated),
            [0, 0, 1, 1, 2, 3],
            "N members tolerate (N-1)/2 down"
        );
        let three = record(&[("control_plane_count", "3"), ("worker_count", "2")]);
        let watch = Watch::planned(node_grace_period(None), Duration::from_secs(75));
        let e = expect(
            Kind::ControllerDown,
            &["control-plane-3".into()],
            &three,
            &watch,
        );
        assert!(e.available, "{e:?}");
        assert_eq!(
            e.reason,
            "3 etcd members: losing 1 keeps quorum (2 of 3 left)"
        );
        let e = expect(Kind::QuorumLoss, &majority(&three), &three, &watch);
        assert!(!e.available);
        assert_eq!(majority(&three), ["control-plane-3", "control-plane-2"]);
        let two = record(&[("control_plane_count", "2"), ("worker_count", "1")]);
        let e = expect(
            Kind::ControllerDown,
            &["control-plane-2".into()],
            &two,
            &watch,
        );
        assert!(!e.available);
        assert!(
            e.reason
                .starts_with("2 etcd members: losing 1 loses quorum"),
            "{e:?}"
        );
    }

    #[test]
    fn a_stopped_node_is_expected_as_the_grace_period_allows_in_the_window() {
        assert_eq!(node_grace_period(Some((1, 31, 9))), Duration::from_secs(40));
        assert_eq!(node_grace_period(Some((1, 32, 0))), Duration::from_secs(50));
        assert_eq!(node_grace_period(Some((1, 34, 1))), Duration::from_secs(50));
        assert_eq!(node_grace_period(None), Duration::from_secs(50));
        let grace = Duration::from_secs(50);
        let at = |began: u64, ended: u64| {
            Watch {
                grace,
                since_halt_began: Duration::from_millis(began),
                since_halted: Duration::from_millis(ended),
            }
            .node_ready()
        };
        // The default window (75 s) ends after grace + the monitor period: NotReady.
        assert_eq!(at(75_000, 75_000), Some(false));
        assert_eq!(at(60_000, 55_000), Some(false));
        // A short window ends before the earliest heartbeat plus grace: still Ready.
        assert_eq!(at(1_500, 1_500), Some(true));
        assert_eq!(at(39_900, 39_000), Some(true));
        // Near the end of the grace period either can be seen: not judged.
        assert_eq!(at(40_000, 40_000), None);
        assert_eq!(at(54_000, 54_000), None);
        // A long halt counts from its start for Ready and from its end for NotReady.
        assert_eq!(at(45_000, 5_000), None);

        let three = record(&[("control_plane_count", "3"), ("worker_count", "2")]);
        let worker = ["worker-1".to_string()];
        let short = expect(
            Kind::WorkerDown,
            &worker,
            &three,
            &Watch::planned(grace, Duration::from_millis(1500)),
        );
        assert_eq!(short.node_ready, Some(true));
        assert_eq!(
            short.reason,
            "a worker holds no etcd member; worker-1 still Ready 1.5s after the stop: the node \
             controller marks it NotReady only after its 50s grace period"
        );
        let long = expect(
            Kind::WorkerDown,
            &worker,
            &three,
            &Watch::planned(grace, Duration::from_secs(75)),
        );
        assert_eq!(long.node_ready, Some(false));
        assert_eq!(
            long.reason,
            "a worker holds no etcd member; worker-1 NotReady 1m15s after the stop: the node \
             controller's 50s grace period is over"
        );
        // A pure controller has no Node; with the API down no node can be looked at.
        let w = Watch::planned(grace, Duration::from_secs(75));
        let c = expect(
            Kind::ControllerDown,
            &["control-plane-3".into()],
            &three,
            &w,
        );
        assert_eq!(c.node_ready, None);
        let q = expect(Kind::QuorumLoss, &majority(&three), &three, &w);
        assert_eq!((q.available, q.node_ready), (false, None));
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
