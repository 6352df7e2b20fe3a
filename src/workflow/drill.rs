//! The drill: proves the HA control plane by breaking it. For each scenario: check the
//! lab is healthy, stop the machine(s), poll the API through the endpoint and read etcd from a
//! surviving controller, start them again, wait until the lab is healthy and etcd is whole
//! again, and compare with what the topology expects ([`crate::drill`]).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::drill::{self, Expectation, Kind, Scenario};
use crate::error::Result;
use crate::lab::record::LabRecord;
use crate::output::first_line;
use crate::output::OutputFormat;
use crate::progress::{format_duration, Progress};
use crate::tools::kubectl::Kubectl;
use crate::tools::Tool;
use crate::topology::{Topology, LOAD_BALANCER_NAME};
use crate::workflow::context::Context;

/// k0s' etcd client certificate and CA (k0sproject/k0s `pkg/apis/k0s/v1beta1/storage.go`
/// lines 282-305, `pkg/config/cfgvars.go` lines 156, 172); etcd serves clients on
/// 127.0.0.1:2379 only, with client-cert-auth (`pkg/component/controller/etcd.go` 171-188).
/// The ConfigMap `quorum-loss --restore` writes before the backup and looks for after it.
const MARKER: &str = "k0slab-drill-marker";

const ETCD_CURL: &str = "sudo curl -s --max-time 3 --cacert /var/lib/k0s/pki/etcd/ca.crt \
     --cert /var/lib/k0s/pki/apiserver-etcd-client.crt \
     --key /var/lib/k0s/pki/apiserver-etcd-client.key";

/// Options of `drill`.
pub struct DrillOptions {
    pub scenarios: Vec<String>,
    /// `vagrant halt --force` instead of a clean shutdown.
    pub hard: bool,
    /// quorum-loss recovers by restoring a backup into fresh VMs instead of restarting them.
    pub restore: bool,
    pub format: OutputFormat,
}

/// Timings, from `K0SLAB_DRILL_*` (tests shorten them).
struct Timing {
    poll: Duration,
    observe: Duration,
    recover: Duration,
}

fn duration(ctx: &Context<'_>, var: &str, default: Duration) -> Result<Duration> {
    Ok(crate::inputs::duration_var(ctx.env, var, default)?)
}

/// One row of the verdict table.
#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub stopped: Vec<String>,
    pub expected: Expectation,
    /// `None`: not observed (the lab was not healthy first).
    pub observed_available: Option<bool>,
    pub observed: String,
    /// The longest run of failed polls of `/readyz` through the endpoint, seconds.
    pub api_downtime_s: f64,
    pub node_ready_again_s: Option<f64>,
    pub etcd_whole_again_s: Option<f64>,
    pub passed: bool,
}

/// The longest run of failures in a series of (time, ok) polls.
fn longest_outage(polls: &[(Instant, bool)]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since: Option<Instant> = None;
    for (t, ok) in polls {
        match (ok, since) {
            (false, None) => since = Some(*t),
            (true, Some(s)) => {
                longest = longest.max(t.duration_since(s));
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some((last, _))) = (since, polls.last()) {
        longest = longest.max(last.duration_since(s));
    }
    longest
}

struct Drill<'c, 'e> {
    ctx: &'c Context<'e>,
    record: LabRecord,
    /// The record's topology, which the scenarios are judged by.
    topology: Topology,
    kubectl_path: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
    timing: Timing,
    hard: bool,
    restore: bool,
}

impl Drill<'_, '_> {
    fn kubectl(&self) -> Kubectl<'_> {
        Kubectl {
            path: &self.kubectl_path,
            kubeconfig: &self.kubeconfig,
            env: self.ctx.env,
            out: &self.ctx.out,
        }
    }

    fn api_ok(&self) -> bool {
        self.kubectl().readyz_within(Duration::from_secs(1)).is_ok()
    }

    fn on(&self, machine: &str, command: &str) -> std::result::Result<String, String> {
        self.ctx
            .vagrant()
            .map_err(|e| e.to_string())?
            .ssh_output_within(machine, command, Duration::from_secs(30))
            .map_err(|e| first_line(&e.to_string()))
    }

    /// The controller whose etcd is the leader (`etcd_server_is_leader 1` in its metrics,
    /// etcd-io/etcd `server/etcdserver/metrics.go` lines 31-42).
    fn leader(&self) -> Option<String> {
        self.record
            .nodes
            .iter()
            .filter(|n| n.is_controller())
            .find(|n| {
                self.on(
                    &n.name,
                    &format!("{ETCD_CURL} https://127.0.0.1:2379/metrics | grep '^etcd_server_is_leader '"),
                )
                .is_ok_and(|o| o.trim().ends_with(" 1"))
            })
            .map(|n| n.name.clone())
    }

    /// Whether every controller's etcd member answers `/health` with "true".
    fn etcd_whole(&self) -> bool {
        drill::members(&self.topology) == 0
            || self
                .record
                .nodes
                .iter()
                .filter(|n| n.is_controller())
                .all(|n| {
                    self.on(
                        &n.name,
                        &format!("{ETCD_CURL} https://127.0.0.1:2379/health"),
                    )
                    .is_ok_and(|o| o.contains("\"health\":\"true\""))
                })
    }

    /// The member list from the first controller that answers and is not stopped.
    fn membership(&self, stopped: &[String]) -> String {
        if drill::members(&self.topology) == 0 {
            return "no etcd (kine)".into();
        }
        for n in self.record.nodes.iter().filter(|n| n.is_controller()) {
            if stopped.contains(&n.name) {
                continue;
            }
            // Without quorum the member list hangs for minutes (etcd client retries): bounded.
            return match self.on(&n.name, "sudo timeout 10 k0s etcd member-list") {
                Ok(text) => {
                    let count = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v["members"].as_object().map(serde_json::Map::len))
                        .unwrap_or(0);
                    format!("etcd answers from {} ({count} members)", n.name)
                }
                Err(_) => format!("etcd does not answer on {} (no quorum)", n.name),
            };
        }
        "no controller left to ask".into()
    }

    /// The node controller's grace period for this lab's Kubernetes release, read from the
    /// kubelet version its nodes report.
    fn grace_period(&self) -> Duration {
        let version = self.nodes().iter().find_map(crate::health::kubelet_version);
        drill::node_grace_period(version)
    }

    fn node_ready(&self, name: &str) -> bool {
        self.nodes()
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .is_some_and(|n| crate::health::condition_true(n, "Ready"))
    }

    /// The cluster's Node objects through the endpoint; none when the API does not answer.
    fn nodes(&self) -> Vec<serde_json::Value> {
        match self.kubectl().get_json("listing the nodes", &["nodes"]) {
            Ok(serde_json::Value::Object(mut list)) => match list.remove("items") {
                Some(serde_json::Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Marks the cluster's data (a ConfigMap) and backs it up, while it is healthy.
    fn mark_and_back_up(&self) -> Result<std::path::PathBuf> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let manifest = self.ctx.dir.join(crate::lab::files::DRILL_MARKER);
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {MARKER}\n  namespace: default\ndata:\n  written: \"{stamp}\"\n"
        );
        crate::fsutil::write_atomic(&manifest, yaml.as_bytes(), crate::lab::files::MODE_PRIVATE)?;
        let applied = self
            .kubectl()
            .apply("writing the drill's marker ConfigMap", &manifest);
        let _ = self.ctx.dir.remove_file(crate::lab::files::DRILL_MARKER);
        applied?;
        crate::workflow::backup::take(self.ctx, &self.record)
    }

    /// Whether the marker ConfigMap is in the cluster.
    fn marker_back(&self) -> bool {
        self.kubectl()
            .get_json(
                "reading the drill's marker ConfigMap",
                &["configmap", MARKER, "--namespace", "default"],
            )
            .is_ok()
    }

    /// The seed's recovery from a lost quorum: fresh VMs (k0sctl restores only where k0s never
    /// ran), the addresses assigned to their new MACs, `k0sctl apply --restore-from`.
    fn recover_by_restore(&self, backup: &std::path::Path) -> Result<()> {
        crate::workflow::machines::on_created_machines(
            self.ctx,
            &self.record,
            "vagrant destroy",
            ("destroying", "destroyed"),
            |vagrant, machine| vagrant.destroy_cmd(machine),
            "Run `k0slab destroy`, then `k0slab restore` with the backup.",
        )?;
        crate::workflow::assign::release(self.ctx, &self.record)?;
        let mut record = self.record.clone();
        record.assigned.clear();
        self.ctx.dir.write_record(&record)?;
        for file in [
            crate::lab::files::APPLIED_MARKER,
            crate::lab::files::KUBECONFIG,
            crate::lab::files::KNOWN_HOSTS,
        ] {
            let _ = self.ctx.dir.remove_file(file);
        }
        crate::workflow::up::run(
            self.ctx,
            &crate::inputs::Flags::default(),
            &crate::workflow::up::UpOptions {
                dry_run: false,
                restore_from: Some(backup.to_path_buf()),
                wait: self.timing.recover,
                summary: false,
            },
        )
    }

    fn healthy(&self, wait: Duration) -> Result<bool> {
        let checks = crate::workflow::health::check(self.ctx, &self.record, wait)?;
        Ok(checks.iter().all(|c| c.ok) && self.etcd_whole())
    }

    fn run(&self, scenario: &Scenario, progress: &Progress) -> Result<Row> {
        let spinner = progress.spinner(scenario.kind.name());
        spinner.message("checking the lab is healthy first");
        let stopped: Vec<String> = match scenario.kind {
            Kind::ControllerDown => vec![scenario
                .machine
                .clone()
                .or_else(|| self.leader())
                .unwrap_or_else(|| {
                    let c: Vec<_> = self
                        .record
                        .nodes
                        .iter()
                        .filter(|n| n.is_controller())
                        .collect();
                    c[c.len() - 1].name.clone()
                })],
            Kind::WorkerDown => vec![scenario.machine.clone().expect("parse names a worker")],
            Kind::EndpointDown => vec![LOAD_BALANCER_NAME.to_string()],
            Kind::QuorumLoss => drill::majority(&self.topology),
        };
        let label = format!("{} {}", scenario.kind.name(), stopped.join(","));
        let healthy = self.healthy(self.timing.recover)?;
        let grace = self.grace_period();
        let expected = drill::expect(
            scenario.kind,
            &stopped,
            &self.topology,
            &drill::Watch::planned(grace, self.timing.observe),
        );
        if !healthy {
            spinner.failed("the lab is not healthy: not drilled");
            return Ok(Row {
                scenario: label,
                stopped,
                expected,
                observed_available: None,
                observed: "not drilled: the lab was not healthy first".into(),
                api_downtime_s: 0.0,
                node_ready_again_s: None,
                etcd_whole_again_s: None,
                passed: false,
            });
        }
        let restore = self.restore && scenario.kind == Kind::QuorumLoss;
        let backup = if restore {
            spinner.message("marking the data and backing the cluster up");
            Some(self.mark_and_back_up()?)
        } else {
            None
        };
        let vagrant = self.ctx.vagrant()?;
        spinner.message(&format!("stopping {}", stopped.join(", ")));
        let halt_began = Instant::now();
        for m in &stopped {
            let mut cmd = vagrant.halt_cmd(m);
            if self.hard {
                cmd = cmd.arg("--force");
            }
            cmd.output(self.ctx.env, &self.ctx.out)?;
        }
        let halted = Instant::now();
        // Observe the endpoint while the machines are down.
        spinner.message("polling the API through the endpoint");
        let mut polls: Vec<(Instant, bool)> = Vec::new();
        let started = Instant::now();
        while started.elapsed() < self.timing.observe {
            crate::tools::process::check_interrupted()?;
            polls.push((Instant::now(), self.api_ok()));
            std::thread::sleep(self.timing.poll);
        }
        // Available: the API answered in the last third of the window.
        let tail_from = started + self.timing.observe * 2 / 3;
        let tail: Vec<bool> = polls
            .iter()
            .filter(|(t, _)| *t >= tail_from)
            .map(|(_, ok)| *ok)
            .collect();
        // On a busy host one poll can outlast the last third: then the last poll decides.
        let available = if tail.is_empty() {
            polls.last().is_some_and(|(_, ok)| *ok)
        } else {
            tail.iter().any(|ok| *ok)
        };
        let membership = self.membership(&stopped);
        // What the node controller made of stopped nodes with a kubelet: what can be seen
        // depends on when they are looked at against its grace period (`drill::Watch`), so
        // the expectation is the one for this moment.
        let looked_at = Instant::now();
        let expected = drill::expect(
            scenario.kind,
            &stopped,
            &self.topology,
            &drill::Watch {
                grace,
                since_halt_began: looked_at - halt_began,
                since_halted: looked_at - halted,
            },
        );
        let node_ready: Vec<(String, bool)> = if available {
            stopped
                .iter()
                .filter(|m| self.record.node(m).is_some_and(|n| n.runs_kubelet()))
                .map(|m| (m.clone(), self.node_ready(m)))
                .collect()
        } else {
            Vec::new()
        };
        let nodes_as_expected = expected
            .node_ready
            .is_none_or(|want| node_ready.iter().all(|(_, ready)| *ready == want));
        let node_states: Vec<String> = node_ready
            .iter()
            .map(|(m, ready)| format!("{m} {}", if *ready { "still Ready" } else { "NotReady" }))
            .collect();
        // Start again and wait until the lab is whole.
        let restarted = Instant::now();
        let mut data = String::new();
        if let Some(backup) = &backup {
            spinner.message("restoring the backup into fresh VMs");
            self.recover_by_restore(backup)?;
            data = if self.marker_back() {
                "; restored from the backup, data back".into()
            } else {
                "; restored from the backup, data LOST".into()
            };
        } else {
            spinner.message(&format!("starting {} again", stopped.join(", ")));
            for m in &stopped {
                vagrant.up(m, |_, _| {})?;
            }
        }
        let kubelet: Vec<String> = stopped
            .iter()
            .filter(|m| self.record.node(m).is_some_and(|n| n.runs_kubelet()))
            .cloned()
            .collect();
        let mut node_ready_again = None;
        let mut etcd_again = None;
        let controllers_stopped = stopped
            .iter()
            .any(|m| self.record.node(m).is_some_and(|n| n.is_controller()));
        spinner.message("waiting for the lab to be whole again");
        // At least one look, also when starting the machines again took the whole time.
        loop {
            crate::tools::process::check_interrupted()?;
            let ok = self.api_ok();
            polls.push((Instant::now(), ok));
            if ok && node_ready_again.is_none() && kubelet.iter().all(|m| self.node_ready(m)) {
                node_ready_again = Some(restarted.elapsed());
            }
            if ok && etcd_again.is_none() && self.etcd_whole() {
                etcd_again = Some(restarted.elapsed());
            }
            if (ok && node_ready_again.is_some() && etcd_again.is_some())
                || restarted.elapsed() >= self.timing.recover
            {
                break;
            }
            std::thread::sleep(self.timing.poll);
        }
        let recovered = node_ready_again.is_some()
            && etcd_again.is_some()
            && self.healthy(Duration::ZERO)?
            && !data.ends_with("LOST");
        let downtime = longest_outage(&polls);
        let observed = format!(
            "{}; {membership}{}{data}{}",
            if available {
                "available"
            } else {
                "unavailable"
            },
            node_states
                .iter()
                .map(|s| format!("; {s}"))
                .collect::<String>(),
            if recovered {
                String::new()
            } else {
                format!(
                    "; NOT healthy again within {}",
                    format_duration(self.timing.recover)
                )
            }
        );
        let passed = available == expected.available && nodes_as_expected && recovered;
        if passed {
            spinner.done(&format!(
                "{} as expected",
                if available {
                    "available"
                } else {
                    "unavailable"
                }
            ));
        } else {
            spinner.failed(&observed);
        }
        Ok(Row {
            scenario: label,
            stopped,
            expected,
            observed_available: Some(available),
            observed,
            api_downtime_s: downtime.as_secs_f64(),
            node_ready_again_s: (!kubelet.is_empty())
                .then_some(node_ready_again.map(|d| d.as_secs_f64()))
                .flatten(),
            etcd_whole_again_s: controllers_stopped
                .then_some(etcd_again.map(|d| d.as_secs_f64()))
                .flatten(),
            passed,
        })
    }
}

/// Runs `scenarios` (as `k0slab drill` names them; all when empty) one after another; returns
/// each one's row. A row that contradicts its expectation is not an error here.
pub fn run(ctx: &Context<'_>, o: &DrillOptions) -> Result<Vec<Row>> {
    let record = ctx.record()?;
    let topology = record.topology();
    let scenarios = drill::parse(&o.scenarios, &topology)?;
    ctx.tools.require(&[Tool::Vagrant, Tool::Kubectl])?;
    let timing = Timing {
        poll: duration(ctx, "K0SLAB_DRILL_POLL", Duration::from_millis(250))?,
        observe: duration(ctx, "K0SLAB_DRILL_OBSERVE", Duration::from_secs(75))?,
        recover: duration(ctx, "K0SLAB_DRILL_RECOVER", Duration::from_secs(600))?,
    };
    let drill = Drill {
        ctx,
        kubectl_path: ctx.tools.get(Tool::Kubectl)?.to_path_buf(),
        kubeconfig: ctx.dir.join(crate::lab::files::KUBECONFIG),
        record,
        topology,
        timing,
        hard: o.hard,
        restore: o.restore,
    };
    let progress = Progress::new(&ctx.out);
    let mut rows = Vec::new();
    for scenario in &scenarios {
        rows.push(drill.run(scenario, &progress)?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_outage_is_measured_between_polls() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let polls = [
            (at(0), true),
            (at(250), false),
            (at(500), false),
            (at(750), true),
            (at(1000), false),
            (at(1250), true),
        ];
        assert_eq!(longest_outage(&polls), Duration::from_millis(500));
        assert_eq!(
            longest_outage(&[(at(0), false), (at(900), false)]),
            Duration::from_millis(900)
        );
        assert_eq!(longest_outage(&[(at(0), true)]), Duration::ZERO);
    }
}
