//! Nested virtualization for KubeVirt (issue 18, item 1 and the node half of item 2):
//! `K0SLAB_NESTED=workers` gives every worker `tart run --nested` and k0s' kubelet at
//! /var/lib/kubelet, refuses workers too small for a workload VM, and is refused before
//! anything boots on a Mac that cannot nest (an M1 or M2, macOS before 15, Tart before 2.20);
//! `doctor` says so either way. Run inside a network namespace with no interfaces.

mod common;

use std::fs;

use common::standins::{both, stderr, stdout, Sandbox};

const NESTED: [(&str, &str); 6] = [
    ("control_plane_count", "1"),
    ("worker_count", "2"),
    ("K0SLAB_NESTED", "workers"),
    ("memory_worker", "8192"),
    ("disk_size", "80"),
    ("K0S_VERSION", "v1.34.1+k0s.0"),
];

#[test]
fn nested_workers_get_tart_run_nested_and_kubevirts_kubelet_root() {
    let sb = Sandbox::new();
    let o = sb.k0slab(&["render"], &NESTED);
    assert!(o.status.success(), "{}", both(&o));
    let vagrantfile = fs::read_to_string(sb.lab().join("Vagrantfile")).unwrap();
    for block in vagrantfile.split("config.vm.define ").skip(1) {
        let name = block.split('"').nth(1).unwrap();
        let args = block
            .lines()
            .find(|l| l.contains("tart.extra_run_args"))
            .unwrap();
        assert_eq!(
            args.contains(r#""--nested""#),
            name.starts_with("worker-"),
            "{name}: {args}"
        );
    }
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(sb.lab().join("k0sctl.yaml")).unwrap())
            .unwrap();
    for host in config["spec"]["hosts"].as_sequence().unwrap() {
        let flags: Vec<&str> = host["installFlags"]
            .as_sequence()
            .map(|f| f.iter().map(|x| x.as_str().unwrap()).collect())
            .unwrap_or_default();
        let worker = host["role"] == "worker";
        assert_eq!(
            flags.contains(&"--kubelet-root-dir=/var/lib/kubelet"),
            worker,
            "{host:?}"
        );
    }
    let plan = sb.k0slab(&["plan"], &NESTED);
    assert!(
        stdout(&plan).contains(
            "nested    worker-1, worker-2 (tart run --nested, kubelet at /var/lib/kubelet"
        ),
        "{}",
        both(&plan)
    );
    let json = sb.k0slab(&["plan", "-o", "json"], &NESTED);
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let nested: Vec<bool> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["nested"].as_bool().unwrap())
        .collect();
    assert_eq!(nested, [false, true, true]);
}

#[test]
fn nested_workers_too_small_or_absent_or_on_an_old_k0s_are_refused() {
    let sb = Sandbox::new();
    let with = |changes: &[(&'static str, &'static str)]| {
        let mut env = NESTED.to_vec();
        env.retain(|(k, _)| changes.iter().all(|(c, _)| c != k));
        env.extend_from_slice(changes);
        sb.k0slab(&["up", "--dry-run"], &env)
    };
    for (changes, says) in [
        (
            &[("worker_count", "0")][..],
            "K0SLAB_NESTED=workers needs workers (worker_count is 0)",
        ),
        (
            &[("memory_worker", "4096")][..],
            "K0SLAB_NESTED=workers needs memory_worker=8192 MB or more (it is 4096)",
        ),
        (
            &[("disk_size", "40")][..],
            "K0SLAB_NESTED=workers needs disk_size=80 GB or more (it is 40)",
        ),
        (
            &[("K0S_VERSION", "v1.31.5+k0s.0")][..],
            "K0S_VERSION=v1.31.5+k0s.0 is too old for K0SLAB_NESTED=workers",
        ),
        (&[("K0SLAB_NESTED", "all")][..], "none, or workers"),
    ] {
        let o = with(changes);
        assert_eq!(o.status.code(), Some(2), "{changes:?}: {}", both(&o));
        assert!(stderr(&o).contains(says), "{changes:?}: {}", stderr(&o));
        assert!(!sb.lab().exists(), "{changes:?}: nothing written");
    }
}

#[test]
fn an_m1_mac_is_told_at_doctor_and_up_stops_before_anything_boots() {
    let sb = Sandbox::new();
    let m1 = [("STANDIN_CPU_BRAND", "Apple M1 Max")];
    let mut env = NESTED.to_vec();
    env.extend_from_slice(&m1);
    let (_, row) = sb.doctor_row(&env, "nested virtualization");
    assert_eq!(row["status"], "fail", "{row}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("an M1 or M2 Mac cannot run KubeVirt's workload VMs"),
        "{row}"
    );
    // Not asked for: said, not failed.
    let (_, row) = sb.doctor_row(&m1, "nested virtualization");
    assert_eq!(row["status"], "ok", "{row}");
    assert!(
        row["detail"].as_str().unwrap().starts_with("not asked for"),
        "{row}"
    );
    // An M3 with macOS 15 and Tart 2.32: fine.
    let (_, row) = sb.doctor_row(&NESTED, "nested virtualization");
    assert_eq!(row["status"], "ok", "{row}");

    let o = sb.k0slab(&["up", "--wait", "5s"], &env);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("K0SLAB_NESTED=workers: Tart cannot give these VMs nested virtualization here: this Mac's chip is an Apple M1 Max"),
        "{}",
        both(&o)
    );
    assert!(
        sb.calls()
            .iter()
            .all(|c| !(c.tool == "vagrant" && c.args.first().map(String::as_str) == Some("up"))),
        "nothing booted"
    );
    // macOS 14 and an old Tart are named too (on Tart's shared network: Softnet's release
    // needs macOS 15 itself).
    let mut old = NESTED.to_vec();
    old.extend_from_slice(&[
        ("STANDIN_MACOS_VERSION", "14.6.1"),
        ("STANDIN_TART_VERSION", "2.19.2"),
        ("K0SLAB_NETWORK", "nat"),
    ]);
    let o = sb.k0slab(&["up", "--wait", "5s"], &old);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("macOS 14.6.1 is older than the 15 (Sequoia)"),
        "{err}"
    );
    assert!(err.contains("Tart 2.19.2 has no --nested"), "{err}");
}

/// The stand-in's model of Tart, from its source: `tart run --nested` fails on an M2, and
/// vagrant-tart only says the VM did not start.
#[test]
fn the_standin_refuses_tart_run_nested_as_tart_does() {
    let sb = Sandbox::new();
    let r = sb.k0slab(&["render"], &NESTED);
    assert!(r.status.success(), "{}", both(&r));
    let lab = sb.lab().display().to_string();
    let o = sb.command(
        &common::standins::standins_bin()
            .join("vagrant")
            .display()
            .to_string(),
        &["up", "worker-1", "--provider", "tart", "--machine-readable"],
        &[
            ("VAGRANT_CWD", lab.as_str()),
            ("STANDIN_CPU_BRAND", "Apple M2"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("Failed to start the virtual machine."),
        "{}",
        both(&o)
    );
}

#[test]
fn nested_workers_come_up_healthy_with_dev_kvm_and_one_without_it_is_named() {
    let sb = Sandbox::new();
    let o = sb.k0slab(&["up", "--wait", "10s"], &NESTED);
    assert!(o.status.success(), "{}", both(&o));
    let asked: Vec<String> = sb
        .calls()
        .into_iter()
        .filter(|c| c.tool == "vagrant" && c.args.iter().any(|a| a == "test -c /dev/kvm"))
        .map(|c| c.args[1].clone())
        .collect();
    let mut asked = asked;
    asked.sort();
    assert_eq!(
        asked,
        ["worker-1", "worker-2"],
        "only the nested machines are asked"
    );
    assert_eq!(sb.vm("k0slab-worker-1")["kvm"], true);
    assert_ne!(sb.vm("k0slab-control-plane-1")["kvm"], true);

    // A guest that lost it (a VM Tart started without --nested) stops the next up.
    let mut vm = sb.vm("k0slab-worker-2");
    vm["kvm"] = serde_json::Value::Bool(false);
    fs::write(
        sb.state().join("vms/k0slab-worker-2.json"),
        serde_json::to_string(&vm).unwrap(),
    )
    .unwrap();
    let o = sb.k0slab(&["up", "--wait", "10s"], &NESTED);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o)
            .contains("no /dev/kvm in worker-2: Tart started them without nested virtualization"),
        "{}",
        both(&o)
    );
}
