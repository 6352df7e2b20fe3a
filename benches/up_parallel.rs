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
/// 3+2 with the default endpoint: six VMs, the load balancer among them, all booted at once.
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

/// Where the seconds of one `up` went, from the stand-ins' call log (each call's start and
/// end, in seconds since the epoch): before the first boot (checks, render, image), the boots,
/// the addresses (MACs, bootpd, moves, waits), `k0sctl apply` (with the kubeconfig), and the
/// health checks to the end.
struct Breakdown {
    steps: [(&'static str, f64); 5],
    /// Stand-in processes started in all.
    processes: usize,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn breakdown(sb: &Sandbox, start: f64, end: f64) -> Breakdown {
    let events = sb.events();
    let of = |tool: &str, verb: &str, event: &str| -> Vec<f64> {
        events
            .iter()
            .filter(|e| e.tool == tool && e.event == event)
            .filter(|e| e.args.first().map(String::as_str) == Some(verb))
            .map(|e| e.time)
            .collect()
    };
    let min = |v: Vec<f64>| v.into_iter().fold(f64::INFINITY, f64::min);
    let max = |v: Vec<f64>| v.into_iter().fold(f64::NEG_INFINITY, f64::max);
    let first_boot = min(of("vagrant", "up", "start"));
    let last_boot = max(of("vagrant", "up", "end"));
    let apply_start = min(of("k0sctl", "apply", "start"));
    let apply_end = max(of("k0sctl", "apply", "end"));
    Breakdown {
        steps: [
            ("checks, render, image", first_boot - start),
            ("six boots", last_boot - first_boot),
            ("addresses", apply_start - last_boot),
            ("k0sctl apply", apply_end - apply_start),
            ("kubeconfig, health", end - apply_end),
        ],
        processes: events.iter().filter(|e| e.event == "start").count(),
    }
}

/// `k0slab up` from nothing: render, six boots, addresses, k0sctl apply, kubeconfig, health.
fn parallel_up() -> (Duration, Breakdown) {
    let sb = Sandbox::new();
    let (start, epoch) = (Instant::now(), now());
    let o = sb.k0slab(&["-q", "up"], &LAB);
    let (took, end) = (start.elapsed(), now());
    assert!(o.status.success(), "{}", both(&o));
    (took, breakdown(&sb, epoch, end))
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
    let mut ups: Vec<(Duration, Breakdown)> = (0..RUNS).map(|_| parallel_up()).collect();
    ups.sort_by_key(|(d, _)| *d);
    let (up, steps) = ups.swap_remove(RUNS / 2);
    let sequential = median((0..RUNS).map(|_| sequential_boots()).collect());
    let ratio = up.as_secs_f64() / sequential.as_secs_f64();
    println!("boot time per VM (stand-in): {BOOT_SECONDS}s, median of {RUNS} runs");
    println!("k0slab up, 3+2 (whole flow):  {:.2}s", up.as_secs_f64());
    println!(
        "six sequential vagrant up:    {:.2}s",
        sequential.as_secs_f64()
    );
    println!(
        "where the median up's time went ({} stand-in processes):",
        steps.processes
    );
    for (step, secs) in steps.steps {
        println!("  {step:<24}{secs:>6.2}s");
    }
    println!("ratio: {ratio:.3} (goal <= {GOAL})");
    if ratio > GOAL {
        eprintln!("the machines did not come up in parallel enough");
        std::process::exit(1);
    }
}
