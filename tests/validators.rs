//! The rendered files checked by the real tools: `vagrant validate` for every Vagrantfile,
//! `haproxy -c` for every haproxy.cfg, Ruby + `bash -n` for the guest scripts. The test command
//! (tests/run.sh) installs Vagrant and HAProxy; a missing tool fails these tests. vagrant-tart
//! only installs on macOS, so Vagrant loads a stand-in plugin (tests/standins/vagrant-tart)
//! that knows vagrant-tart's settings and checks their values.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{render, require_tool, write_all, SCENARIOS};

/// `vagrant validate` in `dir`, with the vagrant-tart stand-in plugin loaded through a
/// private VAGRANT_HOME (the real plugin only installs on macOS).
fn vagrant_validate(dir: &Path) -> Output {
    let home = dir.join(".vagrant.d");
    fs::create_dir_all(&home).unwrap();
    let plugin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins/vagrant-tart/plugin.rb");
    fs::write(
        home.join("Vagrantfile"),
        format!("require {:?}\n", plugin.display().to_string()),
    )
    .unwrap();
    Command::new(require_tool("vagrant"))
        .arg("validate")
        .env("VAGRANT_CWD", dir)
        .env("VAGRANT_HOME", &home)
        .env("VAGRANT_DEFAULT_PROVIDER", "tart")
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_DISABLE_VERSION_CHECK", "1")
        .output()
        .expect("vagrant runs")
}

fn haproxy_check(cfg: &Path) -> Output {
    Command::new(require_tool("haproxy"))
        .args(["-c", "-f"])
        .arg(cfg)
        .output()
        .expect("haproxy runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Loads the Vagrantfile with a stand-in `Vagrant.configure` and prints a heredoc constant,
/// i.e. exactly the script Vagrant would run in the guest.
fn ruby_constant(vagrantfile: &Path, name: &str) -> String {
    let o = Command::new(require_tool("ruby"))
        .args([
            "-e",
            "module Vagrant; def self.configure(*); end; end; load ARGV[0]; print Object.const_get(ARGV[1])",
        ])
        .arg(vagrantfile)
        .arg(name)
        .output()
        .expect("ruby runs");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn bash_syntax_ok(script: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script.sh");
    fs::write(&path, script).unwrap();
    Command::new("bash").arg("-n").arg(&path).output().unwrap()
}

#[test]
fn every_rendered_vagrantfile_passes_vagrant_validate() {
    for (scenario, env) in SCENARIOS {
        let dir = tempfile::tempdir().unwrap();
        let (_, files) = render(env);
        write_all(dir.path(), &files);
        let o = vagrant_validate(dir.path());
        assert!(o.status.success(), "{scenario}: {}", text(&o));
        assert!(
            text(&o).contains("validated successfully"),
            "{scenario}: {}",
            text(&o)
        );
    }
}

#[test]
fn the_largest_lab_passes_vagrant_validate() {
    let dir = tempfile::tempdir().unwrap();
    let (topology, files) = render(&[("control_plane_count", "10"), ("worker_count", "80")]);
    assert_eq!(topology.nodes.len(), 91, "with the load balancer");
    write_all(dir.path(), &files);
    let o = vagrant_validate(dir.path());
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn vagrant_validate_does_reject_a_broken_vagrantfile() {
    // The check above must be able to fail: a machine with an invalid hostname and a missing
    // provisioner source is refused by the same call.
    let dir = tempfile::tempdir().unwrap();
    let (_, files) = render(&[]);
    write_all(dir.path(), &files);
    let path = dir.path().join("Vagrantfile");
    let broken = fs::read_to_string(&path).unwrap().replace(
        "node.vm.hostname = \"worker-1\"",
        "node.vm.hostname = \"worker 1\"",
    );
    fs::write(&path, broken).unwrap();
    let o = vagrant_validate(dir.path());
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("hostname"), "{}", text(&o));

    // A setting vagrant-tart does not have, and a memory size that is not a number.
    let (_, files) = render(&[]);
    write_all(dir.path(), &files);
    let broken = fs::read_to_string(&path)
        .unwrap()
        .replacen("tart.gui = false", "tart.gpu = false", 1)
        .replacen("tart.memory = 2048", "tart.memory = \"2G\"", 1);
    fs::write(&path, broken).unwrap();
    let o = vagrant_validate(dir.path());
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("shouldn't exist: gpu"), "{}", text(&o));
    assert!(
        text(&o).contains("tart.memory must be a whole number"),
        "{}",
        text(&o)
    );

    let (_, files) = render(&[("control_plane_count", "3"), ("K0SLAB_ENDPOINT", "haproxy")]);
    write_all(dir.path(), &files);
    fs::remove_file(dir.path().join("haproxy.cfg")).unwrap();
    let o = vagrant_validate(dir.path());
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("haproxy.cfg"), "{}", text(&o));
}

#[test]
fn every_rendered_haproxy_cfg_passes_haproxy_check() {
    let mut checked = Vec::new();
    for (scenario, env) in SCENARIOS.iter().copied().chain([(
        "10+80-haproxy",
        &[
            ("control_plane_count", "10"),
            ("worker_count", "80"),
            ("K0SLAB_ENDPOINT", "haproxy"),
        ][..],
    )]) {
        let (_, files) = render(env);
        let Some(cfg) = files.iter().find(|f| f.name == "haproxy.cfg") else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        fs::write(&path, &cfg.contents).unwrap();
        let o = haproxy_check(&path);
        assert!(o.status.success(), "{scenario}: {}", text(&o));
        checked.push(scenario);
    }
    // `auto` with 2+ controllers is the load-balancer VM too.
    assert_eq!(checked, ["3+2", "5+3", "3+2-haproxy", "10+80-haproxy"]);
}

#[test]
fn haproxy_check_does_reject_a_broken_config() {
    let (_, files) = render(&[("control_plane_count", "3"), ("K0SLAB_ENDPOINT", "haproxy")]);
    let cfg = common::file(&files, "haproxy.cfg").replace("check-ssl", "check-sll");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haproxy.cfg");
    fs::write(&path, cfg).unwrap();
    let o = haproxy_check(&path);
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn the_guest_scripts_vagrant_runs_are_exactly_the_rendered_ones_and_parse() {
    for (scenario, env) in SCENARIOS {
        let dir = tempfile::tempdir().unwrap();
        let (topology, files) = render(env);
        write_all(dir.path(), &files);
        let vagrantfile = dir.path().join("Vagrantfile");
        let setup = ruby_constant(&vagrantfile, "GUEST_SETUP");
        let o = bash_syntax_ok(&setup);
        assert!(o.status.success(), "{scenario}: {}", text(&o));
        for node in &topology.nodes {
            assert!(
                setup.contains(&format!("\n{} {}\n", node.address, node.name)),
                "{scenario}: /etc/hosts line for {}",
                node.name
            );
        }
        assert!(setup.contains(&format!("key='{}'", common::PUBLIC_KEY)));
        assert!(setup.contains("dhcp-identifier=mac"));
        if scenario.contains("haproxy") {
            let lb = ruby_constant(&vagrantfile, "LOAD_BALANCER_SETUP");
            let o = bash_syntax_ok(&lb);
            assert!(o.status.success(), "{scenario}: {}", text(&o));
            assert!(lb.contains("haproxy -c"));
        }
    }
}
