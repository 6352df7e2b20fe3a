//! Issue 8: a lab touches nothing that is not its own. Two labs on one (stand-in) Tart host,
//! VMs of another lab, destroy without lab.json or with a machine missing from it. Run inside
//! a network namespace with no interfaces, like every flow test.

mod common;

use std::fs;

use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

fn record(sb: &Sandbox, dir: &str) -> Value {
    serde_json::from_str(&fs::read_to_string(sb.work().join(dir).join("lab.json")).unwrap())
        .unwrap()
}

fn up_in(sb: &Sandbox, dir: &str, env: &[(&str, &str)]) -> std::process::Output {
    sb.k0slab(&["--dir", dir, "up", "--wait", "5s"], env)
}

#[test]
fn two_checkouts_come_up_side_by_side_and_each_destroy_removes_only_its_own_vms() {
    let mut sb = Sandbox::new();
    sb.unset("K0SLAB_NAME");
    let a = up_in(&sb, "projA/lab", &[("worker_count", "0")]);
    assert!(a.status.success(), "{}", both(&a));
    // Another subnet: both labs plan .10 for control-plane-1, and bootpd serves one subnet.
    let b = up_in(
        &sb,
        "projB/lab",
        &[
            ("worker_count", "0"),
            ("K0SLAB_NETWORK", "bridged:en0"),
            ("K0SLAB_SUBNET", "192.168.65.0/24"),
        ],
    );
    assert!(b.status.success(), "{}", both(&b));
    let name_a = record(&sb, "projA/lab")["inputs"]["name"].clone();
    let name_b = record(&sb, "projB/lab")["inputs"]["name"].clone();
    assert_ne!(name_a, name_b, "both directories are called lab");
    let vm_a = format!("{}-control-plane-1", name_a.as_str().unwrap());
    let vm_b = format!("{}-control-plane-1", name_b.as_str().unwrap());
    assert_eq!(sb.vms().len(), 2, "{:?}", sb.vms());

    let o = sb.k0slab(&["--dir", "projA/lab", "destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(!sb.vms().contains_key(&vm_a));
    assert_eq!(sb.vms().get(&vm_b).map(String::as_str), Some("running"));
    let o = sb.k0slab(&["--dir", "projB/lab", "destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    let registry: Value = serde_json::from_str(
        &fs::read_to_string(sb.home().join(".k0slab/vms.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(registry["vms"], serde_json::json!({}), "every VM forgotten");
}

#[test]
fn up_refuses_the_vms_of_another_lab_and_destroy_leaves_them_alone() {
    let sb = Sandbox::new();
    let shared = [("K0SLAB_NAME", "shared"), ("worker_count", "0")];
    let a = up_in(&sb, "projA/lab", &shared);
    assert!(a.status.success(), "{}", both(&a));
    sb.clear_calls();
    let b = up_in(&sb, "projB/lab", &shared);
    assert_eq!(b.status.code(), Some(2), "{}", both(&b));
    let projects = sb.work().canonicalize().unwrap();
    assert!(
        stderr(&b).contains(&format!(
            "shared-control-plane-1 belongs to lab shared in {}",
            projects.join("projA/lab").display()
        )),
        "{}",
        stderr(&b)
    );
    assert!(sb.booted().is_empty(), "nothing booted for the second lab");
    let o = sb.k0slab(&["--dir", "projB/lab", "destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(stderr(&o).contains("left alone"), "{}", both(&o));
    assert_eq!(
        sb.vms().get("shared-control-plane-1").map(String::as_str),
        Some("running"),
        "the other lab's VM is untouched"
    );
    assert!(sb.calls_of("tart", "delete").is_empty());
}

#[test]
fn destroy_without_lab_json_still_removes_the_labs_vms_and_addresses() {
    let sb = Sandbox::new();
    assert!(up_in(&sb, "lab", &[]).status.success());
    fs::remove_file(sb.lab().join("lab.json")).unwrap();
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    assert!(stdout(&o).contains("deleted Tart VM k0slab-worker-1"), "{}", stdout(&o));
    assert!(!sb.bootptab().contains("k0slab lab k0slab"), "{}", sb.bootptab());
    assert!(
        sb.lab().join("Vagrantfile").exists(),
        "without lab.json k0slab cannot tell which files it wrote: kept"
    );
}

#[test]
fn destroy_removes_the_vm_of_a_machine_missing_from_lab_json() {
    let sb = Sandbox::new();
    assert!(up_in(&sb, "lab", &[]).status.success());
    let mut r = record(&sb, "lab");
    r["nodes"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["name"] != "worker-1");
    fs::write(sb.lab().join("lab.json"), r.to_string()).unwrap();
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
}

#[test]
fn up_renders_again_with_other_inputs_while_no_machine_exists() {
    let sb = Sandbox::new();
    assert!(sb.k0slab(&["render"], &[]).status.success());
    let o = up_in(&sb, "lab", &[("worker_count", "0")]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(record(&sb, "lab")["inputs"]["worker_count"], 0);
    // Once machines exist, other inputs are refused.
    let o = up_in(&sb, "lab", &[("worker_count", "1")]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
}
