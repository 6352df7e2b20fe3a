//! `plan` + `render` of the largest lab (10 controllers, 80 workers, and with HAProxy):
//! inputs resolved, topology built, every file rendered. Disk writes are left out: they are
//! the operating system's speed, not k0slab's.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use k0slab::environment::Environment;
use k0slab::inputs::{self, Flags, LabName};
use k0slab::lab::files;
use k0slab::lab::record::{self, Kept, Secrets};
use k0slab::render::{self, RenderContext};
use k0slab::topology::Topology;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk0c2xhYnRlc3RrZXl0ZXN0a2V5dGVzdGtleXRlc3Q k0slab@k0slab";

fn plan_and_render(env: &Environment) -> usize {
    let name = LabName::for_directory(Path::new("/Users/dev/k0slab/lab"));
    let inputs = inputs::resolve(&Flags::default(), env, None, &name)
        .unwrap()
        .inputs;
    let topology = Topology::resolve(&inputs).unwrap();
    let secrets = Secrets {
        vrrp_auth_pass: "Bench123".into(),
    };
    let rendered = render::render(
        &topology,
        &RenderContext {
            private_key: &Path::new("/Users/dev/k0slab/lab").join(files::PRIVATE_KEY),
            haproxy_cfg: files::HAPROXY_CFG,
            public_key: KEY,
            vrrp_auth_pass: &secrets.vrrp_auth_pass,
            assigned: &Default::default(),
            ssh_hosts: &Default::default(),
            k0s_files: None,
        },
    )
    .unwrap();
    let files = record::lab_files(
        &inputs,
        &topology,
        rendered,
        &Kept {
            secrets: &secrets,
            merged_into: &[],
            assigned: &Default::default(),
            gitignore: None,
        },
    )
    .unwrap();
    files.iter().map(|f| f.contents.len()).sum()
}

fn largest(c: &mut Criterion) {
    // cplb only on a bridged LAN: Softnet drops the VIP's packets, so it is refused there.
    for (name, endpoint, network) in [
        ("10+80 cplb", "cplb", "bridged:en0"),
        ("10+80 haproxy", "haproxy", "softnet"),
    ] {
        let env = Environment::from_pairs([
            ("control_plane_count", "10"),
            ("worker_count", "80"),
            ("K0SLAB_ENDPOINT", endpoint),
            ("K0SLAB_NETWORK", network),
        ]);
        c.bench_function(&format!("plan+render {name}"), |b| {
            b.iter(|| black_box(plan_and_render(black_box(&env))))
        });
    }
}

criterion_group!(benches, largest);
criterion_main!(benches);
