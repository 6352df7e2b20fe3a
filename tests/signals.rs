//! Issue 8: SIGINT (to the whole process group, as a terminal sends it), SIGTERM and SIGHUP at
//! several points of `up`. k0slab stops its own children, leaves the VMs running and lab.json
//! consistent, prints "interrupted" and exits 128 + the signal. 20 runs, under `unshare -n`.

mod common;

use std::time::{Duration, Instant};

use common::standins::{both, stderr, Sandbox};

#[derive(Debug, Clone, Copy)]
enum Point {
    /// `vagrant up` is booting the machines.
    Boot,
    /// `k0sctl apply` runs.
    Apply,
}

fn reached(sb: &Sandbox, point: Point) -> bool {
    match point {
        // Both VMs started (`tart run` runs), Vagrant waits for them to boot.
        Point::Boot => {
            let vms = sb.vms();
            vms.len() == 2 && vms.values().all(|s| s == "running")
        }
        Point::Apply => !sb.calls_of("k0sctl", "apply").is_empty(),
    }
}

fn alive(pid: u64) -> bool {
    // A zombie has exited; only its parent has not read its status yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn interrupt(point: Point, signal: i32) {
    let sb = Sandbox::new();
    let child = sb.spawn_k0slab(
        &["up", "--wait", "5s"],
        &[
            ("STANDIN_K0SCTL_SECONDS", "30"),
            (
                "STANDIN_VAGRANT_BOOT_SECONDS",
                if matches!(point, Point::Boot) {
                    "30"
                } else {
                    "0"
                },
            ),
        ],
    );
    sb.wait_for(&format!("{point:?}"), |sb| reached(sb, point));
    // SAFETY: sends a signal to the test's own child's process group.
    let sent = unsafe { libc::kill(-(child.id() as i32), signal) };
    assert_eq!(sent, 0);
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    let what = format!("{point:?} signal {signal}");
    assert_eq!(
        out.status.code(),
        Some(128 + signal),
        "{what}: {}",
        both(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{what}: promptly"
    );
    let err = stderr(&out);
    assert!(err.contains("interrupted"), "{what}: {err}");
    assert!(
        !err.contains("failed") && !err.contains(".rb:"),
        "{what}: no tool failure, no Ruby backtrace: {err}"
    );
    // k0slab's children are gone; its VMs run on.
    for call in sb.calls() {
        assert!(
            !alive(call.pid),
            "{what}: {} {:?} still runs",
            call.tool,
            call.args
        );
    }
    for (vm, state) in sb.vms() {
        assert_eq!(state, "running", "{what}: {vm}");
    }
    // lab.json is intact, and a new `up` finishes the lab.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.lab().join("lab.json")).unwrap()).unwrap();
    assert_eq!(record["nodes"].as_array().unwrap().len(), 2, "{what}");
    let o = sb.k0slab(&["up", "--wait", "5s"], &[]);
    assert!(o.status.success(), "{what}: {}", both(&o));
}

#[test]
fn sigint_sigterm_and_sighup_during_boot_and_apply_twenty_runs() {
    let runs = [
        (Point::Boot, libc::SIGINT),
        (Point::Apply, libc::SIGINT),
        (Point::Boot, libc::SIGTERM),
        (Point::Apply, libc::SIGTERM),
        (Point::Boot, libc::SIGHUP),
        (Point::Apply, libc::SIGHUP),
    ];
    for (point, signal) in runs.iter().cycle().take(20) {
        interrupt(*point, *signal);
    }
}
