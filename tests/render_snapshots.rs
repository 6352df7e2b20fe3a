//! Snapshots of every rendered file, one per scenario. Review changes with `cargo insta review`.

mod common;

use common::{render, SCENARIOS};

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
