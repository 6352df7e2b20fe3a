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
        let (_, files) = render(env);
        let has = files.iter().any(|f| f.name == "haproxy.cfg");
        assert_eq!(has, scenario.contains("haproxy"), "{scenario}");
    }
}
