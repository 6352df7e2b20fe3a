//! The `k0slab` binary end to end: plan and render in temporary directories, bad input, and
//! the promise that bad input writes and changes nothing.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

/// `k0slab` with a clean environment (only PATH and the given variables), run in `cwd`.
fn k0slab(cwd: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::cargo_bin("k0slab").unwrap();
    cmd.current_dir(cwd).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn plan_prints_a_table_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = k0slab(
        dir.path(),
        &[("control_plane_count", "3"), ("worker_count", "2")],
    )
    .arg("plan")
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "ROLE",
            "ADDRESS",
            "CPUS",
            "MEMORY",
            "DISK",
            "WORKLOADS"
        ]
    );
    let row = |i: usize| rows[i].split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        row(1),
        "control-plane-1 controller+worker 192.168.64.10 2 2048 MB 32 GB yes"
    );
    assert_eq!(
        row(2),
        "control-plane-2 controller 192.168.64.11 2 2048 MB 32 GB no"
    );
    assert_eq!(
        row(3),
        "control-plane-3 controller 192.168.64.12 2 2048 MB 32 GB no"
    );
    assert_eq!(row(4), "worker-1 worker 192.168.64.20 2 4096 MB 32 GB yes");
    assert_eq!(row(5), "worker-2 worker 192.168.64.21 2 4096 MB 32 GB yes");
    assert_eq!(
        row(6),
        "load-balancer haproxy 192.168.64.100 1 1024 MB 32 GB no"
    );
    assert!(
        out.contains("endpoint  https://192.168.64.100:6443 (haproxy"),
        "{out}"
    );
    assert!(common::tree(dir.path()).is_empty(), "plan wrote files");
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "plan made a directory"
    );
}

#[test]
fn plan_json_is_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let o = k0slab(dir.path(), &[("control_plane_count", "2")])
        .args(["plan", "--output", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // The default name: k0slab and a hash of the lab directory's path.
    let name = v["name"].as_str().unwrap();
    assert!(
        name.len() == 13
            && name.starts_with("k0slab-")
            && name[7..].chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    assert_eq!(v["endpoint"]["kind"], "haproxy");
    assert_eq!(v["endpoint"]["url"], "https://192.168.64.100:6443");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4, "2 controllers, a worker, the load balancer");
    assert_eq!(nodes[1]["role"], "controller+worker");
    assert_eq!(nodes[1]["no_taints"], true);
    assert_eq!(nodes[2]["vm_name"], format!("{name}-worker-1"));
    assert_eq!(v["total_memory_mb"], 2048 * 2 + 4096 + 1024);
    assert!(v["warnings"][0].as_str().unwrap().contains("etcd"));
    assert!(
        stderr(&o).is_empty(),
        "JSON mode keeps warnings inside the JSON"
    );
}

#[test]
fn warnings_for_even_controller_counts_go_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["2", "4"] {
        let o = k0slab(dir.path(), &[("control_plane_count", n)])
            .arg("plan")
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(stderr(&o).starts_with("warning: "), "{n}: {}", stderr(&o));
        assert!(stderr(&o).contains("prefer 3 or 5"));
    }
    let o = k0slab(dir.path(), &[("control_plane_count", "3")])
        .arg("plan")
        .output()
        .unwrap();
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn render_writes_the_lab_of_the_done_criterion() {
    let dir = tempfile::tempdir().unwrap();
    let o = k0slab(
        dir.path(),
        &[("control_plane_count", "3"), ("worker_count", "2")],
    )
    .args(["--dir", "demo", "render"])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let lab = dir.path().join("demo");
    for (name, mode) in [
        ("Vagrantfile", 0o644),
        ("k0sctl.yaml", 0o600),
        ("lab.json", 0o600),
        ("id_ed25519", 0o600),
        ("id_ed25519.pub", 0o600),
        (".gitignore", 0o644),
    ] {
        let meta = fs::metadata(lab.join(name)).unwrap_or_else(|_| panic!("{name} written"));
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
        assert!(
            stdout(&o).contains(&format!("demo/{name}")) || name == "id_ed25519.pub",
            "{name} reported"
        );
    }
    assert!(
        lab.join("haproxy.cfg").exists(),
        "3 controllers: the load balancer VM"
    );
    let yaml = fs::read_to_string(lab.join("k0sctl.yaml")).unwrap();
    let key_path = format!(
        "keyPath: {}",
        lab.join("id_ed25519").canonicalize().unwrap().display()
    );
    assert!(yaml.contains(&key_path), "{yaml}");
    let record: Value =
        serde_json::from_str(&fs::read_to_string(lab.join("lab.json")).unwrap()).unwrap();
    assert_eq!(record["inputs"]["control_plane_count"], 3);
    assert_eq!(record["nodes"].as_array().unwrap().len(), 6);
    let name = record["inputs"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("k0slab-demo-") && name.len() == 18,
        "{name}"
    );
    let vagrantfile = fs::read_to_string(lab.join("Vagrantfile")).unwrap();
    assert!(vagrantfile.contains(&format!("tart.name = \"{name}-worker-2\"")));
    let public = fs::read_to_string(lab.join("id_ed25519.pub")).unwrap();
    assert!(
        vagrantfile.contains(public.trim()),
        "the lab key is installed in the guests"
    );
}

#[test]
fn render_again_keeps_the_lab_and_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("control_plane_count", "3"), ("worker_count", "2")];
    let first = k0slab(dir.path(), &env).arg("render").output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    let before = common::tree(&dir.path().join("lab"));
    // No variables at all: the lab's own inputs are used, nothing changes.
    let again = k0slab(dir.path(), &[]).arg("render").output().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(common::tree(&dir.path().join("lab")), before);
    assert!(
        stdout(&again).contains("unchanged lab/Vagrantfile"),
        "{}",
        stdout(&again)
    );
    assert!(!stdout(&again).contains("created"), "{}", stdout(&again));
    // plan also shows the existing lab, not the defaults.
    let plan = k0slab(dir.path(), &[])
        .args(["plan", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 6);
}

#[test]
fn changed_inputs_rerender_only_while_no_machine_exists() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab");
    assert!(k0slab(dir.path(), &[("control_plane_count", "3")])
        .arg("render")
        .output()
        .unwrap()
        .status
        .success());
    let key = fs::read(lab.join("id_ed25519")).unwrap();
    let auth_pass = |lab: &Path| {
        let v: Value =
            serde_json::from_str(&fs::read_to_string(lab.join("lab.json")).unwrap()).unwrap();
        v["secrets"]["vrrp_auth_pass"].as_str().unwrap().to_string()
    };
    let pass = auth_pass(&lab);

    let o = k0slab(dir.path(), &[("worker_count", "2")])
        .arg("render")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("worker_count: the lab has 1, now asked for 2"),
        "{}",
        stdout(&o)
    );
    assert_eq!(fs::read(lab.join("id_ed25519")).unwrap(), key, "key kept");
    assert_eq!(auth_pass(&lab), pass, "secrets kept");

    // Once Vagrant has created a machine, changing the lab would orphan or mismatch VMs.
    let machine = lab.join(".vagrant/machines/control-plane-1/tart");
    fs::create_dir_all(&machine).unwrap();
    fs::write(machine.join("id"), "k0slab-control-plane-1").unwrap();
    let before = common::tree(&lab);
    let o = k0slab(
        dir.path(),
        &[("worker_count", "5"), ("control_plane_count", "1")],
    )
    .arg("render")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("worker_count: the lab has 2, now asked for 5"),
        "{err}"
    );
    assert!(
        err.contains("control_plane_count: the lab has 3, now asked for 1"),
        "{err}"
    );
    assert!(err.contains("destroy"), "{err}");
    assert_eq!(common::tree(&lab), before, "nothing changed");
}

/// Bad values: (environment, the text the message must hold).
const BAD: &[(&[(&str, &str)], &str)] = &[
    (
        &[("control_plane_count", "0")],
        "control_plane_count has the value \"0\"",
    ),
    (&[("control_plane_count", "11")], "from 1 to 10 (controllers use host .10 to .19; an 11th would take .20, worker-1's address)"),
    (
        &[("control_plane_count", "-1")],
        "control_plane_count has the value \"-1\"",
    ),
    (
        &[("control_plane_count", "")],
        "environment variable control_plane_count is set but empty: expected",
    ),
    (&[("worker_count", "81")], "from 0 to 80"),
    (
        &[("worker_count", "two")],
        "worker_count has the value \"two\"",
    ),
    (&[("memory_control", "512")], "from 1024 to 65536"),
    (&[("memory_worker", "1e4")], "memory_worker"),
    (&[("cpu_control", "0")], "cpu_control"),
    (&[("cpu_worker", "65")], "cpu_worker"),
    (&[("disk_size", "19")], "from 20 to 2048 (the image's own disk is 20 GB"),
    (&[("K0SLAB_NETWORK", "wifi")], "softnet (the default"),
    (
        &[("control_plane_count", "3"), ("K0SLAB_ENDPOINT", "cplb")],
        "Softnet drops every packet from such an address",
    ),
    (
        &[("CONTROL_PLANE_COUNT", "3"), ("control_plane_count", "5")],
        "unset one of them",
    ),
    (&[("K0SLAB_SUBNET", "192.168.64.0/25")], "K0SLAB_SUBNET"),
    (
        &[("K0SLAB_ENDPOINT", "kube-vip")],
        "one of auto, none, cplb, haproxy",
    ),
    (
        &[("K0SLAB_ENDPOINT", "cplb")],
        "needs at least 2 controllers",
    ),
    (
        &[
            ("control_plane_count", "3"),
            ("K0SLAB_ENDPOINT_IP", "192.168.64.20"),
        ],
        "worker-1's address",
    ),
    (
        &[("K0SLAB_IMAGE", "x\"; system(\"id\"); \"")],
        "K0SLAB_IMAGE",
    ),
    (&[("K0SLAB_PROVIDER", "virtualbox")], "K0SLAB_PROVIDER"),
    (&[("K0S_VERSION", "latest")], "K0S_VERSION"),
    (
        &[
            ("control_plane_count", "3"),
            ("K0SLAB_ENDPOINT", "cplb"),
            ("K0SLAB_NETWORK", "bridged:en0"),
            ("K0S_VERSION", "v1.31.14+k0s.0"),
        ],
        "K0S_VERSION=v1.31.14+k0s.0 is too old for K0SLAB_ENDPOINT=cplb: control-plane load \
         balancing needs k0s v1.32 or newer",
    ),
    (
        &[("K0SLAB_CONTROLLER_WORKLOADS", "sometimes")],
        "true or false",
    ),
    (
        &[
            ("K0SLAB_CONTROLLER_WORKLOADS", "false"),
            ("worker_count", "0"),
        ],
        "no node that runs workloads",
    ),
    (&[("K0SLAB_NAME", "Bad_Name")], "K0SLAB_NAME"),
    (&[("K0SLAB_DIR", "")], "K0SLAB_DIR"),
];

#[test]
fn bad_input_exits_2_with_one_message_and_creates_nothing() {
    for (env, expect) in BAD {
        for command in ["plan", "render"] {
            let dir = tempfile::tempdir().unwrap();
            let o = k0slab(dir.path(), env).arg(command).output().unwrap();
            assert_eq!(
                o.status.code(),
                Some(2),
                "{env:?} {command}: {}",
                stderr(&o)
            );
            let err = stderr(&o);
            assert!(err.starts_with("error: "), "{env:?}: {err}");
            assert_eq!(err.matches("error:").count(), 1, "{env:?}: {err}");
            assert!(err.contains(expect), "{env:?}: {err}");
            assert!(stdout(&o).is_empty(), "{env:?}: {}", stdout(&o));
            assert!(
                fs::read_dir(dir.path()).unwrap().next().is_none(),
                "{env:?} {command} wrote"
            );
        }
    }
}

#[test]
fn bad_input_leaves_an_existing_lab_untouched() {
    let dir = tempfile::tempdir().unwrap();
    assert!(k0slab(dir.path(), &[])
        .arg("render")
        .output()
        .unwrap()
        .status
        .success());
    let before = common::tree(dir.path());
    for (env, _) in BAD {
        let o = k0slab(dir.path(), env).arg("render").output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{env:?}");
        assert_eq!(common::tree(dir.path()), before, "{env:?} changed the lab");
    }
}

#[test]
fn bad_flags_name_the_flag_and_flags_beat_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let o = k0slab(dir.path(), &[])
        .args(["plan", "--worker-count", "-1"])
        .output()
        .unwrap();
    // clap would read "-1" as a flag; `=` passes it as a value, which we then refuse.
    assert_eq!(o.status.code(), Some(2));
    let o = k0slab(dir.path(), &[])
        .args(["plan", "--worker-count=-1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("flag --worker-count has the value \"-1\""),
        "{}",
        stderr(&o)
    );

    let o = k0slab(dir.path(), &[("worker_count", "3")])
        .args(["plan", "-o", "json", "--worker-count", "0"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(v["nodes"][0]["role"], "single");
}

#[test]
fn a_lab_directory_that_is_a_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes"), "mine").unwrap();
    for (args, env, name) in [
        (vec!["--dir", "notes", "render"], vec![], "flag --dir"),
        (
            vec!["render"],
            vec![("K0SLAB_DIR", "notes")],
            "environment variable K0SLAB_DIR",
        ),
    ] {
        let o = k0slab(dir.path(), &env).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{name} has the value \"notes\"")),
            "{}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("this path is a file"), "{}", stderr(&o));
    }
    assert_eq!(
        fs::read_to_string(dir.path().join("notes")).unwrap(),
        "mine"
    );
}

#[test]
fn k0slab_dir_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let o = k0slab(dir.path(), &[("K0SLAB_DIR", "elsewhere")])
        .arg("render")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("elsewhere/lab.json").exists());
    assert!(!dir.path().join("lab").exists());
}

#[test]
fn help_lists_every_setting_with_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let o = k0slab(dir.path(), &[])
        .args(["render", "--help"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let help = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
    for key in k0slab::inputs::Key::ALL {
        assert!(help.contains(key.flag()), "{}", key.flag());
        assert!(
            help.contains(&format!("env: {}", key.env_name())),
            "{}",
            key.env_name()
        );
    }
    let o = k0slab(dir.path(), &[]).arg("--version").output().unwrap();
    assert_eq!(
        stdout(&o).trim(),
        format!("k0slab {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn quiet_render_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = k0slab(dir.path(), &[("control_plane_count", "2")])
        .args(["-q", "render"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).is_empty() && stderr(&o).is_empty());
}

/// The help says what k0slab does: the default name it really gives, every exit code it ends
/// with (`process::interrupted_exit_code`).
#[test]
fn help_states_the_real_default_name_and_every_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let o = k0slab(dir.path(), &[]).args(["--help"]).output().unwrap();
    let help = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
    for code in ["0 success", "2 bad input", "130", "143", "129"] {
        assert!(help.contains(code), "{code}: {help}");
    }
    let o = k0slab(dir.path(), &[])
        .args(["plan", "--help"])
        .output()
        .unwrap();
    let help = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("[default: k0slab-<hash>, or k0slab-<dir name>-<hash>"),
        "{help}"
    );
    let o = k0slab(dir.path(), &[])
        .args(["plan", "-o", "json"])
        .output()
        .unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let name = plan["name"].as_str().unwrap();
    assert_eq!(
        name,
        k0slab::inputs::LabName::for_directory(&lab_dir).as_str()
    );
    assert!(
        name.len() == 13
            && name.starts_with("k0slab-")
            && name[7..].chars().all(|c| c.is_ascii_hexdigit()),
        "k0slab-<hash>: {name}"
    );
}

/// A flag given without its value, and a negative duration, are refused by name (exit 2).
#[test]
fn a_missing_value_and_a_negative_duration_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = k0slab(dir.path(), &[])
        .args(["plan", "--network"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("flag --network needs a value: expected"),
        "{err}"
    );
    assert!(!err.contains("\"\""), "{err}");
    for command in [
        &["up", "--dry-run", "--wait", "-5m"][..],
        &["health", "--wait", "-5m"],
    ] {
        let o = k0slab(dir.path(), &[]).args(command).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{command:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("'-5m'") && err.contains("--wait"),
            "{command:?}: {err}"
        );
        assert!(err.contains("cannot be negative"), "{command:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{command:?}: {err}");
    }
    let o = k0slab(dir.path(), &[])
        .args(["health", "--wait", "soon"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("such as 90s"), "{}", stderr(&o));
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
