//! `kairos lint`: the bootstrap-data rules on cloud-config files, offline. Provider developers
//! run it in their unit tests and CI; no lab and no cluster are needed.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, InputError, Result};
use crate::kairos::bootstrap_rules::{self, MachineBootstrap};
use crate::output;
use crate::output::OutputFormat;
use crate::workflow::context::Context;

/// Options of `kairos lint`.
pub struct LintOptions {
    pub files: Vec<PathBuf>,
    /// Control-plane replicas; the number of controller files when not given.
    pub replicas: Option<u32>,
    pub format: OutputFormat,
}

#[derive(Serialize)]
struct Finding {
    file: String,
    machine: String,
    rule: String,
}

#[derive(Serialize)]
struct LintReport {
    replicas: u32,
    passed: bool,
    init_machine: Option<String>,
    joining: Vec<String>,
    workers: Vec<String>,
    findings: Vec<Finding>,
}

/// What one file says before the rules run.
struct File {
    path: String,
    machine: String,
    controller: bool,
    yaml: bool,
}

impl File {
    /// The machine is the cloud-config's `hostname`, else the file name; the role comes from
    /// the content (`k0s` enabled: a controller).
    fn read(path: &Path, text: &str) -> File {
        let doc = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).ok();
        let machine = doc
            .as_ref()
            .and_then(|d| d.get("hostname")?.as_str().map(str::to_string))
            .unwrap_or_else(|| {
                path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into(),
                )
            });
        let controller = doc
            .as_ref()
            .and_then(|d| d.get("k0s")?.get("enabled").cloned())
            .is_some_and(|e| e.as_bool() == Some(true) || e.as_str() == Some("true"));
        File {
            path: path.display().to_string(),
            machine,
            controller,
            yaml: bootstrap_rules::is_yaml(text),
        }
    }
}

pub fn lint(ctx: &Context<'_>, o: &LintOptions) -> Result<()> {
    if o.replicas == Some(0) {
        return Err(InputError::Invalid {
            origin: "flag --replicas".into(),
            value: "0".into(),
            allowed: "a number of control-plane replicas, 1 or more".into(),
        }
        .into());
    }
    let mut machines = Vec::new();
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for path in &o.files {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                unreadable.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let file = File::read(path, &text);
        machines.push(MachineBootstrap {
            machine: file.machine.clone(),
            control_plane: None,
            cloud_config: text,
        });
        files.push(file);
    }
    if !unreadable.is_empty() {
        return Err(InputError::Rule(format!(
            "kairos lint cannot read these files:\n  {}",
            unreadable.join("\n  ")
        ))
        .into());
    }
    let replicas = o
        .replicas
        .unwrap_or_else(|| files.iter().filter(|f| f.controller).count() as u32);
    let file_of = |machine: &str| {
        files
            .iter()
            .find(|f| f.machine == machine)
            .map_or_else(|| "-".to_string(), |f| f.path.clone())
    };
    let (summary, mut violations) = match bootstrap_rules::check(&machines, replicas) {
        Ok(s) => (Some(s), Vec::new()),
        Err(v) => (None, v),
    };
    violations.extend(
        bootstrap_rules::without_kubelet(&machines)
            .into_iter()
            .map(|machine| bootstrap_rules::Violation {
                machine,
                rule: bootstrap_rules::NO_KUBELET.to_string(),
            }),
    );
    let findings: Vec<Finding> = violations
        .iter()
        .map(|v| Finding {
            file: file_of(&v.machine),
            machine: v.machine.clone(),
            rule: v.rule.clone(),
        })
        .collect();
    let report = LintReport {
        replicas,
        passed: findings.is_empty(),
        init_machine: summary
            .as_ref()
            .map(|s| s.init_machine.clone())
            .filter(|m| !m.is_empty()),
        joining: summary
            .as_ref()
            .map(|s| s.joining.clone())
            .unwrap_or_default(),
        workers: summary
            .as_ref()
            .map(|s| s.workers.clone())
            .unwrap_or_default(),
        findings,
    };
    match o.format {
        OutputFormat::Json => ctx
            .out
            .result(&serde_json::to_string_pretty(&report).expect("serialises")),
        OutputFormat::Table if report.passed => ctx.out.result(&format!(
            "{} file(s) follow the rules for {replicas} control-plane replica(s): init {}, {} joining controller(s), {} worker(s)",
            files.len(),
            report.init_machine.as_deref().unwrap_or("none"),
            report.joining.len(),
            report.workers.len()
        )),
        OutputFormat::Table => ctx.out.result(&output::table(
            &["file", "machine", "broken rule"],
            report
                .findings
                .iter()
                .map(|f| vec![f.file.clone(), f.machine.clone(), f.rule.clone()])
                .collect(),
            &[],
        )),
    }
    let not_yaml: Vec<&str> = files
        .iter()
        .filter(|f| !f.yaml)
        .map(|f| f.path.as_str())
        .collect();
    if !not_yaml.is_empty() {
        return Err(InputError::Rule(format!(
            "kairos lint: not a YAML cloud-config: {}",
            not_yaml.join(", ")
        ))
        .into());
    }
    if report.passed {
        Ok(())
    } else {
        Err(Error::Unhealthy(format!(
            "kairos lint: {} broken rule(s) in {} file(s)",
            report.findings.len(),
            files.len()
        )))
    }
}
