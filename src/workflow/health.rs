//! The health step: the facts gathered from kubectl and Vagrant at once, judged by
//! [`crate::health`], again until they pass or the wait is over.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::health::{self, Check, Facts};
use crate::lab::record::LabRecord;
use crate::output;
use crate::progress::{format_duration, Progress};
use crate::tools::kubectl::Kubectl;
use crate::tools::process::check_interrupted;
use crate::tools::vagrant::MachineState;
use crate::tools::Tool;
use crate::workflow::context::Context;

/// How long `k0s etcd member-list` may take on a controller. The list is a linearizable read:
/// without quorum etcd answers "request timed out" after about 7 s and the client retries up
/// to 100 times (etcd-io/etcd `client/v3/cluster.go` line 127, `client/v3/retry.go` lines
/// 54-75, `client/v3/options.go` line 45), and k0s gives it no deadline of its own
/// (k0sproject/k0s `cmd/etcd/list.go` lines 39-49: the command's context). `timeout` ends it
/// with exit status 124.
const MEMBER_LIST_SECONDS: u32 = 10;
/// How long one `vagrant ssh` may take in all: Vagrant's start, `tart ip`, the SSH connection
/// (Vagrant passes `ssh` no ConnectTimeout: hashicorp/vagrant v2.3.4 `lib/vagrant/util/ssh.rb`
/// lines 122-213) and the command.
const SSH_LIMIT: Duration = Duration::from_secs(30);

/// `k0s etcd member-list` from the first running controller that answers, in any layout; a
/// controller whose etcd does not answer in time stops the search (every member's list needs
/// the same quorum). Stopped controllers are not asked.
fn member_list(
    vagrant: &crate::tools::vagrant::Vagrant<'_>,
    record: &LabRecord,
    states: Option<&std::collections::BTreeMap<String, MachineState>>,
) -> std::result::Result<String, String> {
    let controllers: Vec<&crate::topology::Node> =
        record.nodes.iter().filter(|n| n.is_controller()).collect();
    let state = |name: &str| states.and_then(|s| s.get(name));
    let running: Vec<&&crate::topology::Node> = controllers
        .iter()
        .filter(|n| state(&n.name).is_none_or(|s| *s == MachineState::Running))
        .collect();
    if running.is_empty() {
        let stopped: Vec<String> = controllers
            .iter()
            .map(|n| {
                format!(
                    "{} {}",
                    n.name,
                    state(&n.name).map_or_else(|| "unknown".into(), ToString::to_string)
                )
            })
            .collect();
        return Err(format!(
            "no controller is running ({}): {}",
            stopped.join(", "),
            health::START_HINT
        ));
    }
    let command = format!("sudo timeout {MEMBER_LIST_SECONDS} k0s etcd member-list");
    let mut problems = Vec::new();
    for n in running {
        match vagrant.ssh_output_within(&n.name, &command, SSH_LIMIT) {
            Ok(out) => return Ok(out),
            Err(Error::CommandFailed { status, .. }) if status == "exited with status 124" => {
                return Err(format!(
                    "etcd on {} did not answer `k0s etcd member-list` within {MEMBER_LIST_SECONDS}s \
                     (etcd lists its members only with quorum)",
                    n.name
                ));
            }
            Err(Error::Interrupted) => return Err("interrupted".into()),
            Err(e) => problems.push(format!("{}: {}", n.name, output::last_line(&e.to_string()))),
        }
    }
    Err(problems.join("; "))
}

/// Asks kubectl and Vagrant for the facts the checks judge.
fn gather(ctx: &Context<'_>, record: &LabRecord) -> Result<Facts> {
    let kubeconfig = ctx.dir.join(crate::lab::files::KUBECONFIG);
    let missing = || {
        format!(
            "no kubeconfig at {}: run `k0slab up`",
            ctx.dir
                .shown()
                .join(crate::lab::files::KUBECONFIG)
                .display()
        )
    };
    let kubectl = Kubectl {
        path: ctx.tools.get(Tool::Kubectl)?,
        kubeconfig: &kubeconfig,
        env: ctx.env,
        out: &ctx.out,
    };
    let have_kubeconfig = kubeconfig.is_file();
    let ask = |f: &dyn Fn() -> Result<serde_json::Value>| -> std::result::Result<serde_json::Value, String> {
        if have_kubeconfig {
            f().map_err(|e| e.to_string())
        } else {
            Err(missing())
        }
    };
    let vagrant = ctx.vagrant()?;
    // The API, the nodes, the pods and the machines (then etcd on them) are asked at once:
    // none depends on another, and each is a process start (benches/up_parallel.rs).
    let (readyz, nodes, pods, (machines, etcd)) = std::thread::scope(|s| {
        let readyz = s.spawn(|| {
            if have_kubeconfig {
                kubectl.readyz().map_err(|e| e.to_string())
            } else {
                Err(missing())
            }
        });
        let nodes = s.spawn(|| ask(&|| kubectl.get_json("listing the nodes", &["nodes"])));
        let pods = s.spawn(|| {
            ask(&|| {
                kubectl.get_json(
                    "listing kube-system pods",
                    &["pods", "--namespace", "kube-system"],
                )
            })
        });
        let machines = vagrant.status().map_err(|e| e.to_string());
        let etcd = member_list(&vagrant, record, machines.as_ref().ok());
        let joined = "a health question does not panic";
        (
            readyz.join().expect(joined),
            nodes.join().expect(joined),
            pods.join().expect(joined),
            (machines, etcd),
        )
    });
    check_interrupted()?;
    Ok(Facts {
        machines,
        readyz,
        nodes,
        pods,
        etcd,
    })
}

/// Runs the checks until they all pass or `wait` is over; returns the last outcome.
pub fn check(ctx: &Context<'_>, record: &LabRecord, wait: Duration) -> Result<Vec<Check>> {
    ctx.tools.require(&[Tool::Kubectl, Tool::Vagrant])?;
    let started = Instant::now();
    let progress = Progress::new(&ctx.out);
    let spinner = (wait > Duration::ZERO).then(|| progress.spinner("health"));
    loop {
        let facts = gather(ctx, record)?;
        let checks = health::evaluate(&record.nodes, &record.endpoint, &facts);
        let passing = checks.iter().filter(|c| c.ok).count();
        let done = passing == checks.len();
        if done || started.elapsed() >= wait {
            if let Some(s) = &spinner {
                let msg = format!("{passing} of {} checks pass", checks.len());
                if done {
                    s.done(&msg)
                } else {
                    s.failed(&msg)
                }
            }
            return Ok(checks);
        }
        if let Some(s) = &spinner {
            s.message(&format!(
                "{passing} of {} checks pass; waiting up to {}",
                checks.len(),
                format_duration(wait)
            ));
        }
        let pause = ctx
            .poll_interval()
            .min(wait.saturating_sub(started.elapsed()));
        std::thread::sleep(pause.max(Duration::from_millis(10)));
        check_interrupted()?;
    }
}

/// The checks as a table.
pub fn table(checks: &[Check]) -> String {
    output::table(
        &["check", "status", "detail"],
        checks
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    if c.ok { "ok" } else { "FAIL" }.to_string(),
                    c.detail.clone(),
                ]
            })
            .collect(),
        &[],
    )
}

/// Ok when every check passed, else an error naming the failed checks.
pub fn verdict(record: &LabRecord, checks: &[Check]) -> Result<()> {
    if checks.iter().all(|c| c.ok) {
        Ok(())
    } else {
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        Err(Error::Unhealthy(format!(
            "lab {} is not healthy: {} of {} checks failed ({})",
            record.name(),
            failed.len(),
            checks.len(),
            failed.join(", ")
        )))
    }
}
