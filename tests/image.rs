//! `k0slab image load` / `image ls` against stand-ins: `docker` (save, inspect), `ssh` with
//! k0s' `ctr` on the nodes (tests/standins/lib/containerd.rb), under `unshare -n`.

mod common;

use std::fs;

use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

const IMAGES: (&str, &str) = ("STANDIN_DOCKER_IMAGES", "myapp:dev=3000000,other:1=4096");

/// A 3+2 lab with the default topology: control-plane-1 runs workloads, 2 and 3 do not.
fn lab() -> Sandbox {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["-q", "up", "--wait", "5s"],
        &[("control_plane_count", "3"), ("worker_count", "2")],
    );
    assert!(o.status.success(), "{}", both(&o));
    sb
}

/// The images containerd holds on `machine` (stand-in state).
fn node_images(sb: &Sandbox, machine: &str) -> Value {
    fs::read_to_string(sb.state().join(format!("containerd/k0slab-{machine}.json")))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null)
}

fn imports(sb: &Sandbox) -> Vec<String> {
    sb.calls_of("ssh", "-i")
        .into_iter()
        .filter(|a| a.last().is_some_and(|c| c.contains("images import")))
        .map(|a| a[a.len() - 3].clone())
        .collect()
}

#[test]
fn load_into_the_kubelet_nodes_skip_the_second_time_and_name_a_broken_node() {
    let sb = lab();
    let o = sb.k0slab(&["image", "load", "myapp:dev"], &[IMAGES]);
    assert!(o.status.success(), "{}", both(&o));
    let kubelets = ["control-plane-1", "worker-1", "worker-2"];
    let mut checksums = Vec::new();
    for m in kubelets {
        let img = &node_images(&sb, m)["docker.io/library/myapp:dev"];
        assert!(img.is_object(), "{m}: {}", node_images(&sb, m));
        assert!(
            img["labels"]["k0slab.image-id"]
                .as_str()
                .is_some_and(|l| l.starts_with("sha256:")),
            "{m}: {img}"
        );
        checksums.push(img["checksum"].clone());
    }
    assert!(
        checksums.windows(2).all(|w| w[0] == w[1]),
        "the same bytes everywhere"
    );
    for m in ["control-plane-2", "control-plane-3", "load-balancer"] {
        assert_eq!(node_images(&sb, m), Value::Null, "{m} has no kubelet");
    }
    let out = stdout(&o);
    assert_eq!(out.matches(" loaded ").count(), 3, "{out}");
    // `docker save` ran once for all nodes.
    assert_eq!(sb.calls_of("docker", "save").len(), 1);

    // Again: every node has it with the same ID.
    sb.clear_calls();
    let o = sb.k0slab(&["image", "load", "myapp:dev"], &[IMAGES]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(stdout(&o).matches(" skipped ").count(), 3, "{}", stdout(&o));
    assert!(imports(&sb).is_empty(), "nothing sent");
    assert!(sb.calls_of("docker", "save").is_empty());

    // `image ls` shows it per node.
    let o = sb.k0slab(&["image", "ls", "-o", "json"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let nodes: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["image"] == "docker.io/library/myapp:dev")
        .map(|r| r["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, kubelets);

    // A node whose import breaks is named; the others get the image.
    let o = sb.k0slab(
        &["image", "load", "other:1"],
        &[IMAGES, ("STANDIN_SSH_FAIL", "worker-2")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o).contains("loading failed on 1 node: worker-2"),
        "{}",
        both(&o)
    );
    assert!(node_images(&sb, "worker-1")["docker.io/library/other:1"].is_object());
    assert!(node_images(&sb, "worker-2")["docker.io/library/other:1"].is_null());
}

#[test]
fn bad_input_sends_nothing() {
    let sb = lab();
    sb.clear_calls();
    let junk = sb.work().join("junk.tar");
    fs::write(&junk, vec![7u8; 4096]).unwrap();
    let junk = junk.display().to_string();
    for (args, says) in [
        (vec!["nosuch:1"], "No such image: nosuch:1"),
        (vec!["--archive", junk.as_str()], "is not an image archive"),
        (vec!["--archive", "/no/such.tar"], "is not an image archive"),
        (
            vec!["myapp:dev", "--nodes", "worker-9"],
            "not a machine of lab k0slab",
        ),
        (
            vec!["myapp:dev", "--nodes", "control-plane-2"],
            "runs no kubelet",
        ),
    ] {
        let mut all = vec!["image", "load"];
        all.extend(args.iter().copied());
        let o = sb.k0slab(&all, &[IMAGES]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", both(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
    assert!(sb.calls_of("ssh", "-i").is_empty(), "nothing sent");
    assert!(sb.calls_of("docker", "save").is_empty(), "nothing exported");
}

#[test]
fn an_archive_loads_into_the_nodes_named() {
    let sb = lab();
    let archive = sb.work().join("app.tar");
    let docker = common::standins::standins_bin().join("docker");
    let o = sb.command(
        "/bin/sh",
        &[
            "-c",
            &format!(
                "{} save myapp:dev > {}",
                docker.display(),
                archive.display()
            ),
        ],
        &[IMAGES],
    );
    assert!(o.status.success(), "{}", both(&o));
    let archive = archive.display().to_string();
    let o = sb.k0slab(
        &[
            "image",
            "load",
            "--archive",
            &archive,
            "--nodes",
            "worker-1",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", both(&o));
    assert!(node_images(&sb, "worker-1")["docker.io/library/myapp:dev"].is_object());
    assert!(node_images(&sb, "worker-2").is_null());
    assert_eq!(imports(&sb).len(), 1, "{:?}", imports(&sb));
}
