//! `k0slab up` of a 3+2 lab (six VMs with the load balancer) against six sequential boots, with stand-in tools whose
//! `vagrant up` takes D seconds per machine (tests/standins). The ratio shows whether the
//! machines come up in parallel; the goal is ≤ 0.35. Run: `cargo bench --bench up_parallel`.
//! Nothing leaves the machine: the stand-ins only touch files.

#[path = "../tests/common/standins.rs"]
mod standins;

use std::time::{Duration, Instant};

use standins::{both, Sandbox};

const BOOT_SECONDS: &str = "3";
const RUNS: usize = 3;
const GOAL: f64 = 0.35;
/// 3+2 with the default endpoint: the load-balancer VM boots first, then the five others.
const LAB: [(&str, &str); 3] = [
    ("control_plane_count", "3"),
    ("worker_count", "2"),
    ("STANDIN_VAGRANT_BOOT_SECONDS", BOOT_SECONDS),
];
const MACHINES: [&str; 6] = [
    "load-balancer",
    "control-plane-1",
    "control-plane-2",
    "control-plane-3",
    "worker-1",
    "worker-2",
];

/// `k0slab up` from nothing: render, six boots, addresses, k0sctl apply, kubeconfig, health.
fn parallel_up() -> Duration {
    let sb = Sandbox::new();
    let start = Instant::now();
    let o = sb.k0slab(&["-q", "up"], &LAB);
    assert!(o.status.success(), "{}", both(&o));
    start.elapsed()
}

/// The six `vagrant up` calls of the same lab, one after the other.
fn sequential_boots() -> Duration {
    let sb = Sandbox::new();
    let o = sb.k0slab(&["-q", "render"], &LAB);
    assert!(o.status.success(), "{}", both(&o));
    let vagrant = standins::standins_bin().join("vagrant");
    let lab = sb.lab().display().to_string();
    let mut env = LAB.to_vec();
    env.push(("VAGRANT_CWD", lab.as_str()));
    let start = Instant::now();
    for m in MACHINES {
        let o = sb.command(
            vagrant.to_str().unwrap(),
            &["up", m, "--provider", "tart", "--machine-readable"],
            &env,
        );
        assert!(o.status.success(), "{}", both(&o));
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this with --test-like flags: only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let up = median((0..RUNS).map(|_| parallel_up()).collect());
    let sequential = median((0..RUNS).map(|_| sequential_boots()).collect());
    let ratio = up.as_secs_f64() / sequential.as_secs_f64();
    println!("boot time per VM (stand-in): {BOOT_SECONDS}s, median of {RUNS} runs");
    println!("k0slab up, 3+2 (whole flow):  {:.2}s", up.as_secs_f64());
    println!(
        "six sequential vagrant up:    {:.2}s",
        sequential.as_secs_f64()
    );
    println!("ratio: {ratio:.3} (goal <= {GOAL})");
    if ratio > GOAL {
        eprintln!("the machines did not come up in parallel enough");
        std::process::exit(1);
    }
}
