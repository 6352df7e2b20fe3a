//! Two labs on one host (issue 15): started at the same time, each gets addresses no other lab
//! holds, both come up healthy on one bootpd, and destroying one leaves the other whole. Run
//! inside a network namespace with no interfaces.

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::standins::{both, Sandbox};
use serde_json::Value;

const THREE_TWO: [(&str, &str); 2] = [("control_plane_count", "3"), ("worker_count", "2")];

fn healthy(sb: &Sandbox, dir: &str) -> bool {
    let o = sb.k0slab(&["--dir", dir, "health", "-o", "json"], &[]);
    o.status.success()
}

#[test]
fn two_three_plus_two_labs_started_together_are_both_healthy_and_one_destroy_leaves_the_other() {
    let sb = Sandbox::new();
    let up = |dir: &'static str| {
        let mut env = THREE_TWO.to_vec();
        env.push(("K0SLAB_NAME", dir));
        sb.k0slab(&["--dir", dir, "up", "--wait", "10s"], &env)
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| up("a"));
        let b = s.spawn(|| up("b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let network = || {
        let vms: Vec<String> = fs::read_dir(sb.state().join("vms"))
            .unwrap()
            .map(|e| {
                let v: Value =
                    serde_json::from_str(&fs::read_to_string(e.unwrap().path()).unwrap()).unwrap();
                format!("{} {} {}", v["name"], v["mac"], v["lease"])
            })
            .collect();
        format!(
            "VMs:\n{}\nbootpd.log:\n{}\nleases:\n{}\naddresses.json:\n{}",
            vms.join("\n"),
            fs::read_to_string(sb.state().join("bootpd.log")).unwrap_or_default(),
            sb.leases(),
            fs::read_to_string(sb.home().join(".k0slab/addresses.json")).unwrap_or_default()
        )
    };
    assert!(a.status.success(), "lab a: {}\n{}", both(&a), network());
    assert!(b.status.success(), "lab b: {}\n{}", both(&b), network());
    let (in_a, in_b) = (sb.lab_addresses("a"), sb.lab_addresses("b"));
    let set_a: BTreeSet<_> = in_a.iter().collect();
    assert!(
        in_b.iter().all(|x| !set_a.contains(x)),
        "{in_a:?} / {in_b:?}"
    );
    // Whichever came first keeps the PRD's numbers.
    let prd = [
        "192.168.64.10",
        "192.168.64.11",
        "192.168.64.12",
        "192.168.64.20",
        "192.168.64.21",
        "192.168.64.100",
    ];
    // The other takes the first numbers from .10, .20 and .100 on that the first does not hold.
    let next = [
        "192.168.64.13",
        "192.168.64.14",
        "192.168.64.15",
        "192.168.64.22",
        "192.168.64.23",
        "192.168.64.101",
    ];
    assert!(
        (in_a == prd && in_b == next) || (in_b == prd && in_a == next),
        "one lab has the PRD's numbers, the other the next free ones: {in_a:?} / {in_b:?}"
    );
    assert!(healthy(&sb, "a") && healthy(&sb, "b"));
    for (lab, addrs) in [("a", &in_a), ("b", &in_b)] {
        for (i, name) in [
            "control-plane-1",
            "control-plane-2",
            "control-plane-3",
            "worker-1",
            "worker-2",
            "load-balancer",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(
                sb.vm(&format!("{lab}-{name}"))["lease"],
                addrs[i].as_str(),
                "{lab}-{name}"
            );
        }
    }

    let o = sb.k0slab(&["--dir", "a", "destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let bootptab = sb.bootptab();
    assert!(!bootptab.contains("# k0slab lab a: begin"), "{bootptab}");
    assert!(bootptab.contains("# k0slab lab b: begin"), "{bootptab}");
    let leases = sb.leases();
    assert!(!leases.contains("name=a-"), "{leases}");
    for name in ["control-plane-1", "worker-2", "load-balancer"] {
        assert!(leases.contains(&format!("name=b-{name}")), "{leases}");
        assert_eq!(sb.vm(&format!("b-{name}"))["state"], "running");
    }
    assert!(healthy(&sb, "b"), "lab b is whole");
}
