//! The root step and bootpd as it really runs (issue 15): the helper that writes bootpd's files
//! as root takes nothing on trust, and `up` copes with bootpd's idle exit, its rewrites from
//! memory, and a shared network that is not 192.168.64.0/24. The stand-in bootpd and its DHCP
//! exchanges follow apple-oss-distributions/bootp (tests/standins/bin/bootpd,
//! tests/standins/lib/network.rb). Run inside a network namespace with no interfaces.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::standins::{both, stderr, Sandbox};
use serde_json::{json, Value};

/// `k0slab bootptab apply` with `input` on its standard input and `env` only.
fn helper(input: &str, env: &[(&str, String)]) -> Output {
    common::output_with_input(
        Command::new(env!("CARGO_BIN_EXE_k0slab"))
            .args(["bootptab", "apply"])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PATH", std::env::var("PATH").unwrap_or_default()),
        input.as_bytes(),
    )
}

fn sleeper() -> Child {
    Command::new("sleep").arg("300").spawn().unwrap()
}

fn alive(child: &mut Child) -> bool {
    child.try_wait().unwrap().is_none()
}

fn snapshot(paths: &[&Path]) -> Vec<Option<Vec<u8>>> {
    paths.iter().map(|p| fs::read(p).ok()).collect()
}

fn binding(hostname: &str, mac: &str, address: &str) -> Value {
    json!({"hostname": hostname, "mac": mac, "address": address})
}

fn assign(lab: &str, subnet: &str, bindings: Vec<Value>) -> Value {
    json!({"lab": lab, "edit": {"assign": {"subnet": subnet, "bindings": bindings}}})
}

#[test]
fn hostile_changes_to_the_root_helper_are_refused_with_nothing_written_or_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    let other = dir.path().join("other");
    let pid_file = dir.path().join("pid");
    fs::write(&victim, "root:x:0:0::/root:/bin/sh\n").unwrap();
    let mut stranger = sleeper();
    fs::write(&pid_file, stranger.id().to_string()).unwrap();
    let good = binding("lab-worker-1", "7e:0:0:0:0:1", "192.168.64.20");
    let hostile = [
        // Paths and a pid of its own choosing, as the staged file used to carry.
        json!({"lab": "lab", "edit": {"release": ["7e:0:0:0:0:1"]},
               "paths": {"bootptab": victim, "leases": other, "pid_file": pid_file}}),
        json!({"lab": "lab", "edit": {"release": ["7e:0:0:0:0:1"]}, "pid": stranger.id()}),
        assign(
            "lab",
            "192.168.64.0/24",
            vec![json!({"hostname": "lab-worker-1", "mac": "7e:0:0:0:0:1",
                "address": "192.168.64.20", "path": victim})],
        ),
        // A newline and a `%` would start new bootptab lines.
        assign(
            "lab",
            "192.168.64.0/24",
            vec![binding(
                "lab-worker-1\nevil 1 0:1:2:3:4:5 192.168.64.9",
                "7e:0:0:0:0:1",
                "192.168.64.20",
            )],
        ),
        assign(
            "lab",
            "192.168.64.0/24",
            vec![binding("lab-%%", "7e:0:0:0:0:1", "192.168.64.20")],
        ),
        json!({"lab": "lab\n%%", "edit": {"release": []}}),
        // Addresses outside the subnet, the gateway, a public subnet, a broadcast MAC.
        assign(
            "lab",
            "192.168.64.0/24",
            vec![binding("lab-worker-1", "7e:0:0:0:0:1", "10.0.0.20")],
        ),
        assign(
            "lab",
            "192.168.64.0/24",
            vec![binding("lab-worker-1", "7e:0:0:0:0:1", "192.168.64.1")],
        ),
        assign(
            "lab",
            "8.8.8.0/24",
            vec![binding("lab-worker-1", "7e:0:0:0:0:1", "8.8.8.20")],
        ),
        assign(
            "lab",
            "192.168.64.0/24",
            vec![binding(
                "lab-worker-1",
                "ff:ff:ff:ff:ff:ff",
                "192.168.64.20",
            )],
        ),
        // Another lab's machine, and the same address twice.
        assign(
            "lab",
            "192.168.64.0/24",
            vec![binding("other-worker-1", "7e:0:0:0:0:1", "192.168.64.20")],
        ),
        assign(
            "lab",
            "192.168.64.0/24",
            vec![
                good.clone(),
                binding("lab-worker-2", "7e:0:0:0:0:2", "192.168.64.20"),
            ],
        ),
    ];
    let system = [
        Path::new("/etc/bootptab"),
        Path::new("/var/db/dhcpd_leases"),
    ];
    let watched = [
        victim.as_path(),
        other.as_path(),
        pid_file.as_path(),
        system[0],
        system[1],
    ];
    let before = snapshot(&watched);
    // Test overrides do not reach the root half either.
    let overrides = vec![
        ("K0SLAB_BOOTPTAB", victim.display().to_string()),
        ("K0SLAB_DHCP_LEASES", other.display().to_string()),
        ("K0SLAB_BOOTPD_PID", pid_file.display().to_string()),
        ("K0SLAB_BOOTPD_EXE", "/bin/sleep".to_string()),
    ];
    for change in &hostile {
        let o = helper(&change.to_string(), &overrides);
        assert_eq!(o.status.code(), Some(2), "{change}: {}", both(&o));
        assert!(
            stderr(&o).contains("the bootpd change's"),
            "{change}: {}",
            both(&o)
        );
        assert_eq!(snapshot(&watched), before, "{change}: nothing written");
        assert!(alive(&mut stranger), "{change}: nothing signalled");
    }
    // Valid, with the overrides set: on this host (not macOS) nothing at all is written.
    let o = helper(
        &assign("lab", "192.168.64.0/24", vec![good]).to_string(),
        &overrides,
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("not macOS: nothing was written"),
        "{}",
        both(&o)
    );
    assert_eq!(snapshot(&watched), before);
    assert!(alive(&mut stranger));
    // A file argument, as the old helper took, is no longer accepted.
    let o = Command::new(env!("CARGO_BIN_EXE_k0slab"))
        .args(["bootptab", "apply"])
        .arg(&victim)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert_eq!(snapshot(&watched), before);
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

fn one_one() -> [(&'static str, &'static str); 2] {
    [("control_plane_count", "1"), ("worker_count", "1")]
}

fn up(sb: &Sandbox, env: &[(&str, &str)]) -> Output {
    sb.k0slab(&["up", "--wait", "5s"], env)
}

#[test]
fn a_stale_pid_file_naming_a_live_process_gets_no_signal_and_up_is_healthy() {
    let mut sb = Sandbox::new();
    // bootpd exited when idle (its pid file stays) and its pid went to another program.
    sb.stop_bootpd();
    let mut stranger = sleeper();
    fs::write(sb.bootpd_pid_file(), format!("{}\n", stranger.id())).unwrap();
    let o = up(&sb, &one_one());
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        alive(&mut stranger),
        "k0slab signalled a process that is not bootpd"
    );
    // launchd started bootpd for the VMs' packets, and it read k0slab's entries then.
    assert!(sb.state().join("bootpd-pids").is_file());
    assert!(
        sb.leases().contains("ip_address=192.168.64.10"),
        "{}",
        sb.leases()
    );

    // Idle again with the lab running: no packet comes before `destroy` signals, so the pid
    // file still names the stranger when k0slab reads it.
    sb.stop_bootpd();
    fs::write(sb.bootpd_pid_file(), format!("{}\n", stranger.id())).unwrap();
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        alive(&mut stranger),
        "destroy signalled a process that is not bootpd"
    );
    assert!(!sb.leases().contains("name=k0slab-"), "{}", sb.leases());
    assert!(
        !sb.bootptab().contains("k0slab lab k0slab"),
        "{}",
        sb.bootptab()
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

#[test]
fn bootpd_on_192_168_65_without_k0slab_subnet_gives_a_healthy_lab_there() {
    let sb = Sandbox::new();
    fs::write(
        sb.root.path().join("etc/bootpd.plist"),
        k0slab::network::bootpd_plist::example("192.168.65.0/24".parse().unwrap()),
    )
    .unwrap();
    let o = up(&sb, &one_one());
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stderr(&o).contains("bootpd serves 192.168.65.0/24"),
        "{}",
        both(&o)
    );
    assert_eq!(sb.lab_addresses("lab"), ["192.168.65.10", "192.168.65.20"]);
    assert_eq!(sb.vm("k0slab-control-plane-1")["lease"], "192.168.65.10");
    assert_eq!(sb.vm("k0slab-worker-1")["lease"], "192.168.65.20");
    let k0sctl = fs::read_to_string(sb.lab().join("k0sctl.yaml")).unwrap();
    assert!(k0sctl.contains("address: 192.168.65.10"), "{k0sctl}");
    assert!(!k0sctl.contains("192.168.64."), "{k0sctl}");
}

#[test]
fn an_explicit_subnet_bootpd_does_not_serve_is_refused_before_anything_is_written() {
    let sb = Sandbox::new();
    fs::write(
        sb.root.path().join("etc/bootpd.plist"),
        k0slab::network::bootpd_plist::example("192.168.65.0/24".parse().unwrap()),
    )
    .unwrap();
    let bootptab = sb.bootptab();
    let mut env = one_one().to_vec();
    env.push(("K0SLAB_SUBNET", "192.168.64.0/24"));
    let o = up(&sb, &env);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "K0SLAB_SUBNET=192.168.64.0/24 but bootpd on this host serves 192.168.65.0/24"
        ),
        "{err}"
    );
    assert!(!sb.lab().join("lab.json").exists(), "nothing written");
    assert!(sb.calls_of("vagrant", "up").is_empty(), "nothing booted");
    assert_eq!(sb.bootptab(), bootptab, "no address reserved");
    assert_eq!(sb.leases(), "", "no address assigned");
}

#[test]
fn an_entry_dropped_by_bootpds_rewrite_from_memory_is_put_back() {
    let mut sb = Sandbox::new();
    // The next bootpd launchd starts (for the VMs' first packets) gets the setting.
    sb.stop_bootpd();
    let mut env = one_one().to_vec();
    env.push(("STANDIN_BOOTPD_LATE_WRITE", "1"));
    let o = up(&sb, &env);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        sb.state().join("bootpd-late-write-done").exists(),
        "the stand-in dropped the edit once"
    );
    let err = stderr(&o);
    assert!(
        err.contains("bootpd rewrote its leases file from memory and dropped"),
        "{err}"
    );
    assert_eq!(sb.vm("k0slab-control-plane-1")["lease"], "192.168.64.10");
    assert_eq!(sb.vm("k0slab-worker-1")["lease"], "192.168.64.20");
}

#[test]
fn doctor_shows_the_subnet_bootpd_serves_and_fails_a_lab_outside_it() {
    let sb = Sandbox::new();
    let (_, row) = sb.doctor_row(&[], "bootpd subnet");
    assert_eq!(row["status"], "ok", "{row}");
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("bootpd serves 192.168.64.0/24"),
        "{row}"
    );
    fs::write(
        sb.root.path().join("etc/bootpd.plist"),
        k0slab::network::bootpd_plist::example("192.168.65.0/24".parse().unwrap()),
    )
    .unwrap();
    let (code, row) = sb.doctor_row(&[("K0SLAB_SUBNET", "192.168.64.0/24")], "bootpd subnet");
    assert_eq!(row["status"], "fail", "{row}");
    assert_eq!(code, Some(1));
    assert!(
        row["detail"]
            .as_str()
            .unwrap()
            .contains("the lab plans 192.168.64.0/24"),
        "{row}"
    );
    // Without K0SLAB_SUBNET the planned lab follows bootpd.
    let (_, row) = sb.doctor_row(&[], "bootpd subnet");
    assert_eq!(row["status"], "ok", "{row}");
}
