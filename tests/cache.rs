//! The host's k0s cache (issue 19): the lab's release pinned once, its binary and airgap
//! bundle downloaded once per host (also by two `up`s at once), a damaged or cut-off file
//! fetched again, an offline `up` healthy from a filled cache and refused, naming what it
//! could not fetch, from an empty one. "The internet" is the stand-ins' ledger
//! (`state/internet.jsonl`, tests/standins/README.md). Run inside a network namespace with
//! no interfaces.

mod common;

use std::fs;
use std::path::PathBuf;

use common::standins::{both, stderr, stdout, Sandbox};
use serde_json::Value;

const ONE_ONE: [(&str, &str); 2] = [("control_plane_count", "1"), ("worker_count", "1")];
/// The stand-in's newest stable release (STANDIN_K0S_STABLE's default).
const STABLE: &str = "v1.34.1+k0s.0";
const BINARY: &str = "k0s-v1.34.1+k0s.0-arm64";
const BUNDLE: &str = "k0s-airgap-bundle-v1.34.1+k0s.0-arm64";
/// The stand-in release's sizes (STANDIN_K0S_BINARY_BYTES, STANDIN_K0S_BUNDLE_BYTES).
const BINARY_BYTES: u64 = 1 << 20;
const BUNDLE_BYTES: u64 = 3 << 20;

/// One transfer from the stand-ins' internet.
#[derive(Debug, Clone)]
struct Transfer {
    tool: String,
    host: Option<String>,
    url: String,
    bytes: u64,
}

fn ledger(sb: &Sandbox) -> Vec<Transfer> {
    fs::read_to_string(sb.state().join("internet.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Transfer {
                tool: v["tool"].as_str().unwrap().to_string(),
                host: v["host"].as_str().map(str::to_string),
                url: v["url"].as_str().unwrap().to_string(),
                bytes: v["bytes"].as_u64().unwrap(),
            }
        })
        .collect()
}

/// Bytes of `file` (an asset's name) that came from the internet.
fn fetched(transfers: &[Transfer], file: &str) -> (usize, u64) {
    let of: Vec<&Transfer> = transfers
        .iter()
        .filter(|t| t.url.ends_with(&format!("/{file}")))
        .collect();
    (of.len(), of.iter().map(|t| t.bytes).sum())
}

/// What nodes pulled themselves (images without a bundle, k0s without an upload).
fn node_pulls(transfers: &[Transfer]) -> Vec<&Transfer> {
    transfers.iter().filter(|t| t.tool == "node").collect()
}

fn cached(sb: &Sandbox, file: &str) -> PathBuf {
    sb.home().join(".k0slab/cache/k0s").join(STABLE).join(file)
}

fn lab_json(sb: &Sandbox, dir: &str) -> Value {
    serde_json::from_str(&fs::read_to_string(sb.work().join(dir).join("lab.json")).unwrap())
        .unwrap()
}

fn up(sb: &Sandbox, dir: &str, extra: &[(&str, &str)]) -> std::process::Output {
    let mut env = ONE_ONE.to_vec();
    env.push(("K0SLAB_NAME", dir));
    env.extend_from_slice(extra);
    sb.k0slab(&["--dir", dir, "up", "--wait", "10s"], &env)
}

#[test]
fn the_first_up_pins_the_release_and_downloads_it_once_later_ups_download_nothing() {
    let sb = Sandbox::new();
    let first = up(&sb, "a", &[]);
    assert!(first.status.success(), "{}", both(&first));
    let lab = lab_json(&sb, "a");
    assert_eq!(lab["inputs"]["k0s_version"], STABLE, "{lab}");
    let t = ledger(&sb);
    assert_eq!(fetched(&t, BINARY), (1, BINARY_BYTES), "{t:?}");
    assert_eq!(fetched(&t, BUNDLE), (1, BUNDLE_BYTES), "{t:?}");
    assert!(node_pulls(&t).is_empty(), "the bundle was imported: {t:?}");
    assert!(
        t.iter().all(|x| x.tool == "curl"),
        "k0sctl downloaded nothing itself: {t:?}"
    );
    let config = fs::read_to_string(sb.work().join("a/k0sctl.yaml")).unwrap();
    assert!(
        config.contains(&format!("k0sBinaryPath: {}", cached(&sb, BINARY).display())),
        "{config}"
    );
    assert!(config.contains(&format!("version: {STABLE}")), "{config}");
    let plan = sb.k0slab(&["--dir", "a", "plan"], &[("K0SLAB_NAME", "a")]);
    assert!(
        stdout(&plan).contains(&format!(
            "{STABLE} (pinned; binary and images in the host's cache)"
        )),
        "{}",
        both(&plan)
    );

    // A re-up keeps the pinned release, though a newer one is stable now.
    let halt = sb.k0slab(&["--dir", "a", "halt"], &[]);
    assert!(halt.status.success(), "{}", both(&halt));
    let again = up(&sb, "a", &[("STANDIN_K0S_STABLE", "v1.36.1+k0s.0")]);
    assert!(again.status.success(), "{}", both(&again));
    assert_eq!(lab_json(&sb, "a")["inputs"]["k0s_version"], STABLE);
    let after = ledger(&sb);
    assert_eq!(after.len(), t.len(), "the re-up fetched nothing: {after:?}");

    // Destroyed and up again, and a second lab: the release comes from the cache.
    let destroy = sb.k0slab(&["--dir", "a", "destroy"], &[]);
    assert!(destroy.status.success(), "{}", both(&destroy));
    for dir in ["a", "b"] {
        let o = up(&sb, dir, &[]);
        assert!(o.status.success(), "{dir}: {}", both(&o));
    }
    let last = ledger(&sb);
    assert_eq!(fetched(&last, BINARY), (1, BINARY_BYTES), "{last:?}");
    assert_eq!(fetched(&last, BUNDLE), (1, BUNDLE_BYTES), "{last:?}");
    assert!(node_pulls(&last).is_empty(), "{last:?}");
}

#[test]
fn two_ups_at_once_download_each_file_once() {
    let sb = Sandbox::new();
    // Slow enough that the second up asks while the first still downloads.
    let slow = [("STANDIN_INTERNET_BYTES_PER_SECOND", "2097152")];
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| up(&sb, "a", &slow));
        let b = s.spawn(|| up(&sb, "b", &slow));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success(), "a: {}", both(&a));
    assert!(b.status.success(), "b: {}", both(&b));
    let t = ledger(&sb);
    assert_eq!(fetched(&t, BINARY), (1, BINARY_BYTES), "{t:?}");
    assert_eq!(fetched(&t, BUNDLE), (1, BUNDLE_BYTES), "{t:?}");
    let waited = format!("{}{}", stderr(&a), stderr(&b));
    assert!(node_pulls(&t).is_empty(), "{t:?}\n{waited}");
}

#[test]
fn a_damaged_or_cut_off_cached_file_is_fetched_again() {
    let sb = Sandbox::new();
    let first = up(&sb, "a", &[]);
    assert!(first.status.success(), "{}", both(&first));
    // One byte changed in the binary, the bundle cut short.
    let binary = cached(&sb, BINARY);
    let mut bytes = fs::read(&binary).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&binary, &bytes).unwrap();
    let bundle = cached(&sb, BUNDLE);
    let cut = fs::read(&bundle).unwrap();
    fs::write(&bundle, &cut[..cut.len() / 2]).unwrap();

    let second = up(&sb, "b", &[]);
    assert!(second.status.success(), "{}", both(&second));
    for path in [&binary, &bundle] {
        assert!(
            stderr(&second).contains(&format!(
                "{} in the cache does not match the release's checksum",
                path.display()
            )),
            "{}",
            both(&second)
        );
    }
    let t = ledger(&sb);
    assert_eq!(fetched(&t, BINARY), (2, 2 * BINARY_BYTES), "{t:?}");
    assert_eq!(fetched(&t, BUNDLE), (2, 2 * BUNDLE_BYTES), "{t:?}");
    assert_eq!(fs::read(&binary).unwrap().len() as u64, BINARY_BYTES);
    assert_eq!(fs::read(&bundle).unwrap(), cut, "whole again");
}

#[test]
fn a_download_cut_off_is_resumed_not_started_over() {
    let sb = Sandbox::new();
    let o = up(&sb, "a", &[("STANDIN_CURL_CUT_AFTER", "1000000")]);
    assert!(o.status.success(), "{}", both(&o));
    let t = ledger(&sb);
    // Each file came in two transfers that add up to it once.
    assert_eq!(fetched(&t, BINARY), (2, BINARY_BYTES), "{t:?}");
    assert_eq!(fetched(&t, BUNDLE), (2, BUNDLE_BYTES), "{t:?}");
    assert!(!sb
        .home()
        .join(".k0slab/cache/k0s")
        .join(STABLE)
        .join(format!("{BUNDLE}.part"))
        .exists());
}

#[test]
fn a_release_file_that_never_matches_its_checksum_fails_naming_it_and_keeps_the_machines() {
    let sb = Sandbox::new();
    let o = up(&sb, "a", &[("STANDIN_K0S_CORRUPT", BUNDLE)]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "downloading the airgap bundle of k0s {STABLE} from https://github.com/k0sproject/k0s/releases/download/v1.34.1%2Bk0s.0/{BUNDLE} failed 3 times"
        )),
        "{err}"
    );
    assert!(err.contains("sha256sums.txt says"), "{err}");
    assert!(err.contains("The machines are kept"), "{err}");
    assert!(
        !cached(&sb, BUNDLE).exists(),
        "nothing unchecked under the release's name"
    );
    assert!(cached(&sb, BINARY).is_file(), "the good file stays");
    // Fixed at the source, the next up goes on from here.
    let again = up(&sb, "a", &[]);
    assert!(again.status.success(), "{}", both(&again));
}

#[test]
fn offline_a_new_lab_comes_up_healthy_from_a_filled_cache() {
    let sb = Sandbox::new();
    let fill = up(&sb, "a", &[]);
    assert!(fill.status.success(), "{}", both(&fill));
    let before = ledger(&sb).len();
    let offline = up(&sb, "b", &[("STANDIN_OFFLINE", "1")]);
    assert!(offline.status.success(), "{}", both(&offline));
    assert!(
        stderr(&offline).contains(
            "the newest stable k0s release could not be looked up (fetching https://docs.k0sproject.io/stable.txt"
        ),
        "{}",
        both(&offline)
    );
    assert_eq!(lab_json(&sb, "b")["inputs"]["k0s_version"], STABLE);
    assert_eq!(ledger(&sb).len(), before, "nothing came from the internet");
    let health = sb.k0slab(
        &["--dir", "b", "health", "-o", "json"],
        &[("STANDIN_OFFLINE", "1")],
    );
    assert!(health.status.success(), "{}", both(&health));
}

#[test]
fn offline_with_an_empty_cache_up_fails_naming_what_it_could_not_fetch() {
    let sb = Sandbox::new();
    // No release given: nothing to pin, refused before anything is written or booted.
    let o = up(&sb, "a", &[("STANDIN_OFFLINE", "1")]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains("K0S_VERSION is empty, and the newest stable k0s release could not be looked up at https://docs.k0sproject.io/stable.txt"),
        "{err}"
    );
    assert!(
        err.contains("Could not resolve host"),
        "curl's own reason: {err}"
    );
    assert!(!sb.work().join("a/lab.json").exists());
    assert!(sb
        .calls()
        .iter()
        .all(|c| c.tool != "vagrant" || c.args.first().map(String::as_str) != Some("up")));

    // A release given: the machines boot, the release cannot come.
    let o = up(
        &sb,
        "a",
        &[("STANDIN_OFFLINE", "1"), ("K0S_VERSION", STABLE)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "could not fetch the checksums of k0s {STABLE} from https://github.com/k0sproject/k0s/releases/download/v1.34.1%2Bk0s.0/sha256sums.txt"
        )),
        "{err}"
    );
    assert!(err.contains("The machines are kept"), "{err}");
    assert!(ledger(&sb).is_empty());
}

#[test]
fn offline_the_load_balancer_says_it_needs_the_internet_once() {
    let sb = Sandbox::new();
    let fill = up(&sb, "a", &[]);
    assert!(fill.status.success(), "{}", both(&fill));
    let o = sb.k0slab(
        &["--dir", "b", "up", "--wait", "10s"],
        &[
            ("control_plane_count", "3"),
            ("worker_count", "1"),
            ("K0SLAB_NAME", "b"),
            ("STANDIN_OFFLINE", "1"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        both(&o).contains(
            "k0slab: the load balancer needs the internet once, to install HAProxy with apt-get"
        ),
        "{}",
        both(&o)
    );
    // Connected again, `up` goes on: the HAProxy provisioner runs at every boot and installs
    // what the first one could not.
    let again = sb.k0slab(
        &["--dir", "b", "up", "--wait", "10s"],
        &[
            ("control_plane_count", "3"),
            ("worker_count", "1"),
            ("K0SLAB_NAME", "b"),
        ],
    );
    assert!(again.status.success(), "{}", both(&again));
}

#[test]
fn without_the_cache_k0sctl_downloads_k0s_and_every_containerd_node_pulls_its_images() {
    let sb = Sandbox::new();
    let o = sb.k0slab(
        &["up", "--wait", "10s"],
        &[
            ("control_plane_count", "3"),
            ("worker_count", "2"),
            ("K0SLAB_ENDPOINT", "haproxy"),
            ("K0SLAB_K0S_CACHE", "off"),
        ],
    );
    assert!(o.status.success(), "{}", both(&o));
    let t = ledger(&sb);
    assert_eq!(
        t.iter()
            .filter(|x| x.tool == "curl" && x.url.contains("k0sproject/k0s"))
            .count(),
        0,
        "k0slab fetched nothing: {t:?}"
    );
    assert_eq!(fetched(&t, BINARY).0, 1, "k0sctl's own download: {t:?}");
    let mut pulled: Vec<&str> = node_pulls(&t)
        .iter()
        .filter_map(|x| x.host.as_deref())
        .collect();
    pulled.sort();
    // Every host whose k0s runs containerd: the workers and controller+worker ones (k0s
    // `cmd/worker/worker.go` lines 269-271), once each.
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(sb.lab().join("k0sctl.yaml")).unwrap())
            .unwrap();
    let mut containerd: Vec<&str> = config["spec"]["hosts"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|h| h["role"] != "controller")
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    containerd.sort();
    assert!(containerd.contains(&"worker-1") && containerd.contains(&"worker-2"));
    assert_eq!(pulled, containerd, "{t:?}");
    assert!(!sb
        .home()
        .join(".k0slab/cache/k0s")
        .join(STABLE)
        .join(BINARY)
        .exists());
}

#[test]
fn cache_ls_and_prune_keep_what_a_lab_pins() {
    let sb = Sandbox::new();
    let empty = sb.k0slab(&["cache", "ls"], &[]);
    assert!(
        stdout(&empty).contains("holds no k0s release"),
        "{}",
        both(&empty)
    );
    let o = up(&sb, "a", &[]);
    assert!(o.status.success(), "{}", both(&o));
    let ls = sb.k0slab(&["cache", "ls", "-o", "json"], &[]);
    assert!(ls.status.success(), "{}", both(&ls));
    let listed: Value = serde_json::from_str(&stdout(&ls)).unwrap();
    let release = &listed["releases"][0];
    assert_eq!(release["version"], STABLE, "{listed}");
    assert_eq!(release["complete"], true);
    assert!(release["bytes"].as_u64().unwrap() >= BINARY_BYTES + BUNDLE_BYTES);
    assert!(
        release["labs"][0].as_str().unwrap().ends_with("/work/a"),
        "{listed}"
    );
    let row = sb.doctor_row(&[], "k0s cache");
    assert!(
        row.1["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{STABLE} (")),
        "{row:?}"
    );

    let kept = sb.k0slab(&["cache", "prune"], &[]);
    assert!(
        stdout(&kept).contains(&format!("kept    {STABLE}: pinned by")),
        "{}",
        both(&kept)
    );
    assert!(cached(&sb, BUNDLE).is_file());
    let mine = sb
        .home()
        .join(".k0slab/cache/k0s")
        .join(STABLE)
        .join("notes.txt");
    fs::write(&mine, "mine").unwrap();
    let destroy = sb.k0slab(&["--dir", "a", "destroy"], &[]);
    assert!(destroy.status.success(), "{}", both(&destroy));
    let pruned = sb.k0slab(&["cache", "prune"], &[]);
    assert!(pruned.status.success(), "{}", both(&pruned));
    assert!(
        stdout(&pruned).contains(&format!("removed {STABLE}")),
        "{}",
        both(&pruned)
    );
    assert!(!cached(&sb, BUNDLE).exists() && !cached(&sb, BINARY).exists());
    assert!(mine.is_file(), "a file k0slab did not write stays");
}
