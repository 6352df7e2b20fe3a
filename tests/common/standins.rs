//! A sandbox for orchestration tests: the stand-in vagrant, tart, k0sctl and kubectl first on
//! PATH, their state and call log in a temporary directory, a private HOME.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The Softnet release a sandbox has unless a test installs another (the newest tag).
pub const SOFTNET_VERSION: &str = "0.19.0";

pub fn standins_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins/bin")
}

pub struct Sandbox {
    pub root: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
    bootpd: Option<std::process::Child>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(mut b) = self.bootpd.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
        // The bootpd processes "launchd" started on demand (tests/standins/lib/network.rb).
        let pids = fs::read_to_string(self.state().join("bootpd-pids")).unwrap_or_default();
        for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) of a process this sandbox's stand-ins started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// One recorded call of a stand-in tool.
#[derive(Debug, Clone)]
pub struct Call {
    pub tool: String,
    pub event: String,
    pub args: Vec<String>,
    pub time: f64,
    pub pid: u64,
    pub status: Option<i64>,
}

/// The Ruby that runs the stand-ins (`#!/usr/bin/env -S ruby --disable-gems`): the first on PATH.
fn which_ruby() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("ruby"))
        .find(|p| p.is_file())
        .expect("ruby on PATH (tests/run.sh installs it)")
}

impl Sandbox {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        for d in ["state", "work", "home", "bin", "etc", "db"] {
            fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let path = format!(
            "{}:{}:{}",
            standins_bin().display(),
            root.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut env = BTreeMap::new();
        env.insert("PATH".into(), path);
        env.insert(
            "HOME".into(),
            root.path().join("home").display().to_string(),
        );
        env.insert(
            "K0SLAB_STANDIN_STATE".into(),
            root.path().join("state").display().to_string(),
        );
        env.insert("K0SLAB_POLL_INTERVAL".into(), "100ms".into());
        // A fixed lab name, so that tests can name VMs and contexts; the default name (the
        // directory plus a hash of its path) is tested with this unset.
        env.insert("K0SLAB_NAME".into(), "k0slab".into());
        // macOS' files, inside the sandbox: bootptab (as shipped: a header and the separator),
        // bootpd's leases and pid file, Tart's home.
        let etc = root.path().join("etc");
        fs::write(etc.join("bootptab"), "# bootptab\n%%\n").unwrap();
        // bootpd's configuration as Internet Sharing writes it for vmnet's default network.
        fs::write(
            etc.join("bootpd.plist"),
            k0slab::network::bootpd_plist::example("192.168.64.0/24".parse().unwrap()),
        )
        .unwrap();
        // The stand-in bootpd is a Ruby script: the executable its process runs is Ruby's.
        let ruby = fs::canonicalize(which_ruby()).unwrap();
        for (k, v) in [
            ("K0SLAB_BOOTPTAB", etc.join("bootptab")),
            ("K0SLAB_DHCP_LEASES", root.path().join("db/dhcpd_leases")),
            ("K0SLAB_BOOTPD_PID", root.path().join("db/bootpd.pid")),
            ("K0SLAB_BOOTPD_PLIST", etc.join("bootpd.plist")),
            ("K0SLAB_BOOTPD_EXE", ruby),
            ("TART_HOME", root.path().join("home/.tart")),
        ] {
            env.insert(k.into(), v.display().to_string());
        }
        let bootpd = Command::new(standins_bin().join("bootpd"))
            .env_clear()
            .envs(&env)
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok();
        let pid_file = root.path().join("db/bootpd.pid");
        let started = std::time::Instant::now();
        while !pid_file.exists() && started.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let sb = Self { root, env, bootpd };
        sb.install_softnet(Some(SOFTNET_VERSION));
        sb
    }

    /// Puts Softnet on the sandbox's PATH as Homebrew installs it, after its one-time set-up:
    /// `Cellar/softnet/<version>/bin/softnet`, owned by root with the SUID bit (the tests run
    /// as root, as CI does), linked from `bin/softnet` (Homebrew/brew
    /// `Library/Homebrew/formula.rb`, `versioned_prefix`: `rack/v`). Softnet prints no version
    /// (cirruslabs/softnet `src/main.rs` lines 25-26: no clap `version`), so that path is where
    /// k0slab reads it. `None`: a softnet outside any Cellar, whose version nobody can tell.
    pub fn install_softnet(&self, version: Option<&str>) {
        use std::os::unix::fs::PermissionsExt;
        let link = self.root.path().join("bin/softnet");
        let _ = fs::remove_file(&link);
        let _ = fs::remove_dir_all(self.root.path().join("Cellar"));
        let _ = fs::remove_dir_all(self.root.path().join("elsewhere"));
        let file = match version {
            Some(v) => self
                .root
                .path()
                .join(format!("Cellar/softnet/{v}/bin/softnet")),
            None => self.root.path().join("elsewhere/softnet"),
        };
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        // What Softnet does when run by hand: clap refuses `--version`; anything else needs the
        // VM's file descriptor that only Tart passes.
        fs::write(
            &file,
            "#!/bin/sh
if [ \"$1\" = --version ]; then
  echo \"error: unexpected argument '--version' found\" >&2
  exit 2
fi
echo 'stand-in softnet: Tart starts it' >&2
exit 1
",
        )
        .unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
    }

    /// Ends the running stand-in bootpd as it ends when idle: its pid file stays behind
    /// (tests/standins/bin/bootpd). The next DHCP packet makes "launchd" start a new one.
    pub fn stop_bootpd(&mut self) {
        if let Some(mut b) = self.bootpd.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
        let running = self.state().join("bootpd-running");
        if let Some(pid) = fs::read_to_string(&running)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: kill(2) of the bootpd this sandbox's stand-ins started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while running.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = fs::remove_file(&running);
    }

    /// `k0slab doctor -o json` with `extra`: its exit code and the row of `check`.
    pub fn doctor_row(&self, extra: &[(&str, &str)], check: &str) -> (Option<i32>, Value) {
        let o = self.k0slab(&["doctor", "-o", "json"], extra);
        let rows: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("doctor JSON: {e}: {}", both(&o)));
        let row = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == check)
            .unwrap_or_else(|| panic!("no {check} row: {rows}"))
            .clone();
        (o.status.code(), row)
    }

    /// The planned addresses in `lab.json` of the lab directory `dir` (under the work
    /// directory), in the record's order.
    pub fn lab_addresses(&self, dir: &str) -> Vec<String> {
        let record: Value = serde_json::from_str(
            &fs::read_to_string(self.work().join(dir).join("lab.json")).unwrap(),
        )
        .unwrap();
        record["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["address"].as_str().unwrap().to_string())
            .collect()
    }

    /// bootpd's pid file.
    pub fn bootpd_pid_file(&self) -> PathBuf {
        self.root.path().join("db/bootpd.pid")
    }

    /// bootpd's leases file as it is now.
    pub fn leases(&self) -> String {
        fs::read_to_string(self.root.path().join("db/dhcpd_leases")).unwrap_or_default()
    }

    pub fn bootptab(&self) -> String {
        fs::read_to_string(self.root.path().join("etc/bootptab")).unwrap()
    }

    /// A stand-in VM's record (lease, MAC, network, …).
    pub fn vm(&self, name: &str) -> Value {
        serde_json::from_str(
            &fs::read_to_string(self.state().join(format!("vms/{name}.json"))).unwrap(),
        )
        .unwrap()
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.insert(k.into(), v.into());
        self
    }

    pub fn unset(&mut self, k: &str) -> &mut Self {
        self.env.remove(k);
        self
    }

    pub fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    pub fn lab(&self) -> PathBuf {
        self.work().join("lab")
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    /// `k0slab ARGS` in the work directory with the sandbox environment plus `extra`.
    pub fn k0slab(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.command(env!("CARGO_BIN_EXE_k0slab"), args, extra)
    }

    /// `k0slab ARGS` started in the background (stdout discarded, stderr captured), in a
    /// process group of its own like a shell job, so that a test can signal the whole group.
    pub fn spawn_k0slab(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        Command::new(env!("CARGO_BIN_EXE_k0slab"))
            .args(args)
            .current_dir(self.work())
            .env_clear()
            .envs(&self.env)
            .envs(extra.iter().copied())
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Waits (at most 30 s) until `reached` holds; panics naming `what` otherwise.
    pub fn wait_for(&self, what: &str, reached: impl Fn(&Sandbox) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !reached(self) {
            assert!(std::time::Instant::now() < deadline, "{what}: not reached");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn command(&self, program: &str, args: &[&str], extra: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(self.work())
            .env_clear()
            .envs(&self.env);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// Every start of a stand-in call, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.events()
            .into_iter()
            .filter(|c| c.event == "start")
            .collect()
    }

    pub fn events(&self) -> Vec<Call> {
        let Ok(text) = fs::read_to_string(self.state().join("calls.jsonl")) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                Call {
                    tool: v["tool"].as_str().unwrap().into(),
                    event: v["event"].as_str().unwrap().into(),
                    args: v["args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect(),
                    time: v["time"].as_f64().unwrap(),
                    pid: v["pid"].as_u64().unwrap(),
                    status: v["status"].as_i64(),
                }
            })
            .collect()
    }

    /// Calls of `tool` whose first argument is `verb`, as argument lists.
    pub fn calls_of(&self, tool: &str, verb: &str) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .filter(|c| c.tool == tool && c.args.first().map(String::as_str) == Some(verb))
            .map(|c| c.args)
            .collect()
    }

    /// Machines named in `vagrant up` calls, in call order.
    pub fn booted(&self) -> Vec<String> {
        self.calls_of("vagrant", "up")
            .into_iter()
            .map(|a| a[1].clone())
            .collect()
    }

    pub fn clear_calls(&self) {
        let _ = fs::remove_file(self.state().join("calls.jsonl"));
    }

    /// The stand-in VMs (Tart's view): name → state.
    pub fn vms(&self) -> BTreeMap<String, String> {
        fs::read_dir(self.state().join("vms"))
            .map(|d| {
                d.flatten()
                    // Not the temporary files of a write a killed stand-in left behind.
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .map(|e| {
                        let v: Value =
                            serde_json::from_str(&fs::read_to_string(e.path()).unwrap()).unwrap();
                        (
                            v["name"].as_str().unwrap().to_string(),
                            v["state"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The k0s clusters the stand-in k0sctl applied, by name (its config's `metadata.name`,
    /// which k0slab sets to the lab name): `state/clusters/<name>.json`.
    pub fn clusters(&self) -> BTreeMap<String, Value> {
        fs::read_dir(self.state().join("clusters"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .map(|e| {
                        let name = e.path().file_stem().unwrap().to_string_lossy().into_owned();
                        let text = fs::read_to_string(e.path()).unwrap();
                        (name, serde_json::from_str(&text).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cluster named `name`, if k0sctl applied it.
    pub fn cluster_named(&self, name: &str) -> Option<Value> {
        self.clusters().remove(name)
    }

    /// The one cluster of a one-lab test; panics when there are several (use `cluster_named`).
    pub fn cluster(&self) -> Option<Value> {
        let mut all = self.clusters();
        assert!(
            all.len() <= 1,
            "{} clusters in the sandbox ({:?}): use cluster_named",
            all.len(),
            all.keys().collect::<Vec<_>>()
        );
        all.pop_first().map(|(_, c)| c)
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Both streams, for assertion messages.
pub fn both(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}
