//! The bootstrap-data rules of the Kairos k0s providers (HA milestone 1), as a pure checker
//! over each machine's cloud-config:
//!
//! - exactly one control-plane machine initialises: `k0s` enabled without a join token;
//!   `--single` only when the control plane has 1 replica;
//! - every other control-plane machine joins with `--token-file /etc/k0s/controller-token`,
//!   and its cloud-config writes that file;
//! - workers enable `k0s-worker` with `--token-file /etc/k0s/token`, written by the
//!   cloud-config.
//!
//! Arguments may be one string or a list, and flags `--flag value` or `--flag=value`.
//!
//! A machine whose data cannot be judged (not YAML, k3s, neither k0s section) gets one
//! finding and is left out of the rules over the whole control plane, so a single bad file
//! is reported once.

use std::collections::BTreeSet;
use std::fmt;

use serde_yaml_ng::Value;

pub const CONTROLLER_TOKEN: &str = "/etc/k0s/controller-token";
pub const WORKER_TOKEN: &str = "/etc/k0s/token";

/// One machine's bootstrap data.
#[derive(Debug, Clone)]
pub struct MachineBootstrap {
    pub machine: String,
    /// Whether the Machine belongs to the control plane (its CAPI label); `None`: taken
    /// from the content (`k0s` is a controller, `k0s-worker` a worker), as `kairos lint` does.
    pub control_plane: Option<bool>,
    pub cloud_config: String,
}

/// A broken rule, with the machine it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub machine: String,
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.machine, self.rule)
    }
}

/// What the bootstrap data says when it follows the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The one control-plane machine that initialises the cluster.
    pub init_machine: String,
    /// Control-plane machines that join.
    pub joining: Vec<String>,
    pub workers: Vec<String>,
    /// Machines that run a kubelet and so become Nodes of the workload cluster.
    pub kubelet_machines: Vec<String>,
}

/// Flags of a k0s section: `(flag, value)` pairs.
fn flags(section: &Value) -> Vec<(String, Option<String>)> {
    let args: Vec<String> = match section.get("args") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let tokens: Vec<String> = args
        .iter()
        .flat_map(|a| a.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if let Some((flag, value)) = t.split_once('=').filter(|_| t.starts_with("--")) {
            out.push((flag.to_string(), Some(value.to_string())));
        } else if t.starts_with("--") {
            let value = tokens.get(i + 1).filter(|v| !v.starts_with("--")).cloned();
            if value.is_some() {
                i += 1;
            }
            out.push((t.clone(), value));
        }
        i += 1;
    }
    out
}

fn flag<'a>(flags: &'a [(String, Option<String>)], name: &str) -> Option<&'a Option<String>> {
    flags.iter().find(|(f, _)| f == name).map(|(_, v)| v)
}

fn enabled(doc: &Value, key: &str) -> Option<Value> {
    let section = doc.get(key)?;
    let on = match section.get("enabled") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    on.then(|| section.clone())
}

/// Files the cloud-config writes: `write_files` and the `files` of every stage step
/// (initramfs paths under /sysroot count as the installed system's).
fn written_files(doc: &Value) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut add = |list: Option<&Value>| {
        for f in list.and_then(Value::as_sequence).into_iter().flatten() {
            if let Some(p) = f.get("path").and_then(Value::as_str) {
                paths.insert(p.strip_prefix("/sysroot").unwrap_or(p).to_string());
            }
        }
    };
    add(doc.get("write_files"));
    if let Some(stages) = doc.get("stages").and_then(Value::as_mapping) {
        for steps in stages.values() {
            for step in steps.as_sequence().into_iter().flatten() {
                add(step.get("files"));
            }
        }
    }
    paths
}

fn token_rule(
    machine: &str,
    flags: &[(String, Option<String>)],
    files: &BTreeSet<String>,
    expected: &str,
    what: &str,
) -> Option<Violation> {
    let violation = |rule: String| {
        Some(Violation {
            machine: machine.to_string(),
            rule,
        })
    };
    match flag(flags, "--token-file") {
        None | Some(None) => violation(format!("{what} must use --token-file {expected}")),
        Some(Some(path)) if path != expected => violation(format!(
            "{what} must use --token-file {expected}, not {path}"
        )),
        Some(Some(_)) if !files.contains(expected) => violation(format!(
            "{what} uses --token-file {expected} but its cloud-config does not write that file"
        )),
        Some(Some(_)) => None,
    }
}

/// Checks every machine's bootstrap data against the rules, for a control plane of
/// `replicas` machines.
pub fn check(machines: &[MachineBootstrap], replicas: u32) -> Result<Summary, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut inits = Vec::new();
    let mut joining = Vec::new();
    let mut workers = Vec::new();
    let mut kubelet = Vec::new();
    // Control-plane machines whose data could not be judged: the rules over the whole
    // control plane are left to the next look (or the next lint run).
    let mut unjudged = false;
    for m in machines {
        let v = |rule: &str| Violation {
            machine: m.machine.clone(),
            rule: rule.to_string(),
        };
        let doc = match parse(&m.cloud_config) {
            Ok(d) => d,
            Err(rule) => {
                violations.push(v(&rule));
                unjudged |= m.control_plane != Some(false);
                continue;
            }
        };
        let files = written_files(&doc);
        match (enabled(&doc, "k0s"), enabled(&doc, "k0s-worker")) {
            (Some(_), Some(_)) => {
                violations.push(v("enables both k0s and k0s-worker"));
                unjudged |= m.control_plane != Some(false);
            }
            (None, None) => {
                violations.push(v(&match k3s_section(&doc) {
                    Some(key) => format!(
                        "is k3s bootstrap data (`{key}` is enabled): a k0s cluster needs `k0s` or `k0s-worker`"
                    ),
                    None => "enables neither k0s nor k0s-worker".to_string(),
                }));
                unjudged |= m.control_plane != Some(false);
            }
            (Some(k0s), None) => {
                if m.control_plane == Some(false) {
                    violations.push(v(
                        "is a worker Machine but its cloud-config starts a k0s controller",
                    ));
                    continue;
                }
                let f = flags(&k0s);
                if flag(&f, "--single").is_some() && replicas != 1 {
                    violations.push(v(&format!(
                        "uses --single with {replicas} control-plane replicas (only allowed with 1)"
                    )));
                }
                if flag(&f, "--single").is_some() || flag(&f, "--enable-worker").is_some() {
                    kubelet.push(m.machine.clone());
                }
                if flag(&f, "--token-file").is_none() {
                    inits.push(m.machine.clone());
                } else {
                    violations.extend(token_rule(
                        &m.machine,
                        &f,
                        &files,
                        CONTROLLER_TOKEN,
                        "a joining controller",
                    ));
                    joining.push(m.machine.clone());
                }
            }
            (None, Some(worker)) => {
                if m.control_plane == Some(true) {
                    violations.push(v(
                        "is a control-plane Machine but its cloud-config starts only a k0s worker",
                    ));
                    unjudged = true;
                    continue;
                }
                let f = flags(&worker);
                violations.extend(token_rule(&m.machine, &f, &files, WORKER_TOKEN, "a worker"));
                workers.push(m.machine.clone());
                kubelet.push(m.machine.clone());
            }
        }
    }
    match inits.len() {
        0 if !unjudged && !joining.is_empty() => violations.push(Violation {
            machine: "control plane".into(),
            rule: "no control-plane machine initialises the cluster (every one has a join token)"
                .into(),
        }),
        0 | 1 => {}
        _ => {
            for extra in &inits[1..] {
                violations.push(Violation {
                    machine: extra.clone(),
                    rule: format!(
                        "initialises the cluster too (no join token), but {} already does: exactly one control-plane machine may initialise",
                        inits[0]
                    ),
                });
            }
        }
    }
    if violations.is_empty() {
        Ok(Summary {
            init_machine: inits.into_iter().next().unwrap_or_default(),
            joining,
            workers,
            kubelet_machines: kubelet,
        })
    } else {
        Err(violations)
    }
}

/// The rules for a k3s control plane (`distribution: k3s`, the provider's tested path on
/// KubeVirt): control-plane machines run a k3s server (`k3s`), exactly one without `--server`
/// (it initialises), the others join with `--server`; workers run `k3s-agent` with `--server`
/// and a token (`--token`, or `--token-file` that the cloud-config writes). Every server runs
/// a kubelet unless `--disable-agent` (k3s server's embedded agent), every agent does.
/// Source: kairos-io/cluster-api-provider-kairos c300236
/// `internal/bootstrap/templates/k3s_kairos_cloud_config_capk.yaml.tmpl` 88-94.
pub fn check_k3s(machines: &[MachineBootstrap]) -> Result<Summary, Vec<Violation>> {
    let mut violations = Vec::new();
    let (mut inits, mut joining, mut workers, mut kubelet) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for m in machines {
        let v = |rule: &str| Violation {
            machine: m.machine.clone(),
            rule: rule.to_string(),
        };
        let doc = match parse(&m.cloud_config) {
            Ok(d) => d,
            Err(rule) => {
                violations.push(v(&rule));
                continue;
            }
        };
        let files = written_files(&doc);
        let control_plane = m.control_plane.unwrap_or(enabled(&doc, "k3s").is_some());
        let section = if control_plane { "k3s" } else { "k3s-agent" };
        let Some(found) = enabled(&doc, section) else {
            violations.push(v(&format!(
                "is a {} Machine of a k3s cluster but its cloud-config does not enable `{section}`",
                if control_plane {
                    "control-plane"
                } else {
                    "worker"
                }
            )));
            continue;
        };
        let f = flags(&found);
        if control_plane {
            if flag(&f, "--disable-agent").is_none() {
                kubelet.push(m.machine.clone());
            }
            if flag(&f, "--server").is_some() {
                joining.push(m.machine.clone());
            } else {
                inits.push(m.machine.clone());
            }
            continue;
        }
        if !matches!(flag(&f, "--server"), Some(Some(_))) {
            violations.push(v("a k3s agent must name its server with --server"));
        }
        match (flag(&f, "--token-file"), flag(&f, "--token")) {
            (Some(Some(path)), _) if !files.contains(path) => violations.push(v(&format!(
                "a k3s agent uses --token-file {path} but its cloud-config does not write that file"
            ))),
            (Some(Some(_)), _) | (_, Some(Some(_))) => {}
            _ => violations.push(v("a k3s agent needs --token or --token-file")),
        }
        workers.push(m.machine.clone());
        kubelet.push(m.machine.clone());
    }
    match inits.len() {
        1 => {}
        0 if machines.iter().all(|m| m.control_plane == Some(false)) => {}
        0 => violations.push(Violation {
            machine: "control plane".into(),
            rule: "no k3s server initialises the cluster (every one has --server)".into(),
        }),
        _ => {
            for extra in &inits[1..] {
                violations.push(Violation {
                    machine: extra.clone(),
                    rule: format!(
                        "initialises the cluster too (a k3s server without --server), but {} already does",
                        inits[0]
                    ),
                });
            }
        }
    }
    if violations.is_empty() {
        Ok(Summary {
            init_machine: inits.into_iter().next().unwrap_or_default(),
            joining,
            workers,
            kubelet_machines: kubelet,
        })
    } else {
        Err(violations)
    }
}

/// The cloud-config as a YAML mapping, or the one finding that says why it is not.
fn parse(cloud_config: &str) -> Result<Value, String> {
    match serde_yaml_ng::from_str(cloud_config) {
        Ok(d @ Value::Mapping(_)) => Ok(d),
        Ok(_) => Err("the bootstrap data is not a cloud-config mapping".into()),
        Err(e) => Err(format!("the bootstrap data is not valid YAML: {e}")),
    }
}

/// Whether `cloud_config` is YAML at all (a lint input error, exit 2, when not).
pub fn is_yaml(cloud_config: &str) -> bool {
    parse(cloud_config).is_ok()
}

/// The k3s section a cloud-config enables, if any (Kairos runs k3s from `k3s` / `k3s-agent`).
fn k3s_section(doc: &Value) -> Option<&'static str> {
    ["k3s", "k3s-agent"]
        .into_iter()
        .find(|k| enabled(doc, k).is_some())
}

/// The finding for a controller that runs no kubelet (see [`without_kubelet`]).
pub const NO_KUBELET: &str = "starts a k0s controller without --enable-worker (or --single), so it registers no Node: Cluster API never marks its Machine Running and the control plane never counts it ready";

/// Control-plane machines that run no kubelet. Cluster API marks a Machine Running, and a
/// control plane counts it ready, only once a Node refers to it; a k0s controller started
/// without `--single` or `--enable-worker` registers none. Machines whose data cannot be
/// judged are left to [`check`].
pub fn without_kubelet(machines: &[MachineBootstrap]) -> Vec<String> {
    machines
        .iter()
        .filter(|m| m.control_plane != Some(false))
        .filter(|m| {
            let Ok(doc) = parse(&m.cloud_config) else {
                return false;
            };
            match (enabled(&doc, "k0s"), enabled(&doc, "k0s-worker")) {
                (Some(k0s), None) => {
                    let f = flags(&k0s);
                    flag(&f, "--single").is_none() && flag(&f, "--enable-worker").is_none()
                }
                _ => false,
            }
        })
        .map(|m| m.machine.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(single: bool) -> String {
        format!(
            "#cloud-config\nusers:\n- name: kairos\n  passwd: kairos\nk0s:\n  enabled: true\n{}",
            if single {
                "  args:\n    - --single\n"
            } else {
                ""
            }
        )
    }

    const JOIN: &str = "#cloud-config
k0s:
  enabled: true
  args:
    - --token-file /etc/k0s/controller-token
write_files:
  - path: /etc/k0s/controller-token
    permissions: \"0600\"
    content: |
      H4sIAAAAAAAC...
";

    const JOIN_EQUALS_STAGE: &str = "#cloud-config
k0s:
  enabled: true
  args: --token-file=/etc/k0s/controller-token
stages:
  initramfs:
    - name: token
      files:
        - path: /sysroot/etc/k0s/controller-token
          content: abc
";

    const WORKER: &str = "#cloud-config
k0s-worker:
  enabled: true
  args:
    - --token-file /etc/k0s/token
write_files:
  - path: /etc/k0s/token
    content: |
      H4sIAAAAAAAC...
";

    fn m(name: &str, cp: bool, cc: &str) -> MachineBootstrap {
        MachineBootstrap {
            machine: name.into(),
            control_plane: Some(cp),
            cloud_config: cc.into(),
        }
    }

    fn rules(r: Result<Summary, Vec<Violation>>) -> Vec<String> {
        r.expect_err("violations")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn one_replica_initialises_alone() {
        let s = check(
            &[m("kcp-0", true, &init(true)), m("md-0", false, WORKER)],
            1,
        )
        .unwrap();
        assert_eq!(s.init_machine, "kcp-0");
        assert_eq!(s.workers, ["md-0"]);
        assert_eq!(s.kubelet_machines, ["kcp-0", "md-0"]);
        // --single is allowed, not required, with one replica.
        assert!(check(&[m("kcp-0", true, &init(false))], 1).is_ok());
    }

    #[test]
    fn three_replicas_one_init_two_joins_and_workers() {
        let machines = [
            m("kcp-0", true, &init(false)),
            m("kcp-1", true, JOIN),
            m("kcp-2", true, JOIN_EQUALS_STAGE),
            m("md-a", false, WORKER),
            m("md-b", false, WORKER),
        ];
        let s = check(&machines, 3).unwrap();
        assert_eq!(s.init_machine, "kcp-0");
        assert_eq!(s.joining, ["kcp-1", "kcp-2"]);
        assert_eq!(s.kubelet_machines, ["md-a", "md-b"]);
    }

    #[test]
    fn two_inits_are_refused() {
        let got = rules(check(
            &[
                m("kcp-0", true, &init(false)),
                m("kcp-1", true, &init(false)),
                m("kcp-2", true, JOIN),
            ],
            3,
        ));
        assert_eq!(got, ["kcp-1: initialises the cluster too (no join token), but kcp-0 already does: exactly one control-plane machine may initialise"]);
    }

    #[test]
    fn a_join_without_the_token_file_is_refused() {
        let unwritten =
            "k0s:\n  enabled: true\n  args: [\"--token-file\", \"/etc/k0s/controller-token\"]\n";
        let got = rules(check(
            &[
                m("kcp-0", true, &init(false)),
                m("kcp-1", true, unwritten),
                m("kcp-2", true, JOIN),
            ],
            3,
        ));
        assert_eq!(got, ["kcp-1: a joining controller uses --token-file /etc/k0s/controller-token but its cloud-config does not write that file"]);
        let elsewhere = JOIN.replace(
            "--token-file /etc/k0s/controller-token",
            "--token-file /tmp/t",
        );
        let got = rules(check(
            &[m("kcp-0", true, &init(false)), m("kcp-1", true, &elsewhere)],
            2,
        ));
        assert_eq!(got, ["kcp-1: a joining controller must use --token-file /etc/k0s/controller-token, not /tmp/t"]);
    }

    #[test]
    fn single_with_three_replicas_is_refused() {
        let got = rules(check(
            &[
                m("kcp-0", true, &init(true)),
                m("kcp-1", true, JOIN),
                m("kcp-2", true, JOIN),
            ],
            3,
        ));
        assert_eq!(
            got,
            ["kcp-0: uses --single with 3 control-plane replicas (only allowed with 1)"]
        );
    }

    #[test]
    fn a_worker_without_its_token_is_refused() {
        let no_flag = "k0s-worker:\n  enabled: true\n";
        let no_file = "k0s-worker:\n  enabled: true\n  args:\n    - --token-file=/etc/k0s/token\n";
        let got = rules(check(
            &[
                m("kcp-0", true, &init(true)),
                m("md-0", false, no_flag),
                m("md-1", false, no_file),
            ],
            1,
        ));
        assert_eq!(
            got,
            [
                "md-0: a worker must use --token-file /etc/k0s/token",
                "md-1: a worker uses --token-file /etc/k0s/token but its cloud-config does not write that file",
            ]
        );
    }

    #[test]
    fn roles_and_documents_must_make_sense() {
        let got = rules(check(&[m("kcp-0", true, WORKER)], 1));
        assert!(
            got[0].starts_with("kcp-0: is a control-plane Machine but"),
            "{got:?}"
        );
        assert_eq!(got.len(), 1, "one finding for one bad machine: {got:?}");
        let got = rules(check(
            &[
                m("kcp-0", true, &init(true)),
                m("md-0", false, &init(false)),
            ],
            1,
        ));
        assert!(got[0].starts_with("md-0: is a worker Machine"), "{got:?}");
        let got = rules(check(&[m("kcp-0", true, "k0s: [unclosed")], 1));
        assert!(got[0].contains("not valid YAML"), "{got:?}");
        let got = rules(check(&[m("kcp-0", true, "users: []\n")], 1));
        assert!(got[0].contains("enables neither"), "{got:?}");
        let both = format!("{}k0s-worker:\n  enabled: true\n", init(false));
        let got = rules(check(&[m("kcp-0", true, &both)], 1));
        assert!(got[0].contains("enables both"), "{got:?}");
    }

    #[test]
    fn a_bad_control_plane_file_is_one_finding_not_two() {
        let k3s = "#cloud-config\nk3s:\n  enabled: true\n  args: [--cluster-init]\n";
        for (data, says) in [
            ("k0s: [unclosed", "not valid YAML"),
            (k3s, "is k3s bootstrap data (`k3s` is enabled)"),
        ] {
            let got = rules(check(
                &[
                    m("kcp-0", true, data),
                    m("kcp-1", true, JOIN),
                    m("kcp-2", true, JOIN),
                ],
                3,
            ));
            assert_eq!(got.len(), 1, "{got:?}");
            assert!(
                got[0].starts_with("kcp-0: ") && got[0].contains(says),
                "{got:?}"
            );
        }
        // Judged from the content (lint): a k3s agent is one finding too.
        let agent = MachineBootstrap {
            machine: "w".into(),
            control_plane: None,
            cloud_config: "k3s-agent:\n  enabled: true\n".into(),
        };
        assert_eq!(rules(check(&[agent], 0)).len(), 1);
        // Every judged controller joining is still a finding.
        let got = rules(check(&[m("kcp-1", true, JOIN), m("kcp-2", true, JOIN)], 2));
        assert_eq!(got, ["control plane: no control-plane machine initialises the cluster (every one has a join token)"]);
    }

    #[test]
    fn roles_come_from_the_content_when_no_machine_says() {
        let none = |name: &str, cc: &str| MachineBootstrap {
            machine: name.into(),
            control_plane: None,
            cloud_config: cc.into(),
        };
        let s = check(&[none("a", &init(true)), none("b", WORKER)], 1).unwrap();
        assert_eq!(
            (s.init_machine.as_str(), s.workers.as_slice()),
            ("a", &["b".to_string()][..])
        );
    }

    #[test]
    fn k3s_clusters_follow_the_k3s_rules() {
        let m = |name: &str, cp: bool, text: &str| MachineBootstrap {
            machine: name.into(),
            control_plane: Some(cp),
            cloud_config: text.into(),
        };
        let server = "k3s:\n  enabled: true\n";
        let agent = "k3s-agent:\n  enabled: true\n  args:\n    - \"--server https://10.0.0.1:6443\"\n    - \"--token-file /etc/rancher/k3s/token\"\nwrite_files:\n  - path: /etc/rancher/k3s/token\n    content: t\n";
        let s = check_k3s(&[m("cp-0", true, server), m("md-0", false, agent)]).unwrap();
        assert_eq!(s.init_machine, "cp-0");
        assert_eq!(s.kubelet_machines, ["cp-0", "md-0"]);
        let join = "k3s:\n  enabled: true\n  args: [\"--server=https://10.0.0.1:6443\", --disable-agent]\n";
        let s = check_k3s(&[m("cp-0", true, server), m("cp-1", true, join)]).unwrap();
        assert_eq!(
            (s.joining.as_slice(), s.kubelet_machines.as_slice()),
            (&["cp-1".to_string()][..], &["cp-0".to_string()][..])
        );
        let bad = check_k3s(&[
            m("cp-0", true, server),
            m("cp-1", true, server),
            m(
                "md-0",
                false,
                "k3s-agent:\n  enabled: true\n  args: [\"--token-file /t\"]\n",
            ),
            m("cp-2", true, "k0s:\n  enabled: true\n"),
        ])
        .unwrap_err();
        let found: Vec<String> = bad.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found
            .iter()
            .any(|f| f.starts_with("cp-1: initialises the cluster too")));
        assert!(found.iter().any(|f| f.contains("must name its server")));
        assert!(found.iter().any(|f| f.contains("does not write that file")));
        assert!(found
            .iter()
            .any(|f| f.starts_with("cp-2: is a control-plane Machine of a k3s cluster")));
    }

    #[test]
    fn controllers_without_a_kubelet_are_named() {
        let enable = JOIN.replace(
            "    - --token-file",
            "    - --enable-worker\n    - --token-file",
        );
        let machines = [
            m("kcp-0", true, &init(false)),
            m("kcp-1", true, JOIN),
            m("kcp-2", true, &enable),
            m("md-0", false, WORKER),
        ];
        assert!(check(&machines, 3).is_ok());
        assert_eq!(without_kubelet(&machines), ["kcp-0", "kcp-1"]);
        assert!(without_kubelet(&[m("kcp-0", true, &init(true))]).is_empty());
        // Also when other rules are broken: two inits, neither with a kubelet.
        assert_eq!(
            without_kubelet(&[m("a", true, &init(false)), m("b", true, &init(false))]),
            ["a", "b"]
        );
    }

    #[test]
    fn flag_spellings() {
        let section: Value =
            serde_yaml_ng::from_str("args: ['--a=1 --b 2', '--c', '--d', 'x']").unwrap();
        assert_eq!(
            flags(&section),
            vec![
                ("--a".to_string(), Some("1".to_string())),
                ("--b".to_string(), Some("2".to_string())),
                ("--c".to_string(), None),
                ("--d".to_string(), Some("x".to_string())),
            ]
        );
    }
}
