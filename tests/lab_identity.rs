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
    let registry: Value =
        serde_json::from_str(&fs::read_to_string(sb.home().join(".k0slab/vms.json")).unwrap())
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
    // Neither lab.json nor k0slab's copy of it (as in a lab of k0slab 0.1.0).
    fs::remove_file(sb.lab().join("lab.json")).unwrap();
    let _ = fs::remove_file(sb.lab().join(".lab.json.copy"));
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    assert!(
        stdout(&o).contains("deleted Tart VM k0slab-worker-1"),
        "{}",
        stdout(&o)
    );
    assert!(
        !sb.bootptab().contains("k0slab lab k0slab"),
        "{}",
        sb.bootptab()
    );
    assert!(
        sb.lab().join("Vagrantfile").exists(),
        "without lab.json k0slab cannot tell which files it wrote: kept"
    );
}

#[test]
fn a_damaged_lab_json_says_what_to_do_and_destroy_removes_the_whole_lab() {
    let sb = Sandbox::new();
    assert!(up_in(&sb, "lab", &[]).status.success());
    fs::write(sb.lab().join("notes.txt"), "mine").unwrap();
    fs::write(sb.lab().join("lab.json"), "{\"schema\": 1, \"k0slab_ver").unwrap();
    for command in [&["status"][..], &["up"], &["health"]] {
        let o = sb.k0slab(command, &[]);
        assert_eq!(o.status.code(), Some(1), "{command:?}: {}", both(&o));
        let err = stderr(&o);
        assert!(err.contains("lab.json is damaged"), "{command:?}: {err}");
        assert!(err.contains("`k0slab destroy` removes the lab"), "{err}");
    }
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("put it back from its copy (.lab.json.copy)"),
        "{}",
        stdout(&o)
    );
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    assert!(
        !sb.bootptab().contains("k0slab lab k0slab"),
        "{}",
        sb.bootptab()
    );
    let left: Vec<String> = fs::read_dir(sb.lab())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["notes.txt"], "only the user's file is left");
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "a second destroy: {}", both(&o));
    assert!(up_in(&sb, "lab", &[]).status.success(), "a new lab");
}

#[test]
fn a_damaged_lab_json_without_a_copy_still_loses_its_vms_and_destroy_says_what_to_do() {
    let sb = Sandbox::new();
    assert!(up_in(&sb, "lab", &[]).status.success());
    // A lab of k0slab 0.1.0, which kept no copy of lab.json.
    let _ = fs::remove_file(sb.lab().join(".lab.json.copy"));
    fs::write(sb.lab().join("lab.json"), "{not json").unwrap();
    for round in ["first", "second"] {
        let o = sb.k0slab(&["destroy"], &[]);
        assert!(o.status.success(), "{round} destroy: {}", both(&o));
        assert!(sb.vms().is_empty(), "{:?}", sb.vms());
        let out = stdout(&o);
        assert!(out.contains("lab.json in lab is damaged"), "{out}");
        assert!(
            out.contains("Look through lab and remove it yourself") && out.contains("rm -r lab"),
            "{round}: {out}"
        );
    }
    assert!(
        sb.lab().join("lab.json").exists(),
        "kept: k0slab cannot tell"
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

// --- files: never overwrite or delete what k0slab did not write -------------------------------

#[test]
fn render_refuses_to_overwrite_a_vagrantfile_the_user_put_there_and_writes_nothing() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.lab()).unwrap();
    fs::write(sb.lab().join("Vagrantfile"), "# mine\n").unwrap();
    for command in ["render", "up"] {
        let o = sb.k0slab(&[command], &[]);
        assert_eq!(o.status.code(), Some(2), "{command}: {}", both(&o));
        assert!(
            stderr(&o).contains("Vagrantfile (k0slab did not write it)"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(
        fs::read_to_string(sb.lab().join("Vagrantfile")).unwrap(),
        "# mine\n"
    );
    let left: Vec<_> = fs::read_dir(sb.lab()).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "nothing else written: {left:?}");
}

#[test]
fn render_refuses_a_generated_file_the_user_changed() {
    let sb = Sandbox::new();
    assert!(sb.k0slab(&["render"], &[]).status.success());
    let path = sb.lab().join("k0sctl.yaml");
    let edited = fs::read_to_string(&path).unwrap() + "# my note\n";
    fs::write(&path, &edited).unwrap();
    let o = sb.k0slab(&["render"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    assert!(
        stderr(&o).contains("k0sctl.yaml (changed since k0slab wrote it)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), edited);
}

#[test]
fn destroy_keeps_a_users_gitignore_and_lists_files_changed_since() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.lab()).unwrap();
    // The user's own .gitignore, even with k0slab's exact content ("unchanged" to render).
    let ours = "# Written by k0slab: a lab directory holds keys and generated files.\n*\n";
    fs::write(sb.lab().join(".gitignore"), ours).unwrap();
    assert!(sb.k0slab(&["render"], &[]).status.success());
    let path = sb.lab().join("k0sctl.yaml");
    fs::write(&path, fs::read_to_string(&path).unwrap() + "# my note\n").unwrap();
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        sb.lab().join(".gitignore").exists(),
        "the user's .gitignore"
    );
    assert!(path.exists(), "changed since k0slab wrote it");
    assert!(!sb.lab().join("Vagrantfile").exists());
    assert!(!sb.lab().join("lab.json").exists());
    let out = stdout(&o);
    assert!(
        out.contains("kept k0sctl.yaml (changed since k0slab wrote it)"),
        "{out}"
    );
    assert!(out.contains(".gitignore"), "{out}");

    // A .gitignore k0slab created goes with the lab.
    let sb = Sandbox::new();
    assert!(sb.k0slab(&["render"], &[]).status.success());
    assert!(sb.k0slab(&["destroy"], &[]).status.success());
    assert!(!sb.lab().exists(), "everything was k0slab's");
}

#[test]
fn destroy_removes_only_plain_names_inside_the_lab_directory() {
    let sb = Sandbox::new();
    assert!(sb.k0slab(&["render"], &[]).status.success());
    let outside = sb.work().join("precious");
    fs::write(&outside, "keep me").unwrap();
    let absolute = sb.home().join("absolute");
    fs::write(&absolute, "keep me too").unwrap();
    // A symlink inside the lab to a file outside: never followed.
    std::os::unix::fs::symlink(&outside, sb.lab().join("kubeconfig")).unwrap();
    let mut r = record(&sb, "lab");
    let files = r["files"].as_array_mut().unwrap();
    files.insert(0, Value::from("."));
    files.insert(0, Value::from("../precious"));
    files.insert(0, Value::from(absolute.display().to_string()));
    fs::write(sb.lab().join("lab.json"), r.to_string()).unwrap();
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep me");
    assert_eq!(fs::read_to_string(&absolute).unwrap(), "keep me too");
    assert!(stderr(&o).contains("\"../precious\", which is not a file of the lab directory"));
    assert!(
        !sb.lab().join("lab.json").exists(),
        "destroy went to the end"
    );
    assert!(
        fs::symlink_metadata(sb.lab().join("kubeconfig")).is_ok(),
        "the symlink is kept"
    );
}

// --- one command at a time --------------------------------------------------------------------

#[test]
fn a_second_command_on_a_busy_lab_names_the_holder_and_a_killed_holder_blocks_nothing() {
    let sb = Sandbox::new();
    let mut first = sb.spawn_k0slab(&["up"], &[("STANDIN_VAGRANT_BOOT_SECONDS", "30")]);
    sb.wait_for("the first up is booting", |sb| sb.booted().len() == 2);
    for args in [vec!["up"], vec!["destroy"], vec!["render"], vec!["halt"]] {
        let o = sb.k0slab(&args, &[("K0SLAB_LOCK_WAIT", "300ms")]);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", both(&o));
        assert!(
            stderr(&o).contains(&format!("`k0slab up` (pid {})", first.id())),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    assert_eq!(sb.booted().len(), 2, "nothing else booted");
    // Reading commands do not wait.
    assert!(sb.k0slab(&["plan"], &[]).status.success());
    // A holder killed outright leaves nothing that blocks.
    first.kill().unwrap();
    first.wait().unwrap();
    let o = up_in(&sb, "lab", &[]);
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn destroy_with_the_lab_directory_gone_still_removes_the_labs_vms() {
    let sb = Sandbox::new();
    assert!(up_in(&sb, "lab", &[]).status.success());
    assert_eq!(sb.vms().len(), 2);
    fs::remove_dir_all(sb.lab()).unwrap();
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(sb.vms().is_empty(), "{:?}", sb.vms());
    assert!(
        stdout(&o).contains("k0slab created these VMs for it"),
        "{}",
        stdout(&o)
    );
}

/// Two labs on one host, brought up at the same time: the stand-in k0sctl keeps one cluster
/// per `metadata.name` (the lab name), each kubeconfig reaches its own cluster although both
/// labs name their nodes control-plane-1 and worker-1, and destroying one leaves the other
/// cluster whole and healthy. Lab b is on a bridged LAN with another subnet, since both labs
/// plan the same host numbers and bootpd serves one subnet.
#[test]
fn two_labs_up_at_once_keep_their_own_clusters_and_destroy_leaves_the_other_whole() {
    let sb = Sandbox::new();
    let one_one = [("control_plane_count", "1"), ("worker_count", "1")];
    let env_a = [one_one[0], one_one[1], ("K0SLAB_NAME", "a")];
    let env_b = [
        one_one[0],
        one_one[1],
        ("K0SLAB_NAME", "b"),
        ("K0SLAB_NETWORK", "bridged:en0"),
        ("K0SLAB_SUBNET", "192.168.65.0/24"),
    ];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| up_in(&sb, "a", &env_a));
        let b = s.spawn(|| up_in(&sb, "b", &env_b));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success(), "{}", both(&a));
    assert!(b.status.success(), "{}", both(&b));
    assert_eq!(
        sb.clusters().keys().collect::<Vec<_>>(),
        ["a", "b"],
        "one cluster per lab name"
    );
    let cluster_a = sb.cluster_named("a").unwrap();
    let cluster_b = sb.cluster_named("b").unwrap();
    assert_eq!(cluster_a["hosts"][0]["vm"], "a-control-plane-1");
    assert_eq!(cluster_b["hosts"][0]["vm"], "b-control-plane-1");
    assert_eq!(cluster_b["hosts"][0]["address"], "192.168.65.10");

    // Each lab's kubeconfig lists its own nodes: same names, its own addresses.
    let node_ips = |dir: &str| {
        let kubeconfig = sb.work().join(dir).join("kubeconfig");
        let o = sb.command(
            "kubectl",
            &[
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
                "get",
                "nodes",
                "-o",
                "json",
            ],
            &[],
        );
        assert!(o.status.success(), "{}", both(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                format!(
                    "{} {}",
                    n["metadata"]["name"].as_str().unwrap(),
                    n["status"]["addresses"][0]["address"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        node_ips("a"),
        ["control-plane-1 192.168.64.10", "worker-1 192.168.64.20"]
    );
    assert_eq!(
        node_ips("b"),
        ["control-plane-1 192.168.65.10", "worker-1 192.168.65.20"]
    );
    for dir in ["a", "b"] {
        let o = sb.k0slab(&["--dir", dir, "health", "-o", "json"], &[]);
        assert!(o.status.success(), "lab {dir}: {}", both(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["healthy"], true, "lab {dir}: {v}");
    }

    let o = sb.k0slab(&["--dir", "a", "destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        sb.cluster_named("a").is_none(),
        "lab a's cluster went with its VMs"
    );
    assert_eq!(
        sb.cluster_named("b"),
        Some(cluster_b),
        "lab b's cluster untouched"
    );
    assert_eq!(sb.vms().len(), 2, "{:?}", sb.vms());
    let o = sb.k0slab(&["--dir", "b", "health", "-o", "json"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["healthy"], true, "{v}");
}

// --- a full disk: a render writes every file or none ------------------------------------------

/// Runs `script` with `sh` in a mount namespace of its own, on a fresh tmpfs of `pages` pages
/// (`$1`); `$2` is k0slab, `$3` a directory outside into which the script copies what it wants
/// kept (the tmpfs goes with the namespace). The tests run as root, as CI does.
fn on_small_tmpfs(
    sb: &Sandbox,
    pages: u32,
    script: &str,
    extra: &[(&str, &str)],
) -> (std::process::Output, std::path::PathBuf) {
    let run = tempfile::tempdir_in(sb.root.path()).unwrap().keep();
    let (mnt, out) = (run.join("mnt"), run.join("out"));
    fs::create_dir_all(&mnt).unwrap();
    fs::create_dir_all(&out).unwrap();
    let script = format!(
        "set -u\nmount -t tmpfs -o size=$(( {pages} * $(getconf PAGESIZE) )) tmpfs \"$1\" || \
         {{ echo 'cannot mount a tmpfs (the tests run as root)' >&2; exit 99; }}\n{script}"
    );
    let o = sb.command(
        "unshare",
        &[
            "-m",
            "sh",
            "-c",
            &script,
            "sh",
            mnt.to_str().unwrap(),
            env!("CARGO_BIN_EXE_k0slab"),
            out.to_str().unwrap(),
        ],
        extra,
    );
    assert_ne!(o.status.code(), Some(99), "{}", both(&o));
    (o, out)
}

/// Every name below `dir`, relative to it.
fn names_below(dir: &std::path::Path) -> Vec<String> {
    common::tree(dir)
        .into_keys()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect()
}

#[test]
fn a_render_on_a_full_disk_leaves_nothing_behind() {
    let sb = Sandbox::new();
    let mut failed = 0;
    let mut succeeded = 0;
    // From a disk with room for one small file to one with room for all of them.
    for pages in 1..=12 {
        let (o, out) = on_small_tmpfs(
            &sb,
            pages,
            "\"$2\" --dir \"$1/lab\" render; rc=$?; cp -a \"$1/.\" \"$3/\"; exit $rc",
            &[],
        );
        let left = names_below(&out);
        if o.status.success() {
            succeeded += 1;
            assert_eq!(
                left,
                [
                    "lab/.gitignore",
                    "lab/.lab.json.copy",
                    "lab/Vagrantfile",
                    "lab/id_ed25519",
                    "lab/id_ed25519.pub",
                    "lab/k0sctl.yaml",
                    "lab/lab.json"
                ],
                "{pages} pages"
            );
        } else {
            failed += 1;
            assert_eq!(o.status.code(), Some(1), "{pages} pages: {}", both(&o));
            assert!(
                stderr(&o).contains("No space left on device"),
                "{pages} pages: {}",
                stderr(&o)
            );
            assert!(
                left.is_empty() && !out.join("lab").exists(),
                "{pages} pages: a failed render left {left:?}"
            );
        }
    }
    assert!(
        failed > 0 && succeeded > 0,
        "{failed} failed, {succeeded} succeeded"
    );
}

#[test]
fn a_render_that_changes_the_lab_on_a_full_disk_changes_nothing() {
    let sb = Sandbox::new();
    let (mut failed, mut succeeded) = (0, 0);
    // A lab rendered on a roomy disk, then the disk filled up to `free` pages, then rendered
    // again with 40 workers: the Vagrantfile, k0sctl.yaml and lab.json all grow, so a render
    // that replaced them one by one would run out of room after the first.
    for free in 0..=40 {
        let script = format!(
            "\"$2\" --dir \"$1/lab\" render >/dev/null || exit 98
avail=$(df --output=avail -B$(getconf PAGESIZE) \"$1\" | tail -1)
head -c $(( (avail - {free}) * $(getconf PAGESIZE) )) /dev/zero > \"$1/fill\" 2>/dev/null
cp -a \"$1/lab\" \"$3/before\"
worker_count=40 \"$2\" --dir \"$1/lab\" render; rc=$?
cp -a \"$1/lab\" \"$3/after\"
exit $rc"
        );
        let (o, out) = on_small_tmpfs(&sb, 128, &script, &[]);
        assert_ne!(o.status.code(), Some(98), "{}", both(&o));
        let after = common::tree(&out.join("after"));
        let record: Value = serde_json::from_slice(&after[&out.join("after/lab.json")].0).unwrap();
        if o.status.success() {
            succeeded += 1;
            assert_eq!(record["inputs"]["worker_count"], 40, "{free} pages free");
        } else {
            failed += 1;
            assert_eq!(o.status.code(), Some(1), "{free} pages free: {}", both(&o));
            let before: Vec<_> = common::tree(&out.join("before")).into_values().collect();
            let after: Vec<_> = after.into_values().collect();
            assert!(
                before == after,
                "{free} pages free: the failed render changed the lab: {:?}",
                names_below(&out.join("after"))
            );
        }
    }
    assert!(
        failed > 0 && succeeded > 0,
        "{failed} failed, {succeeded} succeeded"
    );
}
