//! `k0slab kairos lint`: the bootstrap-data rules on cloud-config files, offline. The files are
//! written here in the shapes the Kairos providers' templates render (kairos-io/kairos-capi
//! 0abbf74 and kairos-io/cluster-api-provider-kairos c300236): `k0s` / `k0s-worker` sections,
//! `args` lists, tokens through `write_files`.

mod common;

use std::fs;
use std::path::PathBuf;

use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

const SINGLE: &str = "#cloud-config
hostname: solo-cp-0
users:
- name: kairos
  passwd: kairos
k0s:
  enabled: true
  args:
    - --single
";

const INIT: &str = "#cloud-config
hostname: ha-cp-0
k0s:
  enabled: true
  args:
    - --config /etc/k0s/k0s.yaml
    - --enable-worker
write_files:
  - path: /etc/k0s/k0s.yaml
    content: |
      apiVersion: k0s.k0sproject.io/v1beta1
";

fn join(name: &str) -> String {
    format!(
        "#cloud-config
hostname: {name}
k0s:
  enabled: true
  args:
    - --token-file=/etc/k0s/controller-token
    - --enable-worker
write_files:
  - path: /etc/k0s/controller-token
    permissions: \"0600\"
    content: |
      H4sIAAAAAAAC/controller
"
    )
}

const WORKER: &str = "#cloud-config
hostname: md-0
k0s-worker:
  enabled: true
  args:
    - \"--token-file /etc/k0s/token\"
write_files:
  - path: /etc/k0s/token
    permissions: \"0644\"
    content: |
      H4sIAAAAAAAC/worker
";

/// What kairos-io/kairos-capi renders for each controller of a multi-replica control plane.
const SAME_FOR_EVERY_CONTROLLER: &str = "#cloud-config
k0s:
  enabled: true
";

const K3S: &str = "#cloud-config
hostname: k3s-cp-0
k3s:
  enabled: true
";

/// Writes `files` (name, content) into the sandbox and returns their paths.
fn write(sb: &Sandbox, files: &[(&str, &str)]) -> Vec<String> {
    files
        .iter()
        .map(|(name, text)| {
            let p: PathBuf = sb.work().join(name);
            fs::write(&p, text).unwrap();
            p.display().to_string()
        })
        .collect()
}

fn lint(sb: &Sandbox, args: &[&str], files: &[String]) -> std::process::Output {
    let mut all = vec!["kairos", "lint"];
    all.extend_from_slice(args);
    all.extend(files.iter().map(String::as_str));
    sb.k0slab(&all, &[])
}

#[test]
fn single_node_ha_and_workers_that_follow_the_rules_pass() {
    let sb = Sandbox::new();
    let files = write(&sb, &[("cp.yaml", SINGLE), ("w.yaml", WORKER)]);
    let o = lint(&sb, &[], &files);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("2 file(s) follow the rules for 1 control-plane replica(s): init solo-cp-0, 0 joining controller(s), 1 worker(s)"),
        "{}",
        stdout(&o)
    );

    let (j1, j2) = (join("ha-cp-1"), join("ha-cp-2"));
    let files = write(
        &sb,
        &[
            ("0.yaml", INIT),
            ("1.yaml", &j1),
            ("2.yaml", &j2),
            ("w.yaml", WORKER),
        ],
    );
    let o = lint(&sb, &["-o", "json"], &files);
    assert!(o.status.success(), "{}", both(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["replicas"], 3, "counted from the files");
    assert_eq!(v["init_machine"], "ha-cp-0");
    assert_eq!(v["joining"], serde_json::json!(["ha-cp-1", "ha-cp-2"]));
    assert_eq!(v["workers"], serde_json::json!(["md-0"]));
    assert!(sb.calls().is_empty(), "no tool was run: {:?}", sb.calls());
}

#[test]
fn a_worker_without_its_token_file_and_single_with_replicas_are_findings() {
    let sb = Sandbox::new();
    let no_token = WORKER.split("write_files").next().unwrap().to_string();
    let files = write(&sb, &[("cp.yaml", SINGLE), ("w.yaml", &no_token)]);
    let o = lint(&sb, &[], &files);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let out = stdout(&o);
    assert!(out.contains(&files[1]), "the file is named: {out}");
    assert!(
        out.contains("a worker uses --token-file /etc/k0s/token but its cloud-config does not write that file"),
        "{out}"
    );
    let o = lint(&sb, &["--replicas", "3"], &files[..1]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stdout(&o).contains("uses --single with 3 control-plane replicas"),
        "{}",
        stdout(&o)
    );
}

/// The real provider's HA data: three controllers that each initialise, none with a kubelet.
#[test]
fn identical_ha_controllers_are_named_for_both_rules() {
    let sb = Sandbox::new();
    let files = write(
        &sb,
        &[
            ("cp-0.yaml", SAME_FOR_EVERY_CONTROLLER),
            ("cp-1.yaml", SAME_FOR_EVERY_CONTROLLER),
            ("cp-2.yaml", SAME_FOR_EVERY_CONTROLLER),
        ],
    );
    let o = lint(&sb, &["-o", "json"], &files);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rules: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["machine"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rules.len(), 5, "{rules:?}");
    assert!(
        rules[0].1.starts_with("initialises the cluster too"),
        "{rules:?}"
    );
    assert_eq!(
        rules[0].0, "cp-1.yaml",
        "machines without a hostname are named by file"
    );
    assert!(
        rules[2..]
            .iter()
            .all(|(_, r)| r.contains("without --enable-worker")),
        "{rules:?}"
    );
}

#[test]
fn invalid_yaml_is_one_finding_and_exit_2() {
    let sb = Sandbox::new();
    let (j1, j2) = (join("ha-cp-1"), join("ha-cp-2"));
    let files = write(
        &sb,
        &[
            ("0.yaml", "k0s: [unclosed\n"),
            ("1.yaml", &j1),
            ("2.yaml", &j2),
        ],
    );
    let o = lint(&sb, &["--replicas", "3"], &files);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    let out = stdout(&o);
    let findings: Vec<&str> = out
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(findings.len(), 1, "one finding, not two:\n{out}");
    assert!(findings[0].contains("not valid YAML"), "{out}");
    assert!(
        stderr(&o).contains(&format!("not a YAML cloud-config: {}", files[0])),
        "{}",
        stderr(&o)
    );
}

#[test]
fn k3s_data_is_one_finding() {
    let sb = Sandbox::new();
    let files = write(&sb, &[("k3s.yaml", K3S)]);
    let o = lint(&sb, &["-o", "json"], &files);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["machine"], "k3s-cp-0");
    assert!(findings[0]["rule"]
        .as_str()
        .unwrap()
        .starts_with("is k3s bootstrap data (`k3s` is enabled)"));
}

#[test]
fn unreadable_files_and_bad_flags_are_bad_input() {
    let sb = Sandbox::new();
    let o = lint(&sb, &[], &["no-such-file.yaml".to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(stderr(&o).contains("no-such-file.yaml"), "{}", stderr(&o));
    let files = write(&sb, &[("cp.yaml", SINGLE)]);
    let o = lint(&sb, &["--replicas", "0"], &files);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(stderr(&o).contains("flag --replicas"), "{}", stderr(&o));
    let o = sb.k0slab(&["kairos", "lint"], &[]);
    assert_eq!(o.status.code(), Some(2), "a file is required: {}", both(&o));
}
