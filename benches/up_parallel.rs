//! `k0slab up` of a 3+2 lab against five sequential boots, with stand-in tools whose
//! `vagrant up` takes D seconds per machine (tests/standins). The ratio shows whether the
//! machines come up in parallel; the goal is ≤ 0.35. Run: `cargo bench --bench up_parallel`.
//! Nothing leaves the machine: the stand-ins only touch files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BOOT_SECONDS: f64 = 3.0;
const RUNS: usize = 3;
const GOAL: f64 = 0.35;

fn standins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standins/bin")
}

fn command(program: &Path, dir: &Path, state: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                standins().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("K0SLAB_STANDIN_STATE", state)
        .env("K0SLAB_POLL_INTERVAL", "100ms")
        .env("STANDIN_VAGRANT_BOOT_SECONDS", BOOT_SECONDS.to_string())
        .env("control_plane_count", "3")
        .env("worker_count", "2");
    c
}

fn run(c: &mut Command) -> Duration {
    let start = Instant::now();
    let out = c.output().expect("runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

/// `k0slab up` from nothing: render, five boots, k0sctl apply, kubeconfig, health.
fn parallel_up() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    run(command(Path::new(env!("CARGO_BIN_EXE_k0slab")), dir.path(), &state).args(["-q", "up"]))
}

/// The five `vagrant up` calls of the same lab, one after the other.
fn sequential_boots() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    run(
        command(Path::new(env!("CARGO_BIN_EXE_k0slab")), dir.path(), &state).args(["-q", "render"]),
    );
    let lab = dir.path().join("lab");
    let start = Instant::now();
    for m in [
        "control-plane-1",
        "control-plane-2",
        "control-plane-3",
        "worker-1",
        "worker-2",
    ] {
        run(command(&standins().join("vagrant"), &lab, &state).args([
            "up",
            m,
            "--provider",
            "tart",
            "--machine-readable",
        ]));
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
    println!("boot time per VM (stand-in): {BOOT_SECONDS:.1}s, median of {RUNS} runs");
    println!("k0slab up, 3+2 (whole flow):  {:.2}s", up.as_secs_f64());
    println!(
        "five sequential vagrant up:   {:.2}s",
        sequential.as_secs_f64()
    );
    println!("ratio: {ratio:.3} (goal <= {GOAL})");
    if ratio > GOAL {
        eprintln!("the machines did not come up in parallel enough");
        std::process::exit(1);
    }
}
