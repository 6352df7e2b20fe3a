//! `k0slab image load` of a 1 GiB image into the 5 kubelet nodes of a 1+4 lab, through
//! stand-ins whose nodes accept 100 MiB/s each (tests/standins/bin/ssh,
//! `STANDIN_SSH_BYTES_PER_SECOND`), against five sequential loads (`--nodes` one at a time).
//! Goals (issue 10): wall time ratio ≤ 0.35, k0slab's peak memory ≤ 64 MiB (the image is
//! streamed, never held). Run: `cargo bench --bench image_load`. Nothing leaves the machine.

#[path = "../tests/common/standins.rs"]
mod standins;

use std::time::{Duration, Instant};

use standins::{both, Sandbox};

const GIB: u64 = 1024 * 1024 * 1024;
const NODE_RATE: u64 = 100 * 1024 * 1024;
const RATIO_GOAL: f64 = 0.35;
const MEMORY_GOAL_MIB: u64 = 64;
const NODES: [&str; 5] = [
    "control-plane-1",
    "worker-1",
    "worker-2",
    "worker-3",
    "worker-4",
];

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("STANDIN_DOCKER_IMAGES", format!("big:1={GIB}")),
        ("STANDIN_SSH_BYTES_PER_SECOND", NODE_RATE.to_string()),
    ]
}

/// The peak resident memory of process `pid` so far (VmHWM), in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One `k0slab image load big:1 [ARGS]`: wall time and k0slab's peak memory (KiB).
fn load(sb: &Sandbox, args: &[&str]) -> (Duration, u64) {
    let env = env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["image", "load", "big:1"];
    all.extend_from_slice(args);
    let started = Instant::now();
    let mut child = sb.spawn_k0slab(&all, &pairs);
    let mut peak = 0;
    loop {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", both(&out));
    (started.elapsed(), peak)
}

fn lab() -> Sandbox {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["-q", "up", "--wait", "5s"],
        &[("control_plane_count", "1"), ("worker_count", "4")],
    );
    assert!(o.status.success(), "{}", both(&o));
    sb
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: only on request.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (parallel, peak) = load(&lab(), &[]);
    let sb = lab();
    let mut sequential = Duration::ZERO;
    let mut sequential_peak = 0;
    for node in NODES {
        let (t, p) = load(&sb, &["--nodes", node]);
        sequential += t;
        sequential_peak = sequential_peak.max(p);
    }
    let ratio = parallel.as_secs_f64() / sequential.as_secs_f64();
    let peak_mib = peak.div_ceil(1024);
    println!("image_load: 1 GiB into 5 nodes at 100 MiB/s each");
    println!(
        "  parallel   {:>7.1}s  peak memory {peak_mib} MiB",
        parallel.as_secs_f64()
    );
    println!(
        "  sequential {:>7.1}s  (5 loads, peak memory {} MiB)",
        sequential.as_secs_f64(),
        sequential_peak.div_ceil(1024)
    );
    println!(
        "  ratio {ratio:.2} (goal ≤ {RATIO_GOAL}): {}",
        if ratio <= RATIO_GOAL {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  peak memory {peak_mib} MiB (goal ≤ {MEMORY_GOAL_MIB} MiB): {}",
        if peak_mib <= MEMORY_GOAL_MIB {
            "met"
        } else {
            "NOT met"
        }
    );
}
