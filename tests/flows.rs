//! Whole flows of `k0slab` against the stand-in vagrant, tart, k0sctl and kubectl
//! (tests/standins): up → health → destroy, resuming after failures, idempotence, kubeconfig
//! merging, Ctrl-C. The test command runs these inside a network namespace with no interfaces.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

const THREE_TWO: &[(&str, &str)] = &[("control_plane_count", "3"), ("worker_count", "2")];

fn up(sb: &Sandbox, env: &[(&str, &str)]) -> std::process::Output {
    sb.k0slab(&["up", "--wait", "5s"], env)
}

#[test]
fn one_plus_one_up_health_destroy() {
    let sb = Sandbox::new();
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
    let out = stdout(&o);
    assert!(out.contains("lab k0slab is up and healthy"), "{out}");
    assert!(out.contains("export KUBECONFIG="), "{out}");

    // The image is pulled once, both machines are booted, k0sctl applies once.
    assert_eq!(
        sb.calls_of("tart", "pull"),
        vec![vec!["pull", "ghcr.io/cirruslabs/ubuntu:latest"]]
    );
    let mut booted = sb.booted();
    booted.sort();
    assert_eq!(booted, ["control-plane-1", "worker-1"]);
    assert!(sb.calls_of("vagrant", "up").iter().all(|a| a.ends_with(&[
        "--provider".into(),
        "tart".into(),
        "--machine-readable".into()
    ])));
    // One k0sctl run: the apply writes the admin kubeconfig too, for the endpoint.
    let config = sb.lab().join("k0sctl.yaml").display().to_string();
    let applies = sb.calls_of("k0sctl", "apply");
    assert_eq!(applies.len(), 1, "{applies:?}");
    assert_eq!(applies[0][..3], ["apply", "--config", config.as_str()]);
    assert_eq!(applies[0][3], "--kubeconfig-out");
    let out = std::path::Path::new(&applies[0][4]);
    assert_eq!(out.parent(), Some(sb.lab().as_path()), "{out:?}");
    assert!(!out.exists(), "the file k0sctl wrote is gone: {out:?}");
    assert_eq!(
        applies[0][5..],
        ["--kubeconfig-api-address", "https://192.168.64.10:6443"]
    );
    assert!(sb.calls_of("k0sctl", "kubeconfig").is_empty());
    let kubeconfig = sb.lab().join("kubeconfig");
    assert_eq!(
        fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(fs::read_to_string(&kubeconfig)
        .unwrap()
        .contains("server: https://192.168.64.10:6443"));
    assert_eq!(sb.vms().len(), 2);
    assert!(sb.vms().values().all(|s| s == "running"));

    let o = sb.k0slab(&["health"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    for check in [
        "API",
        "nodes",
        "node control-plane-1",
        "node worker-1",
        "etcd",
        "kube-system pods",
    ] {
        assert!(
            stdout(&o)
                .lines()
                .any(|l| l.starts_with(check) && l.contains(" ok ")),
            "{check}: {}",
            stdout(&o)
        );
    }

    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    assert!(!sb.lab().exists(), "the lab directory is gone");
    let mut destroyed: Vec<String> = sb
        .calls_of("vagrant", "destroy")
        .into_iter()
        .map(|a| a[2].clone())
        .collect();
    destroyed.sort();
    assert_eq!(destroyed, ["control-plane-1", "worker-1"]);
}

#[test]
fn three_plus_two_with_cplb_on_a_bridged_network() {
    let sb = Sandbox::new();
    let cplb = [
        THREE_TWO[0],
        THREE_TWO[1],
        ("K0SLAB_ENDPOINT", "cplb"),
        ("K0SLAB_NETWORK", "bridged:en0"),
    ];
    // The dry run says what `up` accepts: the VIP beside a controller's address, not a worker's.
    let o = sb.k0slab(&["up", "--dry-run"], &cplb);
    let plan = stdout(&o);
    assert!(
        plan.contains(
            "(expect 192.168.64.10, and the VIP 192.168.64.100 as a secondary address once k0s runs)"
        ),
        "{plan}"
    );
    assert!(plan.contains("(expect 192.168.64.20)\n"), "{plan}");
    let o = up(&sb, &cplb);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(sb.booted().len(), 5, "no load-balancer VM with cplb");
    // On a bridged LAN the guest takes its planned address as its only address, and Vagrant
    // is told it (Tart's dhcp resolver only knows the host's own leases).
    assert_eq!(sb.vm("k0slab-worker-2")["lease"], "192.168.64.21");
    let vagrantfile = fs::read_to_string(sb.lab().join("Vagrantfile")).unwrap();
    assert!(
        vagrantfile.contains("tart.extra_run_args = [\"--net-bridged=en0\"]"),
        "{vagrantfile}"
    );
    assert!(
        vagrantfile.contains("node.ssh.host = \"192.168.64.21\""),
        "{vagrantfile}"
    );
    assert!(
        sb.leases().is_empty(),
        "bootpd is not involved on a bridged LAN"
    );
    assert_eq!(sb.calls_of("k0sctl", "apply").len(), 1);
    let kubeconfig = fs::read_to_string(sb.lab().join("kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains("server: https://192.168.64.100:6443"),
        "{kubeconfig}"
    );
    let cluster = sb.cluster().unwrap();
    assert_eq!(cluster["vip"], "192.168.64.100");
    let o = sb.k0slab(&["health", "-o", "json"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["healthy"], true);
    let etcd = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "etcd")
        .unwrap();
    assert_eq!(etcd["detail"], "3 members, one per controller");
    let nodes = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("node "))
        .count();
    assert_eq!(nodes, 3, "control-plane-2 and -3 run no kubelet");

    // keepalived holds the VIP on one controller as a secondary address beside its planned
    // one once k0s runs (k0sproject/k0s docs/cplb.md lines 403-404; modelled in
    // tests/standins/lib/standin.rb): `up` again, and `up` after `halt`, accept the lab's own
    // VIP there and nothing else.
    let again = [("K0SLAB_ADDRESS_TIMEOUT", "3s")];
    let holders = |sb: &Sandbox| -> Vec<String> {
        sb.vms()
            .keys()
            .filter(|vm| {
                sb.vm(vm)["extra_addresses"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "192.168.64.100"))
            })
            .cloned()
            .collect()
    };
    assert_eq!(holders(&sb), ["k0slab-control-plane-1"]);
    // As the guest shows it: the planned address, then the VIP as a secondary address.
    let o = sb.k0slab(
        &[
            "ssh",
            "control-plane-1",
            "--",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", both(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("inet 192.168.64.10/24 "), "{lines:?}");
    assert_eq!(
        lines[1],
        "2: enp0s1    inet 192.168.64.100/24 scope global secondary enp0s1\\       valid_lft forever preferred_lft forever"
    );

    // A second up: already applied and healthy, not stuck on the controller with the VIP.
    sb.clear_calls();
    let o = up(&sb, &again);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        both(&o).contains("already applied and healthy"),
        "{}",
        both(&o)
    );
    assert!(sb.calls_of("k0sctl", "apply").is_empty());

    // halt, then up: k0s starts at boot and keepalived takes the VIP again on one controller.
    let o = sb.k0slab(&["halt"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(holders(&sb).is_empty(), "a stopped VM holds no address");
    let o = up(&sb, &again);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(holders(&sb).len(), 1, "{:?}", holders(&sb));

    // Only the lab's VIP, and only on a controller: another address beside a worker's still
    // keeps up waiting until it gives up.
    let mut w = sb.vm("k0slab-worker-1");
    w["extra_addresses"] = serde_json::json!(["192.168.64.100"]);
    fs::write(
        sb.state().join("vms/k0slab-worker-1.json"),
        serde_json::to_string(&w).unwrap(),
    )
    .unwrap();
    let o = up(&sb, &again);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains(
            "worker-1 did not take its planned address 192.168.64.20 within 3s: the guest has \
             192.168.64.20, 192.168.64.100 (secondary)"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn three_plus_two_with_haproxy_boots_the_load_balancer_with_the_others() {
    let sb = Sandbox::new();
    let env = [
        ("control_plane_count", "3"),
        ("worker_count", "2"),
        ("K0SLAB_ENDPOINT", "haproxy"),
    ];
    let o = sb.k0slab(
        &["up", "--wait", "5s"],
        &[
            env[0],
            env[1],
            env[2],
            ("STANDIN_VAGRANT_BOOT_SECONDS", "0.3"),
        ],
    );
    assert!(o.status.success(), "{}", both(&o));
    let events = sb.events();
    let ups: Vec<_> = events
        .iter()
        .filter(|e| e.tool == "vagrant" && e.args.first().map(String::as_str) == Some("up"))
        .collect();
    assert_eq!(ups.iter().filter(|e| e.event == "start").count(), 6);
    // The load balancer boots with the others: every boot starts before the first one ends.
    let first_end = ups
        .iter()
        .filter(|e| e.event == "end")
        .map(|e| e.time)
        .fold(f64::INFINITY, f64::min);
    for e in ups.iter().filter(|e| e.event == "start") {
        assert!(
            e.time < first_end,
            "{} waited for another machine to boot",
            e.args[1]
        );
    }
    assert!(fs::read_to_string(sb.lab().join("kubeconfig"))
        .unwrap()
        .contains("https://192.168.64.100:6443"));
    assert_eq!(sb.cluster().unwrap()["external_address"], "192.168.64.100");
    assert!(sb.lab().join("haproxy.cfg").exists());
}

#[test]
fn machines_boot_in_parallel() {
    let sb = Sandbox::new();
    let started = Instant::now();
    let o = sb.k0slab(
        &["up", "--wait", "5s"],
        &[
            THREE_TWO[0],
            THREE_TWO[1],
            ("STANDIN_VAGRANT_BOOT_SECONDS", "1.5"),
        ],
    );
    assert!(o.status.success(), "{}", both(&o));
    // Six machines of 1.5 s each, the load balancer among them: sequentially 9 s. Check
    // overlap, not speed: every boot started before the first one finished.
    let events = sb.events();
    let ups = |event: &str| -> Vec<f64> {
        events
            .iter()
            .filter(|e| {
                e.tool == "vagrant"
                    && e.event == event
                    && e.args.first().map(String::as_str) == Some("up")
            })
            .map(|e| e.time)
            .collect()
    };
    let (starts, ends) = (ups("start"), ups("end"));
    assert_eq!(starts.len(), 6);
    let first_end = ends.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        starts.iter().all(|s| *s < first_end),
        "starts {starts:?}, first end {first_end}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn up_twice_changes_nothing_the_second_time() {
    let sb = Sandbox::new();
    assert!(up(&sb, THREE_TWO).status.success());
    let vms = sb.vms();
    let lab_json = fs::read(sb.lab().join("lab.json")).unwrap();
    sb.clear_calls();
    // No variables: the lab's own inputs are used.
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("already applied and healthy: nothing to do"),
        "{}",
        stdout(&o)
    );
    assert!(sb.booted().is_empty(), "no vagrant up");
    assert!(sb.calls_of("k0sctl", "apply").is_empty(), "no k0sctl apply");
    assert!(sb.calls_of("tart", "pull").is_empty());
    assert_eq!(sb.vms(), vms);
    assert_eq!(fs::read(sb.lab().join("lab.json")).unwrap(), lab_json);
}

#[test]
fn a_vm_that_fails_to_boot_then_a_resumed_up() {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["up"],
        &[
            THREE_TWO[0],
            THREE_TWO[1],
            ("STANDIN_VAGRANT_FAIL_UP", "worker-2"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(err.contains("vagrant up failed for worker-2"), "{err}");
    assert!(
        err.contains("entered an invalid state"),
        "the tool's stderr is shown: {err}"
    );
    assert!(
        !err.contains(",ui,info,") && !err.contains("error-exit"),
        "as text, not Vagrant's machine-readable records: {err}"
    );
    assert_eq!(
        err.matches("The guest machine entered an invalid state")
            .count(),
        1,
        "once: {err}"
    );
    assert_eq!(
        err.matches("`vagrant up worker-2 --provider tart").count(),
        1,
        "the failed command is named once: {err}"
    );
    assert!(
        !err.lines().any(|l| l.contains(": (")),
        "no message cut after its colon: {err}"
    );
    assert!(err.contains("run `k0slab up` again"), "{err}");
    assert!(
        sb.calls_of("k0sctl", "apply").is_empty(),
        "no apply with a machine down"
    );
    let record: Value =
        serde_json::from_str(&fs::read_to_string(sb.lab().join("lab.json")).unwrap()).unwrap();
    assert_eq!(record["nodes"].as_array().unwrap().len(), 6);

    sb.clear_calls();
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
    // No address was assigned yet, so every machine gets `vagrant up` again: vagrant-tart runs
    // the guest setup on a running VM without restarting it; only worker-2 was stopped.
    let mut booted = sb.booted();
    booted.sort();
    assert_eq!(booted.len(), 6, "{booted:?}");
    assert_eq!(sb.calls_of("tart", "stop").len(), 0, "no VM restarted");
    assert_eq!(sb.calls_of("k0sctl", "apply").len(), 1);
    // Once the addresses are assigned, a running lab is left alone.
    sb.clear_calls();
    assert!(up(&sb, &[]).status.success());
    assert!(sb.booted().is_empty(), "{:?}", sb.booted());
}

#[test]
fn a_guest_that_does_not_take_its_planned_address_is_named() {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["up"],
        &[
            ("STANDIN_GUEST_IGNORES_MOVE", "worker-1"),
            ("K0SLAB_ADDRESS_TIMEOUT", "2s"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("worker-1 did not take its planned address 192.168.64.20 within 2s"),
        "{err}"
    );
    assert!(err.contains("`k0slab halt` then `k0slab up`"), "{err}");
    assert!(
        sb.calls_of("k0sctl", "apply").is_empty(),
        "no apply before every address holds"
    );
    // The way out the message gives works: a restart makes the DHCP client start over.
    assert!(sb.k0slab(&["halt"], &[]).status.success());
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(sb.vm("k0slab-worker-1")["lease"], "192.168.64.20");
}

/// Clones of one image share its machine ID (the stand-ins model the cirruslabs image, which
/// its build boots): the guest setup gives each VM its own, once, so that k0sctl, which refuses
/// duplicate IDs for k0s before v1.30, applies a pinned v1.29.
#[test]
fn every_vm_gets_its_own_machine_id_once() {
    let sb = Sandbox::new();
    // The stand-in internet serves this older release too (tests/standins/lib/k0s_releases.rb).
    let env = [
        ("K0S_VERSION", "v1.29.9+k0s.0"),
        ("STANDIN_K0S_RELEASES", "v1.29.9+k0s.0,v1.34.1+k0s.0"),
    ];
    let o = up(&sb, &env);
    assert!(o.status.success(), "{}", both(&o));
    let ids = |sb: &Sandbox| -> Vec<String> {
        ["k0slab-control-plane-1", "k0slab-worker-1"]
            .iter()
            .map(|vm| sb.vm(vm)["machine_id"].as_str().unwrap().to_string())
            .collect()
    };
    let first = ids(&sb);
    assert_ne!(first[0], first[1], "one ID per VM");
    // The setup runs on every `vagrant up`: the ID stays.
    assert!(sb.k0slab(&["halt"], &[]).status.success());
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(ids(&sb), first);
}

#[test]
fn k0sctl_apply_failing_then_resumed() {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["up"],
        &[THREE_TWO[0], THREE_TWO[1], ("STANDIN_K0SCTL_FAIL", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(err.contains("step k0sctl apply failed"), "{err}");
    assert!(
        err.contains("failed to join worker"),
        "k0sctl's own words are shown: {err}"
    );
    assert!(!sb.lab().join("kubeconfig").exists());
    sb.clear_calls();
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.booted().is_empty(), "machines were kept");
    assert_eq!(sb.calls_of("k0sctl", "apply").len(), 1);
}

#[test]
fn a_node_that_stays_not_ready_until_the_wait_runs_out() {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["up", "--wait", "1s"],
        &[("STANDIN_NOT_READY", "worker-1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l.starts_with("node worker-1")
            && l.contains("FAIL")
            && l.contains("NotReady")),
        "{out}"
    );
    assert!(out.contains("up but NOT healthy"), "{out}");
    assert!(
        stderr(&o).contains("not healthy: 1 of 7 checks failed (node worker-1)"),
        "{}",
        stderr(&o)
    );

    let started = Instant::now();
    let o = sb.k0slab(
        &["health", "--wait", "1500ms"],
        &[("STANDIN_NOT_READY", "worker-1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited"
    );
    // Once the node becomes Ready, health passes.
    let o = sb.k0slab(&["health"], &[]);
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn health_waits_for_nodes_that_become_ready() {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["up", "--wait", "20s"],
        // Longer than one round of health's questions to kubectl and Vagrant on a busy host.
        &[("STANDIN_NOT_READY_SECONDS", "4")],
    );
    assert!(o.status.success(), "{}", both(&o));
    let readyz = sb
        .calls()
        .iter()
        .filter(|c| c.tool == "kubectl" && c.args.contains(&"/readyz".to_string()))
        .count();
    assert!(readyz >= 2, "health was polled more than once ({readyz})");
}

#[test]
fn destroy_after_the_variables_changed_removes_the_whole_lab() {
    let sb = Sandbox::new();
    assert!(up(&sb, THREE_TWO).status.success());
    assert_eq!(sb.vms().len(), 6);
    fs::write(sb.lab().join("notes.txt"), "mine").unwrap();
    let o = sb.k0slab(
        &["destroy"],
        &[("control_plane_count", "1"), ("worker_count", "0")],
    );
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    assert_eq!(sb.calls_of("vagrant", "destroy").len(), 6);
    // Only k0slab's files are removed.
    let left: Vec<String> = fs::read_dir(sb.lab())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["notes.txt"]);
    assert!(stdout(&o).contains("kept notes.txt"), "{}", stdout(&o));
    // Destroying again is fine.
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(stdout(&o).contains("nothing to destroy"));
}

#[test]
fn destroy_finds_vms_vagrant_forgot_and_works_when_vms_are_gone() {
    let sb = Sandbox::new();
    assert!(up(&sb, &[]).status.success());
    // Vagrant's state is lost; the Tart VMs are still there.
    fs::remove_dir_all(sb.lab().join(".vagrant")).unwrap();
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    let mut deleted: Vec<String> = sb
        .calls_of("tart", "delete")
        .into_iter()
        .map(|a| a[1].clone())
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        ["k0slab-control-plane-1", "k0slab-worker-1"],
        "Vagrant forgot them, Tart did not"
    );
    assert!(
        stdout(&o).contains("deleted Tart VM k0slab-worker-1 that Vagrant no longer tracked"),
        "{}",
        stdout(&o)
    );

    assert_eq!(
        sb.calls_of("tart", "stop").len(),
        2,
        "running leftovers are stopped first: tart delete refuses a running VM"
    );

    // VMs deleted behind k0slab's back: destroy still succeeds.
    assert!(up(&sb, &[]).status.success());
    let tart = common::standins::standins_bin().join("tart");
    for name in sb.vms().keys() {
        let refused = sb.command(tart.to_str().unwrap(), &["delete", name], &[]);
        assert_eq!(refused.status.code(), Some(1), "{}", both(&refused));
        assert!(stderr(&refused).contains("is running"));
        for verb in ["stop", "delete"] {
            assert!(sb
                .command(tart.to_str().unwrap(), &[verb, name], &[])
                .status
                .success());
        }
    }
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(!sb.lab().exists());
}

#[test]
fn a_failed_destroy_keeps_lab_json_and_can_be_repeated() {
    let sb = Sandbox::new();
    assert!(up(&sb, THREE_TWO).status.success());
    let o = sb.k0slab(
        &["destroy"],
        &[("STANDIN_VAGRANT_FAIL_DESTROY", "worker-1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("vagrant destroy failed for worker-1"),
        "{}",
        stderr(&o)
    );
    assert!(sb.lab().join("lab.json").exists());
    assert_eq!(sb.vms().len(), 1);
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty());
}

/// The real kubectl (not the stand-in): the test command installs it.
fn real_kubectl() -> std::path::PathBuf {
    common::require_tool("kubectl")
}

#[test]
fn kubeconfig_merge_into_an_existing_kubeconfig() {
    let mut sb = Sandbox::new();
    assert!(up(&sb, &[]).status.success());
    let user = sb.home().join("custom").join("config");
    fs::create_dir_all(user.parent().unwrap()).unwrap();
    fs::write(&user, common::USER_KUBECONFIG).unwrap();
    sb.set(
        "KUBECONFIG",
        &format!("{}:/elsewhere/second", user.display()),
    );

    let o = sb.k0slab(&["kubeconfig"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(
        stdout(&o).trim(),
        sb.lab().join("kubeconfig").display().to_string()
    );

    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let backup = user.with_file_name("config.k0slab-backup-1");
    assert_eq!(
        fs::read_to_string(&backup).unwrap(),
        common::USER_KUBECONFIG,
        "backup written"
    );
    assert!(
        stdout(&o).contains(&backup.display().to_string()),
        "{}",
        stdout(&o)
    );

    // The real kubectl reads the merged file: both old contexts are kept, the lab's is current.
    let kubectl = real_kubectl();
    let view = |file: &std::path::Path, args: &[&str]| {
        let mut all = vec!["config", "--kubeconfig", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let o = std::process::Command::new(&kubectl)
            .args(&all)
            .env_clear()
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", both(&o));
        stdout(&o)
    };
    let contexts = view(&user, &["get-contexts", "-o", "name"]);
    let mut contexts: Vec<&str> = contexts.lines().collect();
    contexts.sort();
    assert_eq!(contexts, ["k0slab", "kind-dev", "prod"]);
    assert_eq!(view(&user, &["current-context"]).trim(), "k0slab");
    let server = view(
        &user,
        &[
            "view",
            "-o",
            "jsonpath={.clusters[?(@.name==\"k0slab\")].cluster.server}",
        ],
    );
    assert_eq!(server, "https://192.168.64.10:6443");
    // The lab's own kubeconfig is valid for kubectl too.
    let lab_view = view(
        &sb.lab().join("kubeconfig"),
        &["view", "-o", "jsonpath={.current-context}"],
    );
    assert_eq!(lab_view, "k0slab");

    // destroy takes the lab's context out again and keeps the others.
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let contexts = view(&user, &["get-contexts", "-o", "name"]);
    let mut contexts: Vec<&str> = contexts.lines().collect();
    contexts.sort();
    assert_eq!(contexts, ["kind-dev", "prod"]);
    sb.unset("KUBECONFIG");
}

#[test]
fn kubeconfig_merge_without_a_kubeconfig_creates_home_kube_config() {
    let sb = Sandbox::new();
    assert!(up(&sb, &[]).status.success());
    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let path = sb.home().join(".kube/config");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(fs::read_to_string(&path)
        .unwrap()
        .contains("current-context: k0slab"));
}

#[test]
fn up_refuses_changed_inputs_with_the_differences() {
    let sb = Sandbox::new();
    assert!(up(&sb, THREE_TWO).status.success());
    sb.clear_calls();
    let before = common::tree(&sb.lab());
    let o = sb.k0slab(&["up"], &[("worker_count", "4")]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(
        stderr(&o).contains("worker_count: the lab has 2, now asked for 4"),
        "{}",
        stderr(&o)
    );
    assert!(sb.calls().is_empty(), "no tool was run");
    assert_eq!(common::tree(&sb.lab()), before);
}

#[test]
fn dry_run_prints_every_command_and_runs_none() {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["up", "--dry-run"],
        &[THREE_TWO[0], THREE_TWO[1], ("K0SLAB_ENDPOINT", "haproxy")],
    );
    assert!(o.status.success(), "{}", both(&o));
    let out = stdout(&o);
    for expect in [
        "tart pull ghcr.io/cirruslabs/ubuntu:latest",
        "in parallel, in lab/",
        "vagrant up load-balancer --provider tart --machine-readable",
        "vagrant up control-plane-1 --provider tart --machine-readable",
        "vagrant up worker-2 --provider tart --machine-readable",
        "vagrant ssh worker-2 -c 'hostname; ip -4 -o addr show scope global dev",
        "(expect 192.168.64.21)",
        "sudo, after saying why",
        "k0sctl apply --config",
        "--kubeconfig-api-address https://192.168.64.100:6443",
        "into lab/kubeconfig",
    ] {
        assert!(out.contains(expect), "{expect:?} in\n{out}");
    }
    assert!(
        !out.contains("(first)"),
        "the load balancer boots with the others, as `up` does: {out}"
    );
    assert!(sb.calls().is_empty(), "dry run ran {:?}", sb.calls());
    assert!(!sb.lab().exists(), "dry run wrote files");
}

#[test]
fn ssh_runs_through_vagrant_and_knows_the_machines() {
    let sb = Sandbox::new();
    assert!(up(&sb, &[]).status.success());
    let o = sb.k0slab(&["ssh", "worker-1", "--", "uname", "-a"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(stdout(&o).trim(), "ran on worker-1: uname -a");
    assert_eq!(
        sb.calls_of("vagrant", "ssh").last().unwrap(),
        &["ssh", "worker-1", "-c", "uname -a"]
    );
    let o = sb.k0slab(&["ssh", "worker-1", "--", "exit", "3"], &[]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "the remote exit code is passed on"
    );
    let o = sb.k0slab(&["ssh", "worker-7"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("its machines are: control-plane-1, worker-1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn status_reports_vms_and_nodes() {
    let sb = Sandbox::new();
    assert!(up(&sb, THREE_TWO).status.success());
    let o = sb.k0slab(&["status", "-o", "json"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let machines = v["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 6);
    assert!(machines.iter().all(|m| m["vm_state"] == "running"));
    assert_eq!(machines[0]["node"]["ready"], true);
    assert_eq!(
        machines[1]["node"],
        Value::Null,
        "a pure controller is no node"
    );
    assert_eq!(machines[3]["node"]["internal_ip"], "192.168.64.20");
    let o = sb.k0slab(&["halt"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let o = sb.k0slab(&["status"], &[]);
    assert!(stdout(&o).contains("stopped"), "{}", stdout(&o));
    assert!(stdout(&o).contains("not reachable"), "{}", stdout(&o));
    // up resumes a halted lab.
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().values().all(|s| s == "running"));
}

#[test]
fn missing_tools_and_plugin_are_named_with_how_to_install() {
    let mut sb = Sandbox::new();
    // A PATH with every stand-in but k0sctl.
    let partial = sb.root.path().join("partial-bin");
    fs::create_dir_all(&partial).unwrap();
    for tool in ["vagrant", "tart", "kubectl"] {
        std::os::unix::fs::symlink(
            common::standins::standins_bin().join(tool),
            partial.join(tool),
        )
        .unwrap();
    }
    let full_path = sb.env["PATH"].clone();
    let rest = full_path.split_once(':').unwrap().1.to_string();
    sb.set("PATH", &format!("{}:{rest}", partial.display()));
    let o = sb.k0slab(&["up"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("k0sctl is needed but not found"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("brew install k0sproject/tap/k0sctl"),
        "{}",
        stderr(&o)
    );
    let o = sb.k0slab(&["doctor"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("k0sctl") && l.contains("FAIL")),
        "{}",
        stdout(&o)
    );
    assert!(
        !sb.lab().exists(),
        "nothing was written before the check failed"
    );

    sb.set("PATH", &full_path);
    let o = sb.k0slab(&["up"], &[("STANDIN_VAGRANT_VERSION", "2.2.19")]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("version 2.2.19 is older than the 2.3.0 k0slab needs"),
        "{}",
        stderr(&o)
    );
    sb.set("STANDIN_NO_TART_PLUGIN", "1");
    let o = sb.k0slab(&["up"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("vagrant plugin install vagrant-tart"),
        "{}",
        stderr(&o)
    );
    let o = sb.k0slab(&["install-plugin"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(
        sb.calls_of("vagrant", "plugin").last().unwrap(),
        &["plugin", "install", "vagrant-tart"]
    );
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn doctor_reports_tools_resources_and_lease_conflicts() {
    let mut sb = Sandbox::new();
    let leases = sb.root.path().join("dhcpd_leases");
    fs::write(&leases, "{\n\tname=somebody\n\tip_address=192.168.64.20\n\thw_address=1,aa:bb:cc:dd:ee:ff\n}\n{\n\tname=fine\n\tip_address=192.168.64.3\n}\n").unwrap();
    sb.set("K0SLAB_DHCP_LEASES", leases.to_str().unwrap());
    let o = sb.k0slab(&["doctor", "-o", "json"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == name)
            .unwrap()
            .clone()
    };
    for tool in ["tart", "vagrant", "k0sctl", "kubectl", "vagrant-tart"] {
        assert_eq!(row(tool)["status"], "ok", "{tool}: {}", row(tool));
    }
    assert!(row("vagrant")["detail"]
        .as_str()
        .unwrap()
        .starts_with("Vagrant 2.4.3"));
    assert_eq!(row("DHCP leases")["status"], "warn");
    assert!(row("DHCP leases")["detail"]
        .as_str()
        .unwrap()
        .contains("192.168.64.20 is leased to \"somebody\" but planned for worker-1"));
    // 10 controllers and 80 workers need far more memory than any test machine has.
    let o = sb.k0slab(
        &["doctor"],
        &[
            ("control_plane_count", "10"),
            ("worker_count", "80"),
            ("cpu_worker", "64"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("memory") && l.contains("FAIL")),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("CPUs") && l.contains("FAIL")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn ctrl_c_stops_the_children_and_keeps_lab_json_consistent() {
    let sb = Sandbox::new();
    let child = sb.spawn_k0slab(&["up"], &[("STANDIN_VAGRANT_BOOT_SECONDS", "30")]);
    sb.wait_for("the machines are booting", |sb| sb.booted().len() == 2);
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", both(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped promptly"
    );
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    // Every stand-in process that started has ended (killed, so without an end record) or is gone.
    for call in sb.calls() {
        let alive = std::path::Path::new(&format!("/proc/{}", call.pid)).exists();
        assert!(
            !alive,
            "{} {:?} (pid {}) still runs",
            call.tool, call.args, call.pid
        );
    }
    let record: Value =
        serde_json::from_str(&fs::read_to_string(sb.lab().join("lab.json")).unwrap()).unwrap();
    assert_eq!(record["nodes"].as_array().unwrap().len(), 2);
    // And a new up resumes and finishes.
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn destroy_skips_machines_that_were_never_created() {
    // vagrant-tart refuses `destroy` of a machine that does not exist; k0slab asks first.
    // A lab where only the load balancer was ever created (by hand, with Vagrant).
    let sb = Sandbox::new();
    let o = sb.k0slab(&["render"], &[THREE_TWO[0], THREE_TWO[1]]);
    assert!(o.status.success(), "{}", both(&o));
    let lab = sb.lab().display().to_string();
    let vagrant = common::standins::standins_bin().join("vagrant");
    let o = sb.command(
        vagrant.to_str().unwrap(),
        &[
            "up",
            "load-balancer",
            "--provider",
            "tart",
            "--machine-readable",
        ],
        &[("VAGRANT_CWD", lab.as_str())],
    );
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(sb.vms().len(), 1);
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let destroyed: Vec<String> = sb
        .calls_of("vagrant", "destroy")
        .into_iter()
        .map(|a| a[2].clone())
        .collect();
    assert_eq!(
        destroyed,
        ["load-balancer"],
        "only the created machine is destroyed"
    );
    assert!(sb.vms().is_empty());
    assert!(!sb.lab().exists());
}

/// On a terminal, progress bars move the cursor; with `TERM=dumb` the same run prints plain
/// lines. Run through `script` (util-linux), which gives k0slab a pseudo-terminal.
#[test]
fn a_dumb_terminal_gets_no_cursor_escapes() {
    let Ok(script) = which::which("script") else {
        panic!("util-linux `script` is needed for this test (apt-get install bsdutils)");
    };
    let escapes = |term: &str| {
        let sb = Sandbox::new();
        let line = format!("{} up --wait 5s", env!("CARGO_BIN_EXE_k0slab"));
        let o = sb.command(
            script.to_str().unwrap(),
            &["-qec", &line, "/dev/null"],
            &[("TERM", term), ("worker_count", "0")],
        );
        assert!(o.status.success(), "{term}: {}", both(&o));
        stdout(&o).contains("\x1b[")
    };
    assert!(
        escapes("xterm-256color"),
        "a real terminal gets progress bars"
    );
    assert!(!escapes("dumb"), "TERM=dumb gets none");
}

/// k0sctl only warns when it cannot write `--kubeconfig-out` (k0sctl `action/apply.go`): the
/// kubeconfig then comes from `k0sctl kubeconfig`, and the lab is healthy all the same.
#[test]
fn a_kubeconfig_the_apply_could_not_write_is_fetched_with_k0sctl_kubeconfig() {
    let sb = Sandbox::new();
    let o = up(&sb, &[("STANDIN_K0SCTL_NO_KUBECONFIG_OUT", "1")]);
    assert!(o.status.success(), "{}", both(&o));
    let config = sb.lab().join("k0sctl.yaml").display().to_string();
    assert_eq!(
        sb.calls_of("k0sctl", "kubeconfig"),
        vec![vec![
            "kubeconfig".to_string(),
            "--config".into(),
            config,
            "--address".into(),
            "https://192.168.64.10:6443".into()
        ]]
    );
    let kubeconfig = fs::read_to_string(sb.lab().join("kubeconfig")).unwrap();
    assert!(
        kubeconfig.contains("server: https://192.168.64.10:6443"),
        "{kubeconfig}"
    );
    let left: Vec<_> = fs::read_dir(sb.lab())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kubeconfig-from-apply"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Issue 16, 9: a backup keeps the shape of its lab beside it (`<backup>.lab.json`), and
/// `restore` in a new shell (nothing set) brings back that shape; settings that contradict it
/// are refused before anything runs, and so is a backup without the record unless the shape is
/// given.
#[test]
fn restore_brings_back_the_shape_of_the_backups_lab() {
    let sb = Sandbox::new();
    assert!(up(&sb, THREE_TWO).status.success());
    let o = sb.k0slab(&["backup"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let backups = sb.lab().join("backups");
    let file = fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("a backup");
    let record_path = std::path::PathBuf::from(format!("{}.lab.json", file.display()));
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));

    let file_arg = file.display().to_string();
    let untouched = common::tree(&sb.lab());
    sb.clear_calls();
    // Settings that contradict the backup's shape: refused, nothing runs or is written.
    for (env, says) in [
        (
            &[("worker_count", "1")][..],
            "worker_count: the backup's lab has 2, now asked for 1",
        ),
        (
            &[("control_plane_count", "1"), ("worker_count", "1")],
            "control_plane_count: the backup's lab has 3, now asked for 1",
        ),
        (
            &[("K0SLAB_ENDPOINT", "none")],
            "K0SLAB_ENDPOINT: the backup's lab has auto, now asked for none",
        ),
    ] {
        let o = sb.k0slab(&["restore", &file_arg], env);
        assert_eq!(o.status.code(), Some(2), "{env:?}: {}", both(&o));
        assert!(stderr(&o).contains(says), "{env:?}: {}", stderr(&o));
        assert!(sb.calls().is_empty(), "{env:?}: {:?}", sb.calls());
        assert_eq!(common::tree(&sb.lab()), untouched, "{env:?}");
    }
    // A backup of k0slab 0.1.0 has no record: the shape must be given.
    let aside = sb.work().join("record-aside");
    let _ = fs::rename(&record_path, &aside);
    let o = sb.k0slab(&["restore", &file_arg], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(
        stderr(&o).contains("has no record of the lab it was taken of")
            && stderr(&o).contains("control_plane_count=3 worker_count=2 k0slab restore"),
        "{}",
        stderr(&o)
    );
    assert!(sb.calls().is_empty(), "{:?}", sb.calls());
    let _ = fs::rename(&aside, &record_path);

    // A new shell: nothing set, the backup's 3+2 comes back (with its load balancer).
    let o = sb.k0slab(&["restore", &file_arg, "--wait", "5s"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let lab: Value =
        serde_json::from_str(&fs::read_to_string(sb.lab().join("lab.json")).unwrap()).unwrap();
    assert_eq!(lab["inputs"]["control_plane_count"], 3);
    assert_eq!(lab["inputs"]["worker_count"], 2);
    let mut booted = sb.booted();
    booted.sort();
    assert_eq!(
        booted,
        [
            "control-plane-1",
            "control-plane-2",
            "control-plane-3",
            "load-balancer",
            "worker-1",
            "worker-2"
        ]
    );
    assert!(sb
        .calls_of("k0sctl", "apply")
        .iter()
        .any(|a| a.contains(&"--restore-from".to_string())));
    // The record beside the backup, kept by destroy: the lab's inputs, private as the backup.
    let record: Value = serde_json::from_str(&fs::read_to_string(&record_path).unwrap()).unwrap();
    assert_eq!(record["inputs"]["control_plane_count"], 3, "{record}");
    assert_eq!(record["inputs"]["worker_count"], 2, "{record}");
    assert_eq!(
        fs::metadata(&record_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// A fresh checkout has no lab directory yet, and Vagrant refuses a `VAGRANT_CWD` that does not
/// exist for every command but `--version` (the stand-in as hashicorp/vagrant v2.3.4
/// `lib/vagrant/environment.rb` lines 90-95): doctor, install-plugin and up still ask it for its
/// plugins, from a directory that exists, and doctor writes nothing.
#[test]
fn doctor_install_plugin_and_up_work_before_the_lab_directory_exists() {
    let mut sb = Sandbox::new();
    assert!(!sb.lab().exists());
    // The stand-in refuses a missing working directory as Vagrant does.
    let missing = sb.lab().display().to_string();
    let o = sb.command("vagrant", &["plugin", "list"], &[("VAGRANT_CWD", &missing)]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("The working directory for Vagrant doesn't exist!"),
        "{}",
        both(&o)
    );
    let o = sb.command("vagrant", &["--version"], &[("VAGRANT_CWD", &missing)]);
    assert!(o.status.success(), "{}", both(&o));

    let (code, row) = sb.doctor_row(&[], "vagrant-tart");
    assert_eq!(row["status"], "ok", "{row}");
    assert_eq!(code, Some(0), "{row}");
    assert!(!sb.lab().exists(), "doctor wrote nothing");
    sb.set("STANDIN_NO_TART_PLUGIN", "1");
    let o = sb.k0slab(&["install-plugin"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(!sb.lab().exists(), "install-plugin wrote nothing");
    let o = up(&sb, &[]);
    assert!(o.status.success(), "{}", both(&o));
}

// --- health: bounded, any layout, stopped machines ------------------------------------------

/// Stops `machines` of the lab with the stand-in Vagrant itself, behind k0slab's back.
fn halt_behind_k0slabs_back(sb: &Sandbox, machines: &[&str]) {
    let mut args = vec!["halt"];
    args.extend_from_slice(machines);
    let lab = sb.lab().display().to_string();
    let o = sb.command("vagrant", &args, &[("VAGRANT_CWD", &lab)]);
    assert!(o.status.success(), "{}", both(&o));
}

/// `k0slab health -o json`, which must end within `limit` (killed and failed otherwise).
fn health_within(sb: &Sandbox, limit: Duration) -> (Option<i32>, Value) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_k0slab"))
        .args(["health", "-o", "json"])
        .current_dir(sb.work())
        .env_clear()
        .envs(&sb.env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!("health still ran after {limit:?}: {}", both(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(&o)));
    (o.status.code(), report)
}

fn health_check(report: &Value, name: &str) -> Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
        .clone()
}

/// Without quorum `k0s etcd member-list` retries for minutes (the stand-in hangs as it does):
/// health bounds it and says why etcd did not answer.
#[test]
fn health_without_quorum_ends_in_time_and_says_etcd_did_not_answer() {
    let sb = Sandbox::new();
    assert!(
        up(&sb, &[("control_plane_count", "3"), ("worker_count", "1")])
            .status
            .success()
    );
    halt_behind_k0slabs_back(&sb, &["control-plane-2", "control-plane-3"]);
    let (code, report) = health_within(&sb, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{report}");
    let etcd = health_check(&report, "etcd");
    assert_eq!(etcd["ok"], false, "{etcd}");
    assert_eq!(
        etcd["detail"],
        "etcd on control-plane-1 did not answer `k0s etcd member-list` within 10s (etcd \
         lists its members only with quorum)"
    );
    let machines = health_check(&report, "machines");
    assert_eq!(
        machines["detail"], "stopped: control-plane-2, control-plane-3: run `k0slab up`",
        "{machines}"
    );
    // Bounded on the controller itself, not only on k0slab's side.
    assert!(sb
        .calls_of("vagrant", "ssh")
        .iter()
        .any(|a| a.last().unwrap() == "sudo timeout 10 k0s etcd member-list"));
}

/// Health asks every controller that runs, not only the first three: with control-plane-1..3
/// of 7 stopped, 4 members keep quorum and control-plane-4 answers.
#[test]
fn health_reads_etcd_from_a_surviving_controller_in_any_layout() {
    let sb = Sandbox::new();
    assert!(
        up(&sb, &[("control_plane_count", "7"), ("worker_count", "0")])
            .status
            .success()
    );
    halt_behind_k0slabs_back(
        &sb,
        &["control-plane-1", "control-plane-2", "control-plane-3"],
    );
    sb.clear_calls();
    let (code, report) = health_within(&sb, Duration::from_secs(60));
    assert_eq!(
        code,
        Some(1),
        "the stopped machines fail their check: {report}"
    );
    let etcd = health_check(&report, "etcd");
    assert_eq!(etcd["ok"], true, "{etcd}");
    assert_eq!(etcd["detail"], "7 members, one per controller");
    let asked: Vec<String> = sb
        .calls_of("vagrant", "ssh")
        .iter()
        .filter(|a| a.last().unwrap().contains("etcd member-list"))
        .map(|a| a[1].clone())
        .collect();
    assert_eq!(
        asked,
        ["control-plane-4"],
        "stopped controllers are not asked"
    );
}

/// A stopped machine is named as stopped with what starts it, not as Vagrant's last line.
#[test]
fn health_names_a_stopped_machine_and_how_to_start_it() {
    let sb = Sandbox::new();
    assert!(up(&sb, &[("worker_count", "0")]).status.success());
    halt_behind_k0slabs_back(&sb, &["control-plane-1"]);
    let (code, report) = health_within(&sb, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(
        health_check(&report, "machines")["detail"],
        "stopped: control-plane-1: run `k0slab up`"
    );
    assert_eq!(
        health_check(&report, "storage")["detail"],
        "no controller is running (control-plane-1 stopped): run `k0slab up`"
    );
    let o = sb.k0slab(&["status"], &[]);
    assert!(
        stdout(&o).contains("not running: control-plane-1 (stopped): run `k0slab up`"),
        "{}",
        stdout(&o)
    );
}

// --- doctor: what README says it checks ------------------------------------------------------

fn doctor_rows(sb: &Sandbox, extra: &[(&str, &str)]) -> (Option<i32>, Vec<Value>) {
    let o = sb.k0slab(&["doctor", "-o", "json"], extra);
    let rows: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", both(&o)));
    (o.status.code(), rows.as_array().unwrap().clone())
}

fn names(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["check"].as_str().unwrap()).collect()
}

#[test]
fn doctor_checks_softnets_set_up_sudo_and_bootpd_and_names_the_load_balancers_needs() {
    let mut sb = Sandbox::new();
    let (code, rows) = doctor_rows(&sb, &[]);
    assert_eq!(code, Some(0), "{rows:?}");
    let all = names(&rows);
    for check in ["macOS", "softnet", "softnet set-up", "sudo", "bootpd"] {
        assert!(all.contains(&check), "{check} in {all:?}");
    }
    assert!(!all.contains(&"load balancer"), "1+1 has none: {all:?}");
    let (_, row) = sb.doctor_row(&[], "sudo");
    assert_eq!(row["status"], "ok");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .starts_with("k0slab runs as root"),
        "the tests run as root: {row}"
    );
    let (_, row) = sb.doctor_row(&[], "bootpd");
    assert_eq!(row["status"], "ok");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.starts_with("running (pid "), "{row}");
    assert!(detail.contains("measures that it answers"), "{row}");

    // bootpd gone idle: its pid file stays behind.
    sb.stop_bootpd();
    let (_, row) = sb.doctor_row(&[], "bootpd");
    assert_eq!(row["status"], "ok");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .starts_with("not running now (")
            && row["detail"]
                .as_str()
                .unwrap()
                .contains("is left from an earlier run"),
        "{row}"
    );
    let (code, row) = sb.doctor_row(&[("K0SLAB_BOOTPD_EXE", "/nonexistent/bootpd")], "bootpd");
    assert_eq!(
        (code, row["status"].as_str()),
        (Some(1), Some("fail")),
        "{row}"
    );

    // The load balancer's first boot needs the internet once.
    let (_, row) = sb.doctor_row(THREE_TWO, "load balancer");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("apt-get install haproxy"),
        "{row}"
    );

    // Softnet without its SUID bit: the set-up row fails naming the fix, the version row stays.
    let cellar = fs::read_link(sb.root.path().join("bin/softnet")).unwrap();
    fs::set_permissions(&cellar, fs::Permissions::from_mode(0o755)).unwrap();
    let (code, rows) = doctor_rows(&sb, &[]);
    assert_eq!(code, Some(1));
    let row = |n: &str| rows.iter().find(|r| r["check"] == n).unwrap().clone();
    assert_eq!(row("softnet")["status"], "ok", "{:?}", row("softnet"));
    let setup = row("softnet set-up");
    assert_eq!(setup["status"], "fail", "{setup}");
    let detail = setup["detail"].as_str().unwrap();
    assert!(
        detail.contains("is not owned by root with the SUID bit"),
        "{detail}"
    );
    assert!(detail.contains("sudo chmod u+s"), "{detail}");

    // Off bootpd's networks neither sudo nor bootpd is needed; off Softnet no Softnet.
    let (_, rows) = doctor_rows(&sb, &[("K0SLAB_NETWORK", "bridged:en0")]);
    let all = names(&rows);
    for check in ["softnet", "softnet set-up", "sudo", "bootpd"] {
        assert!(!all.contains(&check), "{check} in {all:?}");
    }
}

#[test]
fn doctor_says_when_this_is_not_macos() {
    let mut sb = Sandbox::new();
    // Every stand-in but sw_vers, which every Mac has.
    let no_sw_vers = sb.root.path().join("no-sw-vers");
    fs::create_dir_all(&no_sw_vers).unwrap();
    for entry in fs::read_dir(common::standins::standins_bin()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "sw_vers" {
            std::os::unix::fs::symlink(entry.path(), no_sw_vers.join(entry.file_name())).unwrap();
        }
    }
    let full_path = sb.env["PATH"].clone();
    let rest = full_path.split_once(':').unwrap().1.to_string();
    sb.set("PATH", &format!("{}:{rest}", no_sw_vers.display()));
    let (code, row) = sb.doctor_row(&[], "macOS");
    assert_eq!(code, Some(1), "{row}");
    assert_eq!(row["status"], "fail", "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(detail.starts_with("this is not macOS (linux"), "{detail}");
    assert!(
        detail.contains("`plan`, `render` and `up --dry-run` work here"),
        "{detail}"
    );
}
