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

/// Without cargo and without K0SLAB_BIN, every task that runs k0slab stops before running it
/// and says what is missing (a fresh Mac has no Rust).
#[test]
fn without_cargo_every_task_says_how_to_install_rust() {
    let (mut sb, task) = sandbox();
    sb.unset("K0SLAB_BIN");
    // A PATH with task and the system's tools, and no cargo.
    let bin = sb.root.path().join("no-cargo-bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&task, bin.join("task")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    assert!(
        !std::path::Path::new("/usr/bin/cargo").exists()
            && !std::path::Path::new("/bin/cargo").exists(),
        "this test needs a system without cargo in /usr/bin and /bin"
    );
    for name in TASKS {
        let o = sb.command(&task, &[name], &[("PATH", &path)]);
        assert_ne!(o.status.code(), Some(0), "{name}: {}", both(&o));
        let err = common::standins::stderr(&o);
        assert!(
            err.contains(
                "k0slab is built from this checkout with cargo, which is not on PATH: brew \
                 install rust (or https://rustup.rs), or set K0SLAB_BIN to a k0slab binary"
            ),
            "{name}: {err}"
        );
        assert!(!err.contains("executable file not found"), "{name}: {err}");
    }
    assert!(!sb.lab().exists(), "no task ran k0slab");
}

/// The README's one set-up line for a fresh Mac installs every program the Taskfile runs and
/// every tool `up` needs for the default network, as the code names them.
#[test]
fn the_readme_set_up_line_installs_what_the_taskfile_and_up_run() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let section = &readme[readme.find("## Set-up commands").expect("the section")..];
    let line = section
        .lines()
        .find(|l| l.contains("task vagrant:up") && l.starts_with("brew install "))
        .expect("a set-up line that starts with brew install and ends in task vagrant:up");
    let formulas: Vec<&str> = line["brew install ".len()..]
        .split("&&")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let has = |f: &str| formulas.contains(&f);

    // The programs the Taskfile runs: each command's first word, with {{.K0SLAB}} as its
    // default (no K0SLAB_BIN on a fresh Mac).
    let taskfile: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(root.join("Taskfile.yml")).unwrap()).unwrap();
    let k0slab = taskfile["vars"]["K0SLAB"].as_str().unwrap();
    let default = k0slab
        .strip_prefix("${K0SLAB_BIN:-")
        .and_then(|d| d.strip_suffix('}'))
        .expect("K0SLAB is ${K0SLAB_BIN:-DEFAULT}");
    let mut programs = std::collections::BTreeSet::new();
    for (_, t) in taskfile["tasks"].as_mapping().unwrap() {
        for cmd in t["cmds"].as_sequence().unwrap() {
            let cmd = cmd.as_str().unwrap().replace("{{.K0SLAB}}", default);
            programs.insert(cmd.split_whitespace().next().unwrap().to_string());
        }
    }
    // Which Homebrew formula installs each program: `rust` builds cargo (Homebrew/homebrew-core
    // Formula/r/rust.rb, `tools` and its test of bin/"cargo"), `go-task` installs `task`
    // (Formula/g/go-task.rb, output: bin/"task").
    let formula_of = [("cargo", "rust"), ("task", "go-task")];
    for program in &programs {
        let formula = formula_of
            .iter()
            .find(|(p, _)| p == program)
            .map(|(_, f)| *f)
            .unwrap_or_else(|| {
                panic!("the Taskfile runs {program}: name its formula here and in the README's set-up line")
            });
        assert!(
            has(formula),
            "the set-up line lacks {formula} for {program}: {line}"
        );
    }
    assert_eq!(
        programs.into_iter().collect::<Vec<_>>(),
        ["cargo", "task"],
        "the Taskfile's programs"
    );

    // What `up` requires (src/workflow/preflight.rs), with the install hints k0slab prints.
    use k0slab::tools::Tool;
    for tool in [Tool::Tart, Tool::Vagrant, Tool::K0sctl, Tool::Kubectl] {
        let formula = tool
            .install_hint()
            .strip_prefix("brew install ")
            .expect("a brew hint");
        assert!(
            has(formula),
            "the set-up line lacks {formula} for {tool}: {line}"
        );
    }
    // Softnet, the default network, and its one-time set-up as k0slab states it.
    let hint = k0slab::tools::softnet::SETUP_HINT;
    let (install, setup) = hint.split_once(", then once: ").unwrap();
    assert!(
        has(install.strip_prefix("brew install ").unwrap()),
        "{line}"
    );
    assert!(
        line.contains(&format!("&& {setup} &&")),
        "{setup} in {line}"
    );
    assert!(
        line.contains("&& vagrant plugin install vagrant-tart &&"),
        "{line}"
    );
}
