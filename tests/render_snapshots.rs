//! Snapshots of every rendered file, one per scenario. Review changes with `cargo insta review`.

mod common;

use common::{render, render_cached, CACHE_DIR, SCENARIOS};

#[test]
fn rendered_files_match_their_snapshots() {
    for (scenario, env) in SCENARIOS {
        let (_, files) = render(env);
        for f in &files {
            insta::assert_snapshot!(format!("{scenario}__{}", f.name), &f.contents);
        }
    }
}

#[test]
fn haproxy_cfg_only_in_haproxy_mode() {
    for (scenario, env) in SCENARIOS {
        let (topology, files) = render(env);
        let has = files.iter().any(|f| f.name == "haproxy.cfg");
        // 2+ controllers get the HAProxy VM unless cplb or none is asked for.
        let expected = topology.controllers().count() > 1 && !scenario.contains("cplb");
        assert_eq!(has, expected, "{scenario}");
    }
}

/// With the host's cache, k0sctl uploads the binary to every host and the airgap bundle into
/// k0s' bundle directory on the hosts whose k0s runs containerd (worker, controller+worker,
/// single), never to a pure controller, which has no containerd (k0s `cmd/worker/worker.go`
/// lines 269-271; `docs/airgap-install.md` lines 104-106).
#[test]
fn the_bundle_goes_to_every_containerd_node_and_not_to_pure_controllers() {
    let binary = format!("{CACHE_DIR}/k0s-v1.34.1+k0s.0-arm64");
    let bundle = format!("{CACHE_DIR}/k0s-airgap-bundle-v1.34.1+k0s.0-arm64");
    let mut seen = std::collections::BTreeSet::new();
    for (scenario, env) in SCENARIOS {
        let (_, files) = render_cached(env);
        let config: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(common::file(&files, "k0sctl.yaml")).unwrap();
        let hosts = config["spec"]["hosts"].as_sequence().unwrap();
        for host in hosts {
            let role = host["role"].as_str().unwrap();
            seen.insert(role.to_string());
            assert_eq!(
                host["k0sBinaryPath"].as_str(),
                Some(binary.as_str()),
                "{scenario} {role}"
            );
            assert_eq!(
                host["uploadBinary"].as_bool(),
                Some(false),
                "{scenario} {role}"
            );
            let uploads = host["files"].as_sequence().cloned().unwrap_or_default();
            if role == "controller" {
                assert!(
                    uploads.is_empty(),
                    "{scenario}: a pure controller gets {uploads:?}"
                );
            } else {
                assert_eq!(uploads.len(), 1, "{scenario} {role}: {uploads:?}");
                assert_eq!(uploads[0]["src"].as_str(), Some(bundle.as_str()));
                assert_eq!(uploads[0]["dstDir"].as_str(), Some("/var/lib/k0s/images/"));
                assert_eq!(uploads[0]["perm"].as_str(), Some("0644"));
            }
        }
        assert_eq!(
            config["spec"]["k0s"]["config"]["spec"]["images"]["default_pull_policy"].as_str(),
            Some("IfNotPresent"),
            "{scenario}"
        );
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["controller", "controller+worker", "single", "worker"],
        "the scenarios cover every role"
    );
}

/// Without the cache (a render that could not pin a release), k0sctl downloads k0s as before.
#[test]
fn without_the_cache_k0sctl_downloads_k0s() {
    for (scenario, env) in SCENARIOS {
        let (_, files) = render(env);
        let config: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(common::file(&files, "k0sctl.yaml")).unwrap();
        for host in config["spec"]["hosts"].as_sequence().unwrap() {
            assert_eq!(host["uploadBinary"].as_bool(), Some(true), "{scenario}");
            assert!(host.get("k0sBinaryPath").is_none() && host.get("files").is_none());
        }
    }
}
