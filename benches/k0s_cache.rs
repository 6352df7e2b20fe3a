//! What a lab downloads, and how long `up` takes, with the host's k0s cache and without it
//! (`K0SLAB_K0S_CACHE=off`: k0sctl downloads the binary into its own cache, every node that
//! runs containerd pulls the system images itself, as before issue 19). Three `up`s of a 3+2
//! lab each: on an empty cache, after `destroy` in the same directory, and a second lab.
//! "The internet" is the stand-ins' ledger (tests/standins/README.md), paced at
//! `RATE` bytes/s with a release of `BINARY` + `BUNDLE` bytes.
//! Goal: with the cache, the first `up` downloads the binary and the bundle once, later ones
//! nothing. Run: `cargo bench --bench k0s_cache`. Nothing leaves the machine.

#[path = "../tests/common/standins.rs"]
mod standins;

use std::time::{Duration, Instant};

use standins::{both, Sandbox};

const BINARY: u64 = 16 << 20;
const BUNDLE: u64 = 48 << 20;
const RATE: u64 = 32 << 20;

fn ledger_bytes(sb: &Sandbox) -> (u64, u64) {
    let text = std::fs::read_to_string(sb.state().join("internet.jsonl")).unwrap_or_default();
    let mut all = 0;
    let mut nodes = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let bytes = v["bytes"].as_u64().unwrap();
        all += bytes;
        if v["tool"] == "node" {
            nodes += bytes;
        }
    }
    (all, nodes)
}

struct Step {
    name: &'static str,
    took: Duration,
    bytes: u64,
    by_nodes: u64,
}

fn run(cache: bool) -> Vec<Step> {
    let mut sb = Sandbox::new();
    let (binary, bundle, rate) = (BINARY.to_string(), BUNDLE.to_string(), RATE.to_string());
    sb.set("STANDIN_K0S_BINARY_BYTES", &binary)
        .set("STANDIN_K0S_BUNDLE_BYTES", &bundle)
        .set("STANDIN_INTERNET_BYTES_PER_SECOND", &rate)
        .set("K0SLAB_K0S_CACHE", if cache { "on" } else { "off" });
    let lab = [("control_plane_count", "3"), ("worker_count", "2")];
    let mut steps = Vec::new();
    let mut up = |name: &'static str, dir: &str| {
        let before = ledger_bytes(&sb);
        let mut env = lab.to_vec();
        env.push(("K0SLAB_NAME", dir));
        let started = Instant::now();
        let o = sb.k0slab(&["--dir", dir, "up", "--wait", "20s"], &env);
        let took = started.elapsed();
        assert!(o.status.success(), "{name}: {}", both(&o));
        let after = ledger_bytes(&sb);
        steps.push(Step {
            name,
            took,
            bytes: after.0 - before.0,
            by_nodes: after.1 - before.1,
        });
    };
    up("first up, empty cache", "a");
    let d = sb.k0slab(&["--dir", "a", "destroy"], &[]);
    assert!(d.status.success(), "{}", both(&d));
    up("after destroy, up again", "a");
    up("a second lab", "b");
    steps
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!(
        "3+2 lab; a release of {} binary + {} images; the internet at {}/s",
        mib(BINARY),
        mib(BUNDLE),
        mib(RATE)
    );
    let without = run(false);
    let with = run(true);
    println!(
        "{:<26} {:>22} {:>22}",
        "", "without the cache", "with the cache"
    );
    for (a, b) in without.iter().zip(&with) {
        println!(
            "{:<26} {:>9} {:>5.1}s ({} by nodes) {:>9} {:>5.1}s",
            a.name,
            mib(a.bytes),
            a.took.as_secs_f64(),
            mib(a.by_nodes),
            mib(b.bytes),
            b.took.as_secs_f64()
        );
    }
    let release = BINARY + BUNDLE;
    // The first up fetches the release once (plus stable.txt and sha256sums.txt: a few
    // hundred bytes), later ones at most stable.txt's lookups.
    let first_ok = with[0].bytes >= release && with[0].bytes < release + 64 * 1024;
    let later_ok = with[1..].iter().all(|s| s.bytes < 64 * 1024);
    let nodes_ok = with.iter().all(|s| s.by_nodes == 0);
    println!(
        "goal: first up downloads the release once ({}), later ups nothing ({}), no node pulls ({})",
        if first_ok { "met" } else { "MISSED" },
        if later_ok { "met" } else { "MISSED" },
        if nodes_ok { "met" } else { "MISSED" }
    );
    if !(first_ok && later_ok && nodes_ok) {
        std::process::exit(1);
    }
}
