//! The stand-in tools themselves: they must refuse what the real tools refuse, or the flow
//! tests would pass against a world kinder than the real one.

mod common;

use std::fs;

use common::standins::{both, standins_bin, stderr, stdout, Sandbox};

fn tool(name: &str) -> String {
    standins_bin().join(name).display().to_string()
}

fn rendered_lab(sb: &Sandbox, env: &[(&str, &str)]) {
    let o = sb.k0slab(&["render"], env);
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn vagrant_refuses_unknown_machines_and_missing_vagrantfiles() {
    let sb = Sandbox::new();
    let o = sb.command(&tool("vagrant"), &["status", "--machine-readable"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("A Vagrant environment or target machine is required"));
    rendered_lab(&sb, &[]);
    let lab = sb.lab().display().to_string();
    let o = sb.command(
        &tool("vagrant"),
        &["up", "worker-9", "--provider", "tart"],
        &[("VAGRANT_CWD", &lab)],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("The machine with the name 'worker-9' was not found"),
        "{}",
        both(&o)
    );
    let o = sb.command(
        &tool("vagrant"),
        &["ssh", "worker-1", "-c", "true"],
        &[("VAGRANT_CWD", &lab)],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "ssh into a machine that is not running"
    );
    let o = sb.command(
        &tool("vagrant"),
        &["status", "--machine-readable"],
        &[("VAGRANT_CWD", &lab)],
    );
    assert!(o.status.success());
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.ends_with(",worker-1,state,not_created")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn k0sctl_refuses_configs_k0sctl_would_refuse() {
    let sb = Sandbox::new();
    rendered_lab(&sb, &[("control_plane_count", "3"), ("worker_count", "2")]);
    let config = sb.lab().join("k0sctl.yaml");
    let good = fs::read_to_string(&config).unwrap();
    let broken = [
        (
            good.replacen("role: worker", "role: worker\n    noTaints: true", 1),
            "noTaints can only be true",
        ),
        (
            good.replacen("role: controller\n", "role: single\n", 1),
            "single must be the only host",
        ),
        (
            good.replacen("role: worker", "role: boss", 1),
            "unknown role boss",
        ),
        (
            good.replace("address: 192.168.64.21", "address: 192.168.64.20"),
            "duplicate address",
        ),
        (
            good.replacen(
                "privateAddress: 192.168.64.20",
                "privateAddress: 192.168.64.999",
                1,
            ),
            "privateAddress",
        ),
        (
            good.replace("apiVersion: k0sctl.k0sproject.io/v1beta1", "apiVersion: v1"),
            "apiVersion",
        ),
    ];
    for (text, expect) in broken {
        assert_ne!(text, good, "{expect}: the edit changed nothing");
        let path = sb.work().join("broken.yaml");
        fs::write(&path, &text).unwrap();
        let o = sb.command(
            &tool("k0sctl"),
            &["apply", "--config", path.to_str().unwrap()],
            &[],
        );
        assert_eq!(o.status.code(), Some(1), "{expect}: {}", both(&o));
        assert!(stderr(&o).contains(expect), "{expect}: {}", both(&o));
    }
    // The key file must exist, and the hosts must be reachable.
    fs::remove_file(sb.lab().join("id_ed25519")).unwrap();
    let o = sb.command(
        &tool("k0sctl"),
        &["apply", "--config", config.to_str().unwrap()],
        &[],
    );
    assert!(stderr(&o).contains("ssh.keyPath"), "{}", both(&o));
}

#[test]
fn k0sctl_cannot_reach_machines_that_are_not_up() {
    let sb = Sandbox::new();
    rendered_lab(&sb, &[]);
    let config = sb.lab().join("k0sctl.yaml");
    let o = sb.command(
        &tool("k0sctl"),
        &["apply", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("dial tcp 192.168.64.10:22: connect: no route to host"),
        "{}",
        both(&o)
    );
    let o = sb.command(
        &tool("k0sctl"),
        &["kubeconfig", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "no cluster, no kubeconfig");
}

#[test]
fn kubectl_only_answers_at_the_lab_endpoint() {
    let sb = Sandbox::new();
    let o = sb.k0slab(&["up", "--wait", "5s"], &[("control_plane_count", "3")]);
    assert!(o.status.success(), "{}", both(&o));
    let kubeconfig = sb.lab().join("kubeconfig");
    let ok = sb.command(
        &tool("kubectl"),
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "--raw",
            "/readyz",
        ],
        &[],
    );
    assert_eq!(stdout(&ok), "ok");
    // A kubeconfig pointing elsewhere (here: a worker's address) gets no answer.
    let wrong = sb.work().join("wrong");
    fs::write(
        &wrong,
        fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace("192.168.64.100", "192.168.64.20"),
    )
    .unwrap();
    let o = sb.command(
        &tool("kubectl"),
        &[
            "--kubeconfig",
            wrong.to_str().unwrap(),
            "get",
            "--raw",
            "/readyz",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Unable to connect to the server"),
        "{}",
        both(&o)
    );
}

#[test]
fn stand_ins_refuse_to_run_outside_the_tests() {
    let sb = Sandbox::new();
    let mut env = sb.env.clone();
    env.remove("K0SLAB_STANDIN_STATE");
    let o = std::process::Command::new(tool("tart"))
        .arg("--version")
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(99), "{}", both(&o));
}
