//! `k0slab health`: every check of SPEC's list, as a table or JSON; exit 1 if any fails.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::Context;
use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use crate::health::{self, Check, Facts};
use crate::kubeconfig;
use crate::kubectl::Kubectl;
use crate::lab_json::LabRecord;
use crate::output;
use crate::process::check_interrupted;
use crate::progress::{format_duration, Progress};
use crate::tools::Tool;

/// Asks kubectl and Vagrant for the facts the checks judge.
fn gather(ctx: &Context<'_>, record: &LabRecord) -> Result<Facts> {
    let kubeconfig = ctx.dir.join(kubeconfig::FILE_NAME);
    let missing = || {
        format!(
            "no kubeconfig at {}: run `k0slab up`",
            ctx.dir.shown().join(kubeconfig::FILE_NAME).display()
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
    let readyz = if have_kubeconfig {
        kubectl.readyz().map_err(|e| e.to_string())
    } else {
        Err(missing())
    };
    check_interrupted()?;
    let nodes = ask(&|| kubectl.get_json("listing the nodes", &["nodes"]));
    let pods = ask(&|| {
        kubectl.get_json(
            "listing kube-system pods",
            &["pods", "--namespace", "kube-system"],
        )
    });
    check_interrupted()?;
    let vagrant = ctx.vagrant()?;
    let mut etcd = Err("no controller answered".to_string());
    for controller in record.nodes.iter().filter(|n| n.is_controller()).take(3) {
        etcd = vagrant
            .ssh_output(&controller.name, "sudo k0s etcd member-list")
            .map_err(|e| e.to_string());
        if etcd.is_ok() {
            break;
        }
    }
    Ok(Facts {
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

#[derive(Serialize)]
struct Report<'a> {
    lab: &'a str,
    healthy: bool,
    checks: &'a [Check],
}

/// Prints the outcome; an error when a check failed.
pub fn report(
    ctx: &Context<'_>,
    record: &LabRecord,
    checks: &[Check],
    format: OutputFormat,
) -> Result<()> {
    let healthy = checks.iter().all(|c| c.ok);
    match format {
        OutputFormat::Json => ctx.out.result(
            &serde_json::to_string_pretty(&Report {
                lab: record.name(),
                healthy,
                checks,
            })
            .expect("the report serialises"),
        ),
        OutputFormat::Table => ctx.out.result(&table(checks)),
    }
    verdict(record, checks)
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

pub fn run(ctx: &Context<'_>, wait: Duration, format: OutputFormat) -> Result<()> {
    let record = ctx.record()?;
    let checks = check(ctx, &record, wait)?;
    report(ctx, &record, &checks, format)
}
