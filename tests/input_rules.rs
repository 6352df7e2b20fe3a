//! Input rules of issue 8 ("Smaller ones"), end to end through the binary: the tuning
//! variables, private subnets, the booleans of K0SLAB_CONTROLLER_WORKLOADS, the etcd warning
//! for every even controller count, and tool versions that are too old or unreadable.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

/// `k0slab ARGS` in `cwd` with only PATH and `env` set.
fn k0slab(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_k0slab"));
    cmd.args(args).current_dir(cwd).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    // A HOME of its own: `render` takes the lab's lock (~/.k0slab/locks) before it reads inputs.
    let home = tempfile::tempdir().unwrap();
    cmd.env("HOME", home.path());
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

/// How a refused value is quoted: `has the value "x", which is not allowed`; an empty one is
/// called empty (a flag without its value, or a variable set to nothing).
fn given(origin: &str, value: &str) -> String {
    match value {
        "" if origin.starts_with("flag ") => format!("{origin} needs a value"),
        "" => format!("{origin} is set but empty"),
        _ => format!("{origin} has the value {value:?}, which is not allowed"),
    }
}

/// Bad input: exit 2, one `error:` line that contains every piece of `expect`, nothing on
/// stdout, and nothing at all written in `cwd`.
fn assert_bad_input(cwd: &Path, args: &[&str], env: &[(&str, &str)], expect: &[&str]) {
    let o = k0slab(cwd, args, env);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?} {env:?}: {}", both(&o));
    assert!(err.starts_with("error: "), "{env:?}: {err}");
    assert_eq!(err.matches("error:").count(), 1, "{env:?}: {err}");
    for piece in expect {
        assert!(err.contains(piece), "{env:?}: {piece:?} missing in {err}");
    }
    assert!(stdout(&o).is_empty(), "{env:?}: {}", stdout(&o));
    assert!(
        fs::read_dir(cwd).unwrap().next().is_none(),
        "{args:?} {env:?} wrote something"
    );
}

// --- 1. K0SLAB_CONCURRENCY and K0SLAB_POLL_INTERVAL -------------------------------------------

#[test]
fn bad_tuning_values_are_bad_input_naming_variable_value_and_what_is_allowed() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "K0SLAB_CONCURRENCY",
            &[
                "0",
                "-1",
                "abc",
                "soon",
                "",
                "2.5",
                "101",
                "99999999999999999999",
            ],
            "a whole number from 1 to 100",
        ),
        (
            "K0SLAB_POLL_INTERVAL",
            &["0", "0s", "-1", "abc", "soon", "", "5"],
            "a duration above zero with a unit",
        ),
    ];
    for (var, values, allowed) in cases {
        for value in *values {
            for command in ["plan", "render"] {
                let dir = tempfile::tempdir().unwrap();
                assert_bad_input(
                    dir.path(),
                    &[command],
                    &[(var, value)],
                    &[
                        &given(&format!("environment variable {var}"), value),
                        allowed,
                    ],
                );
            }
        }
    }
}

#[test]
fn good_tuning_values_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("K0SLAB_CONCURRENCY", "1"),
        ("K0SLAB_CONCURRENCY", "100"),
        ("K0SLAB_POLL_INTERVAL", "100ms"),
        ("K0SLAB_POLL_INTERVAL", "2s"),
        ("K0SLAB_POLL_INTERVAL", "1m"),
    ] {
        let o = k0slab(dir.path(), &["plan"], &[(var, value)]);
        assert!(o.status.success(), "{var}={value}: {}", both(&o));
    }
}

#[test]
fn up_with_a_bad_concurrency_runs_no_tool_and_writes_nothing() {
    let sb = Sandbox::new();
    for (var, value) in [
        ("K0SLAB_CONCURRENCY", "0"),
        ("K0SLAB_POLL_INTERVAL", "soon"),
    ] {
        let o = sb.k0slab(&["up"], &[(var, value)]);
        assert_eq!(o.status.code(), Some(2), "{var}: {}", both(&o));
        assert!(stderr(&o).contains(var), "{}", stderr(&o));
        assert!(sb.calls().is_empty(), "{var}: {:?}", sb.calls());
        assert!(!sb.lab().exists(), "{var}: the lab directory was created");
        assert!(
            !sb.home().join(".k0slab").exists(),
            "{var}: ~/.k0slab (locks, VM registry) was written"
        );
    }
}

// --- 2. K0SLAB_SUBNET: private ranges only -----------------------------------------------------

const PRIVATE_RANGES: &str = "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16";

#[test]
fn subnets_outside_the_private_ranges_are_refused_saying_which_are_allowed() {
    for (subnet, what) in [
        ("127.0.0.0/24", "loopback"),
        ("224.0.0.0/24", "multicast"),
        ("239.1.0.0/16", "multicast"),
        ("0.0.0.0/24", "\"this network\""),
        ("169.254.0.0/16", "link-local"),
        ("100.64.0.0/24", "shared address space"),
        ("8.8.8.0/24", "public"),
        ("172.32.0.0/16", "public"),
        // Wider than a private range: it starts inside 172.16.0.0/12 but does not fit.
        ("172.0.0.0/8", "public"),
        ("240.0.0.0/24", "reserved"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        assert_bad_input(
            dir.path(),
            &["render"],
            &[("K0SLAB_SUBNET", subnet)],
            &[
                &format!("environment variable K0SLAB_SUBNET has the value {subnet:?}"),
                PRIVATE_RANGES,
                "RFC 1918",
                what,
            ],
        );
    }
    let dir = tempfile::tempdir().unwrap();
    assert_bad_input(
        dir.path(),
        &["plan", "--subnet", "127.0.0.0/24"],
        &[],
        &[
            "flag --subnet has the value \"127.0.0.0/24\"",
            PRIVATE_RANGES,
        ],
    );
}

#[test]
fn subnets_inside_the_private_ranges_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for (subnet, first) in [
        ("10.0.0.0/8", "10.0.0.10"),
        ("10.255.255.0/24", "10.255.255.10"),
        ("172.16.0.0/12", "172.16.0.10"),
        ("172.31.255.0/24", "172.31.255.10"),
        ("192.168.0.0/16", "192.168.0.10"),
        ("192.168.64.0/24", "192.168.64.10"),
    ] {
        let o = k0slab(
            dir.path(),
            &["plan", "-o", "json"],
            &[("K0SLAB_SUBNET", subnet)],
        );
        assert!(o.status.success(), "{subnet}: {}", both(&o));
        let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(plan["nodes"][0]["address"], first, "{subnet}");
    }
}

// --- 3. K0SLAB_CONTROLLER_WORKLOADS: one documented set of booleans ----------------------------

const TRUE_WORDS: [&str; 4] = ["true", "yes", "on", "1"];
const FALSE_WORDS: [&str; 4] = ["false", "no", "off", "0"];

fn controller_roles(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut all = vec!["plan", "-o", "json"];
    all.extend_from_slice(args);
    let o = k0slab(dir, &all, env);
    assert!(o.status.success(), "{env:?} {args:?}: {}", both(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    plan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "controller")
        .map(|n| n["role"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn controller_workloads_accepts_every_word_of_the_set_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let lab = [("control_plane_count", "2"), ("worker_count", "1")];
    for (words, role) in [
        (TRUE_WORDS, "controller+worker"),
        (FALSE_WORDS, "controller"),
    ] {
        for word in words {
            for spelled in [
                word.to_string(),
                word.to_ascii_uppercase(),
                capitalised(word),
            ] {
                let mut env = lab.to_vec();
                env.push(("K0SLAB_CONTROLLER_WORKLOADS", &spelled));
                assert_eq!(
                    controller_roles(dir.path(), &[], &env),
                    [role, role],
                    "K0SLAB_CONTROLLER_WORKLOADS={spelled}"
                );
                let flag = format!("--controller-workloads={spelled}");
                assert_eq!(
                    controller_roles(dir.path(), &[&flag], &lab),
                    [role, role],
                    "{flag}"
                );
            }
        }
    }
}

fn capitalised(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// The words between backticks in `text`.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn controller_workloads_refuses_other_words_and_lists_exactly_the_set() {
    let allowed =
        "true or false, written as one of true/false, yes/no, on/off, 1/0 (in any letter case)";
    for bad in [
        "maybe", "y", "n", "enabled", "disable", "2", "", " true", "truE!",
    ] {
        let dir = tempfile::tempdir().unwrap();
        assert_bad_input(
            dir.path(),
            &["render"],
            &[("K0SLAB_CONTROLLER_WORKLOADS", bad)],
            &[&format!(
                "{}: expected {allowed}",
                given("environment variable K0SLAB_CONTROLLER_WORKLOADS", bad)
            )],
        );
    }
    // The README's settings table lists the same set, and nothing else.
    let readme =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `K0SLAB_CONTROLLER_WORKLOADS` |"))
        .expect("a README row for K0SLAB_CONTROLLER_WORKLOADS");
    let valid = row.trim_end_matches('|').rsplit('|').next().unwrap();
    let mut documented = backticked(valid);
    documented.sort();
    let mut set: Vec<String> = TRUE_WORDS
        .iter()
        .chain(FALSE_WORDS.iter())
        .map(|w| w.to_string())
        .collect();
    set.sort();
    assert_eq!(documented, set, "README row: {row}");
    assert!(valid.contains("any letter case"), "README row: {row}");
}

// --- 4. An etcd warning for every even controller count ----------------------------------------

#[test]
fn every_even_controller_count_warns_about_etcd_with_its_real_fault_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=10u32 {
        let count = n.to_string();
        let o = k0slab(dir.path(), &["plan"], &[("control_plane_count", &count)]);
        assert!(o.status.success(), "{n}: {}", both(&o));
        let err = stderr(&o);
        let etcd: Vec<&str> = err.lines().filter(|l| l.contains("etcd")).collect();
        if n % 2 == 1 {
            assert!(etcd.is_empty(), "{n} controllers: {err}");
            continue;
        }
        assert_eq!(etcd.len(), 1, "{n} controllers: {err}");
        let line = etcd[0];
        // An etcd cluster of n members keeps quorum with floor((n-1)/2) of them failed: an even
        // count survives no more failures than the odd count below it.
        let tolerated = (n - 1) / 2;
        let plural = |k: u32, word: &str| format!("{k} {word}{}", if k == 1 { "" } else { "s" });
        let expected = format!(
            "warning: {n} controllers form an etcd cluster of {n} members, which survives {}, \
             no more than {} would; prefer 3 or 5",
            plural(tolerated, "failed member"),
            plural(n - 1, "member"),
        );
        assert!(line.starts_with(&expected), "{n} controllers: {line}");
        assert!(line.contains("prefer 3 or 5"), "{n}: {line}");
        assert_eq!(
            line.contains("(2 members lose quorum when one fails)"),
            n == 2,
            "{n}: {line}"
        );
    }
}

// --- 5. Tool versions: too old, or unreadable ---------------------------------------------------

#[test]
fn an_old_vagrant_is_too_old_not_missing() {
    let sb = Sandbox::new();
    let (code, row) = sb.doctor_row(&[("STANDIN_VAGRANT_VERSION", "2.2.19")], "vagrant");
    assert_eq!(code, Some(1), "{row}");
    assert_eq!(row["status"], "fail", "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.contains("vagrant is too old: version 2.2.19 is older than the 2.3.0 k0slab needs"),
        "{detail}"
    );
    assert!(!detail.contains("not found"), "{detail}");

    let (code, row) = sb.doctor_row(&[("STANDIN_VAGRANT_VERSION", "2.3.0")], "vagrant");
    assert_eq!((code, &row["status"]), (Some(0), &"ok".into()), "{row}");

    let o = sb.k0slab(&["up"], &[("STANDIN_VAGRANT_VERSION", "2.2.19")]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stderr(&o)
            .contains("vagrant is too old: version 2.2.19 is older than the 2.3.0 k0slab needs"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("not found"), "{}", stderr(&o));
    assert!(sb.booted().is_empty(), "no machine is booted");
}

#[test]
fn an_unreadable_vagrant_version_fails_naming_what_was_printed() {
    let sb = Sandbox::new();
    let (code, row) = sb.doctor_row(&[("STANDIN_VAGRANT_VERSION", "banana")], "vagrant");
    assert_eq!(code, Some(1), "{row}");
    assert_eq!(row["status"], "fail", "{row}");
    let detail = row["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "`vagrant --version` printed \"Vagrant banana\": no version number to check \
             against the 2.3.0 k0slab needs"
        ),
        "{detail}"
    );

    let o = sb.k0slab(&["up"], &[("STANDIN_VAGRANT_VERSION", "banana")]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(stderr(&o).contains("\"Vagrant banana\""), "{}", stderr(&o));
    assert!(sb.booted().is_empty(), "no machine is booted");
}

// --- Issue 16, 11: every variable is checked before anything runs ------------------------------

/// Every environment variable k0slab reads that a user can get wrong, with a bad value. The
/// lab settings come from `Key::ALL`; [`every_k0slab_variable_in_the_source_is_checked`] makes
/// sure no `K0SLAB_*` variable of the source is missing here.
fn bad_values(sb: &Sandbox) -> Vec<(String, String)> {
    use k0slab::inputs::Key;
    let a_file = sb.root.path().join("etc/bootptab").display().to_string();
    let a_directory = sb.root.path().join("etc").display().to_string();
    let mut cases: Vec<(String, String)> = Key::ALL
        .iter()
        .map(|key| {
            let bad = match key {
                Key::ControlPlaneCount | Key::WorkerCount => "many",
                Key::MemoryControl | Key::MemoryWorker => "1",
                Key::CpuControl | Key::CpuWorker => "0",
                Key::DiskSize => "19",
                Key::Name => "-bad-",
                Key::Subnet => "8.8.8.0/24",
                Key::Network => "wifi",
                Key::Endpoint => "kube-vip",
                Key::EndpointIp => "192.168.64.300",
                Key::Image => "Not An Image",
                Key::Provider => "virtualbox",
                Key::K0sVersion => "latest",
                Key::ControllerWorkloads => "maybe",
                Key::Nested => "all",
            };
            (key.env_name().to_string(), bad.to_string())
        })
        .collect();
    for (var, bad) in [
        ("K0SLAB_CONCURRENCY", "0"),
        ("K0SLAB_POLL_INTERVAL", "5"),
        ("K0SLAB_ADDRESS_TIMEOUT", "3"),
        ("K0SLAB_LOCK_WAIT", "soon"),
        ("K0SLAB_DRILL_POLL", "0s"),
        ("K0SLAB_DRILL_OBSERVE", "-1"),
        ("K0SLAB_DRILL_RECOVER", "10"),
        ("K0SLAB_DIR", a_file.as_str()),
        ("K0SLAB_HOME", a_file.as_str()),
        ("K0SLAB_BOOTPTAB", a_directory.as_str()),
        ("K0SLAB_DHCP_LEASES", a_directory.as_str()),
        ("K0SLAB_BOOTPD_PID", a_directory.as_str()),
        ("K0SLAB_BOOTPD_PLIST", a_directory.as_str()),
        ("K0SLAB_BOOTPD_EXE", a_directory.as_str()),
        ("K0SLAB_VAGRANT", "/no/such/vagrant"),
        ("K0SLAB_K0SCTL", "/no/such/k0sctl"),
        ("K0SLAB_KUBECTL", "/no/such/kubectl"),
        ("K0SLAB_TART", "/no/such/tart"),
        ("K0SLAB_CURL", "/no/such/curl"),
        ("K0SLAB_K0S_CACHE", "yes"),
    ] {
        cases.push((var.to_string(), bad.to_string()));
    }
    cases
}

#[test]
fn every_variable_with_a_bad_value_is_refused_before_anything_runs_or_is_written() {
    let sb = Sandbox::new();
    let etc_before = common::tree(&sb.root.path().join("etc"));
    for (var, bad) in bad_values(&sb) {
        for args in [&["up"][..], &["up", "--dry-run"]] {
            let o = sb.k0slab(args, &[(var.as_str(), bad.as_str())]);
            let err = stderr(&o);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{var}={bad} {args:?}: {}",
                both(&o)
            );
            assert!(
                err.contains(&given(&format!("environment variable {var}"), &bad)),
                "{var}={bad} {args:?}: {err}"
            );
            assert!(stdout(&o).is_empty(), "{var} {args:?}: {}", stdout(&o));
            assert!(sb.calls().is_empty(), "{var} {args:?}: {:?}", sb.calls());
            assert!(!sb.lab().exists(), "{var} {args:?}: the lab directory");
            assert!(
                !sb.home().join(".k0slab").exists(),
                "{var} {args:?}: ~/.k0slab (locks, VM registry)"
            );
            assert_eq!(
                common::tree(&sb.root.path().join("etc")),
                etc_before,
                "{var} {args:?}: bootptab"
            );
        }
    }
}

#[test]
fn a_bad_flag_is_refused_before_the_lock_or_anything_else_is_written() {
    let sb = Sandbox::new();
    for (flag, bad) in [
        ("--worker-count", "many"),
        ("--subnet", "8.8.8.0/24"),
        ("--k0s-version", "latest"),
    ] {
        for args in [&["up", flag, bad][..], &["up", "--dry-run", flag, bad]] {
            let o = sb.k0slab(args, &[]);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", both(&o));
            assert!(
                stderr(&o).contains(&given(&format!("flag {flag}"), bad)),
                "{args:?}: {}",
                stderr(&o)
            );
            assert!(sb.calls().is_empty(), "{args:?}: {:?}", sb.calls());
            assert!(!sb.lab().exists(), "{args:?}: the lab directory");
            assert!(!sb.home().join(".k0slab").exists(), "{args:?}: ~/.k0slab");
        }
    }
}

#[test]
fn every_k0slab_variable_in_the_source_is_checked() {
    let sb = Sandbox::new();
    let checked: Vec<String> = bad_values(&sb).into_iter().map(|(v, _)| v).collect();
    let literal = regex::Regex::new(r#""(K0SLAB_[A-Z0-9_]+)""#).unwrap();
    let mut read = std::collections::BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).unwrap();
                for c in literal.captures_iter(&text) {
                    read.insert(c[1].to_string());
                }
            }
        }
    }
    let missing: Vec<&String> = read.iter().filter(|v| !checked.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "variables read in src/ without a bad-value case here (and maybe without a check in \
         inputs::check_environment): {missing:?}"
    );
}
