//! The real `task` (go-task, installed by the test command) running Taskfile.yml against the
//! stand-ins: every task is listed with a description, and the PRD's command line works.

mod common;

use std::fs;

use common::standins::{both, stdout, Sandbox};

const TASKS: [&str; 23] = [
    "vagrant:up",
    "vagrant:destroy",
    "vagrant:status",
    "vagrant:ssh",
    "vagrant:halt",
    "vagrant:resume",
    "vagrant:validate",
    "vagrant:plugin",
    "cluster:health",
    "cluster:kubeconfig",
    "cluster:status",
    "lab:plan",
    "lab:render",
    "doctor",
    "kairos:install",
    "kairos:verify",
    "kairos:uninstall",
    "kairos:lint",
    "image:load",
    "image:ls",
    "cluster:drill",
    "cluster:backup",
    "cluster:restore",
];

/// A sandbox whose work directory holds this checkout's Taskfile, with K0SLAB_BIN pointing at
/// the built binary.
fn sandbox() -> (Sandbox, String) {
    let mut sb = Sandbox::new();
    fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Taskfile.yml"),
        sb.work().join("Taskfile.yml"),
    )
    .unwrap();
    sb.set("K0SLAB_BIN", env!("CARGO_BIN_EXE_k0slab"));
    let task = common::require_tool("task").display().to_string();
    (sb, task)
}

#[test]
fn task_list_describes_every_task() {
    let (sb, task) = sandbox();
    let o = sb.command(&task, &["--list"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let out = stdout(&o);
    for name in TASKS {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("* {name}:")))
            .unwrap_or_else(|| panic!("{name} listed in\n{out}"));
        let desc = line
            .split_once(':')
            .unwrap()
            .1
            .split_once(':')
            .map_or("", |(_, d)| d)
            .trim();
        assert!(desc.len() > 10, "{name} has a description: {line}");
    }
}

#[test]
fn the_prd_command_brings_up_three_plus_two_and_destroy_removes_all() {
    let (sb, task) = sandbox();
    let o = sb.command(
        &task,
        &["vagrant:up", "--", "--wait", "5s"],
        &[("control_plane_count", "3"), ("worker_count", "2")],
    );
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("lab k0slab is up and healthy"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        sb.vms().len(),
        6,
        "3 controllers, 2 workers, the load balancer"
    );
    assert!(sb.vms().values().all(|s| s == "running"));
    assert_eq!(sb.calls_of("k0sctl", "apply").len(), 1);
    let kubeconfig = fs::read_to_string(sb.lab().join("kubeconfig")).unwrap();
    assert!(kubeconfig.contains("https://192.168.64.100:6443"));

    let o = sb.command(&task, &["cluster:health"], &[]);
    assert!(o.status.success(), "{}", both(&o));

    // No variables set: the lab of lab.json is destroyed whole.
    let o = sb.command(&task, &["vagrant:destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    assert_eq!(sb.calls_of("vagrant", "destroy").len(), 6);
    assert!(!sb.lab().exists());
}

#[test]
fn plan_render_and_ssh_tasks_pass_arguments() {
    let (sb, task) = sandbox();
    let o = sb.command(
        &task,
        &["lab:plan", "--", "-o", "json"],
        &[("worker_count", "0")],
    );
    assert!(o.status.success(), "{}", both(&o));
    let json = stdout(&o);
    let start = json.find('{').unwrap();
    let v: serde_json::Value = serde_json::from_str(&json[start..]).unwrap();
    assert_eq!(v["nodes"][0]["role"], "single");
    let o = sb.command(&task, &["lab:render"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.lab().join("Vagrantfile").exists());
    let o = sb.command(&task, &["vagrant:validate"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(stdout(&o).contains("validated successfully"));
}

/// go-task reports any failed command as exit 201 unless `-x` (`--exit-code`) passes the
/// command's own through (go-task/task#1266); the task's description says so.
#[test]
fn ssh_task_passes_the_exit_code_through_with_x() {
    let (sb, task) = sandbox();
    let o = sb.k0slab(&["up", "--wait", "5s"], &[("worker_count", "0")]);
    assert!(o.status.success(), "{}", both(&o));
    let o = sb.command(
        &task,
        &[
            "-x",
            "vagrant:ssh",
            "--",
            "control-plane-1",
            "--",
            "exit",
            "3",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", both(&o));
    let o = sb.command(&task, &["--list"], &[]);
    assert!(stdout(&o).contains("task -x vagrant:ssh"), "{}", stdout(&o));
}
