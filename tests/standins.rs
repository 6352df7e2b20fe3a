//! The stand-in tools themselves: they must refuse what the real tools refuse, or the flow
//! tests would pass against a world kinder than the real one.

mod common;

use std::fs;

use common::kairos::{get as kairos_get, kubectl as kairos_kubectl};
use common::standins::{both, standins_bin, stderr, stdout, Sandbox};
use serde_json::Value;

fn tool(name: &str) -> String {
    standins_bin().join(name).display().to_string()
}

fn rendered_lab(sb: &Sandbox, env: &[(&str, &str)]) {
    let o = sb.k0slab(&["render"], env);
    assert!(o.status.success(), "{}", both(&o));
}

#[test]
fn vagrant_refuses_unknown_machines_and_missing_vagrantfiles() {
    let sb = Sandbox::new();
    let o = sb.command(&tool("vagrant"), &["status", "--machine-readable"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("A Vagrant environment or target machine is required"));
    rendered_lab(&sb, &[]);
    let lab = sb.lab().display().to_string();
    let o = sb.command(
        &tool("vagrant"),
        &["up", "worker-9", "--provider", "tart"],
        &[("VAGRANT_CWD", &lab)],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("The machine with the name 'worker-9' was not found"),
        "{}",
        both(&o)
    );
    let o = sb.command(
        &tool("vagrant"),
        &["ssh", "worker-1", "-c", "true"],
        &[("VAGRANT_CWD", &lab)],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "ssh into a machine that is not running"
    );
    let o = sb.command(
        &tool("vagrant"),
        &["status", "--machine-readable"],
        &[("VAGRANT_CWD", &lab)],
    );
    assert!(o.status.success());
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.ends_with(",worker-1,state,not_created")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn k0sctl_refuses_configs_k0sctl_would_refuse() {
    let sb = Sandbox::new();
    rendered_lab(&sb, &[("control_plane_count", "3"), ("worker_count", "2")]);
    fill_cache(&sb);
    let config = sb.lab().join("k0sctl.yaml");
    let good = fs::read_to_string(&config).unwrap();
    let broken = [
        (
            good.replacen("role: worker", "role: worker\n    noTaints: true", 1),
            "noTaints can only be true",
        ),
        (
            good.replacen("role: controller\n", "role: single\n", 1),
            "single must be the only host",
        ),
        (
            good.replacen("role: worker", "role: boss", 1),
            "unknown role boss",
        ),
        (
            good.replace("address: 192.168.64.21", "address: 192.168.64.20"),
            "duplicate address",
        ),
        (
            good.replacen(
                "privateAddress: 192.168.64.20",
                "privateAddress: 192.168.64.999",
                1,
            ),
            "privateAddress",
        ),
        (
            good.replace("apiVersion: k0sctl.k0sproject.io/v1beta1", "apiVersion: v1"),
            "apiVersion",
        ),
    ];
    for (text, expect) in broken {
        assert_ne!(text, good, "{expect}: the edit changed nothing");
        let o = apply(&sb, "broken", &text, &[]);
        assert_eq!(o.status.code(), Some(1), "{expect}: {}", both(&o));
        assert!(stderr(&o).contains(expect), "{expect}: {}", both(&o));
    }
    // The key file must exist, and the hosts must be reachable.
    fs::remove_file(sb.lab().join("id_ed25519")).unwrap();
    let o = sb.command(
        &tool("k0sctl"),
        &["apply", "--config", config.to_str().unwrap()],
        &[],
    );
    assert!(stderr(&o).contains("ssh.keyPath"), "{}", both(&o));
}

#[test]
fn k0sctl_cannot_reach_machines_that_are_not_up() {
    let sb = Sandbox::new();
    rendered_lab(&sb, &[]);
    fill_cache(&sb);
    let config = sb.lab().join("k0sctl.yaml");
    let o = sb.command(
        &tool("k0sctl"),
        &["apply", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("dial tcp 192.168.64.10:22: connect: no route to host"),
        "{}",
        both(&o)
    );
    let o = sb.command(
        &tool("k0sctl"),
        &["kubeconfig", "--config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "no cluster, no kubeconfig");
}

#[test]
fn kubectl_only_answers_at_the_lab_endpoint() {
    let sb = Sandbox::new();
    let o = sb.k0slab(&["up", "--wait", "5s"], &[("control_plane_count", "3")]);
    assert!(o.status.success(), "{}", both(&o));
    let kubeconfig = sb.lab().join("kubeconfig");
    let ok = sb.command(
        &tool("kubectl"),
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "get",
            "--raw",
            "/readyz",
        ],
        &[],
    );
    assert_eq!(stdout(&ok), "ok");
    // A kubeconfig pointing elsewhere (here: a worker's address) gets no answer.
    let wrong = sb.work().join("wrong");
    fs::write(
        &wrong,
        fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace("192.168.64.100", "192.168.64.20"),
    )
    .unwrap();
    let o = sb.command(
        &tool("kubectl"),
        &[
            "--kubeconfig",
            wrong.to_str().unwrap(),
            "get",
            "--raw",
            "/readyz",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("Unable to connect to the server"),
        "{}",
        both(&o)
    );
}

#[test]
fn stand_ins_refuse_to_run_outside_the_tests() {
    let sb = Sandbox::new();
    let mut env = sb.env.clone();
    env.remove("K0SLAB_STANDIN_STATE");
    let o = std::process::Command::new(tool("tart"))
        .arg("--version")
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(99), "{}", both(&o));
}

// --- the stand-in internet: curl, k0sctl's downloads, the nodes' pulls ----------------------

const RELEASE: &str = "https://github.com/k0sproject/k0s/releases/download/v1.34.1%2Bk0s.0";
const BINARY: &str = "k0s-v1.34.1+k0s.0-arm64";
const MIB: u64 = 1024 * 1024;

/// The ledger of transfers from the internet (`state/internet.jsonl`).
fn ledger(sb: &Sandbox) -> Vec<Value> {
    fs::read_to_string(sb.state().join("internet.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ledger_of<'a>(entries: &'a [Value], tool: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["tool"] == tool).collect()
}

fn curl(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    sb.command(&tool("curl"), args, env)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digest sha256sums.txt gives `asset` of v1.34.1+k0s.0.
fn listed_digest(sb: &Sandbox, asset: &str) -> String {
    let o = curl(sb, &["-fsSL", &format!("{RELEASE}/sha256sums.txt")], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let line = stdout(&o)
        .lines()
        .find(|l| l.ends_with(&format!(" *{asset}")))
        .unwrap_or_else(|| panic!("{asset} not in {}", stdout(&o)))
        .to_string();
    let hex = line.split(' ').next().unwrap().to_string();
    assert_eq!(hex.len(), 64, "{line}");
    hex
}

/// Fills the k0s cache files a rendered k0sctl.yaml names (`k0slab up` downloads them; a
/// test that only renders needs them for k0sctl, which stats every `files` src as it loads).
fn fill_cache(sb: &Sandbox) {
    let config = fs::read_to_string(sb.lab().join("k0sctl.yaml")).unwrap();
    for line in config.lines() {
        let Some((_, path)) = line.trim().split_once(": ") else {
            continue;
        };
        let path = std::path::Path::new(path.trim());
        if !path.to_string_lossy().contains("/.k0slab/cache/k0s/") || path.exists() {
            continue;
        }
        let version = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        let url = format!(
            "https://github.com/k0sproject/k0s/releases/download/{}/{}",
            version.replace('+', "%2B"),
            path.file_name().unwrap().to_string_lossy()
        );
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let o = curl(sb, &["-fsSL", "-o", path.to_str().unwrap(), &url], &[]);
        assert!(o.status.success(), "{url}: {}", both(&o));
    }
}

/// k0sctl.yaml with every host's `files:` block (the airgap bundle) taken out.
fn without_files(config: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    for line in config.lines() {
        if line == "    files:" {
            skipping = true;
            continue;
        }
        if skipping && (line.starts_with("    - ") || line.starts_with("      ")) {
            continue;
        }
        skipping = false;
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[test]
fn curl_serves_releases_resumes_at_and_past_the_end_and_fails_like_curl() {
    let sb = Sandbox::new();
    let o = curl(
        &sb,
        &[
            "-fsSL",
            "--max-time",
            "10",
            "--retry",
            "2",
            "https://docs.k0sproject.io/stable.txt",
        ],
        &[],
    );
    assert_eq!(stdout(&o), "v1.34.1+k0s.0\n", "{}", both(&o));

    // -I -L: GitHub's redirect, then the object store's answer, in curl's HTTP/2 form.
    let url = format!("{RELEASE}/{BINARY}");
    let o = curl(&sb, &["-fsSLI", "--max-time", "10", &url], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let headers = stdout(&o);
    assert!(headers.starts_with("HTTP/2 302 \r\n"), "{headers}");
    assert!(headers.contains("\r\n\r\nHTTP/2 200 \r\n"), "{headers}");
    assert!(headers.ends_with("\r\n\r\n"), "{headers}");
    let lengths: Vec<&str> = headers
        .lines()
        .filter_map(|l| l.strip_prefix("content-length: "))
        .map(str::trim)
        .collect();
    assert_eq!(lengths, ["0", "1048576"], "{headers}");
    let o = curl(&sb, &["-fsSLI", &format!("{RELEASE}/k0s-v9-arm64")], &[]);
    assert_eq!(o.status.code(), Some(22), "{}", both(&o));
    assert!(stdout(&o).starts_with("HTTP/2 404 \r\n"), "{}", both(&o));
    assert!(
        ledger(&sb).iter().all(|e| e["url"] != url.as_str()),
        "-I is no transfer"
    );

    // The bundle's name changed with v1.36.1.
    for asset in [
        "v1.33.4%2Bk0s.0/k0s-airgap-bundle-v1.33.4+k0s.0-arm64",
        "v1.36.1%2Bk0s.0/k0s-airgap-bundle-v1.36.1+k0s.0-linux-arm64.tar",
    ] {
        let u = format!("https://github.com/k0sproject/k0s/releases/download/{asset}");
        let o = curl(&sb, &["-fsSLI", &u], &[]);
        assert!(o.status.success(), "{asset}: {}", both(&o));
        assert!(
            stdout(&o).contains("content-length: 3145728\r\n"),
            "{asset}"
        );
    }
    let o = curl(
        &sb,
        &[
            "-fsSLI",
            "https://github.com/k0sproject/k0s/releases/download/v1.36.1%2Bk0s.0/k0s-airgap-bundle-v1.36.1+k0s.0-arm64",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(22), "the old name is gone in v1.36.1");

    // A download cut after 300000 bytes, then resumed: the ledger has the remainder.
    let good = listed_digest(&sb, BINARY);
    let part = sb.work().join("part");
    let part_s = part.to_str().unwrap().to_string();
    let download = |env: &[(&str, &str)]| {
        curl(
            &sb,
            &[
                "-fsSL",
                "--retry",
                "2",
                "--connect-timeout",
                "10",
                "-C",
                "-",
                "-o",
                &part_s,
                &url,
            ],
            env,
        )
    };
    let cut = [("STANDIN_CURL_CUT_AFTER", "300000")];
    let o = download(&cut);
    assert_eq!(o.status.code(), Some(18), "{}", both(&o));
    assert_eq!(stderr(&o), "curl: (18) Transferred a partial file\n");
    assert_eq!(fs::metadata(&part).unwrap().len(), 300_000);
    let o = download(&cut);
    assert!(
        o.status.success(),
        "only the first download is cut: {}",
        both(&o)
    );
    let bytes = fs::read(&part).unwrap();
    assert_eq!(bytes.len() as u64, MIB);
    assert_eq!(sha256_hex(&bytes), good, "the resumed file is the file");
    assert!(bytes.starts_with(b"k0s v1.34.1+k0s.0 linux/arm64"));
    let fetched: Vec<u64> = ledger(&sb)
        .iter()
        .filter(|e| e["url"] == url.as_str())
        .map(|e| e["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(fetched, [300_000, MIB - 300_000]);
    for e in ledger(&sb) {
        assert_eq!(e["tool"], "curl");
        assert!(e["host"].is_null() && e["time"].as_f64().is_some(), "{e}");
    }

    // At the end: 416, which curl takes as complete (exit 0, nothing written).
    let o = download(&[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(fs::read(&part).unwrap(), bytes);
    // Past the end: 416 too; the longer file is left as it is.
    let mut longer = bytes.clone();
    longer.push(b'x');
    fs::write(&part, &longer).unwrap();
    let o = download(&[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(fs::read(&part).unwrap(), longer);
    let last = ledger(&sb).last().unwrap().clone();
    assert_eq!(last["bytes"], 0, "{last}");

    // A corrupt asset: one byte differs, sha256sums.txt keeps the good digest.
    fs::remove_file(&part).unwrap();
    let o = download(&[("STANDIN_K0S_CORRUPT", BINARY)]);
    assert!(o.status.success(), "{}", both(&o));
    let corrupt = fs::read(&part).unwrap();
    assert_eq!(corrupt.len(), bytes.len());
    assert_ne!(sha256_hex(&corrupt), good);
    assert_eq!(
        corrupt.iter().zip(&bytes).filter(|(a, b)| a != b).count(),
        1
    );
    assert_eq!(listed_digest(&sb, BINARY), good);

    // Offline: exit 6, nothing transferred, no file.
    fs::remove_file(&part).unwrap();
    let before = ledger(&sb).len();
    let o = download(&[("STANDIN_OFFLINE", "1")]);
    assert_eq!(o.status.code(), Some(6), "{}", both(&o));
    assert_eq!(stderr(&o), "curl: (6) Could not resolve host: github.com\n");
    assert!(!part.exists());
    assert_eq!(ledger(&sb).len(), before);

    // A release the internet does not have: 404, exit 22, no file.
    let o = curl(
        &sb,
        &[
            "-fsSL",
            "-o",
            &part_s,
            "https://github.com/k0sproject/k0s/releases/download/v1.35.0%2Bk0s.0/k0s-v1.35.0+k0s.0-arm64",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(22), "{}", both(&o));
    assert!(stderr(&o).contains("curl: (22) The requested URL returned error: 404"));
    assert!(!part.exists());
}

#[test]
fn k0sctl_refuses_bad_files_entries_as_it_loads_the_config() {
    let sb = Sandbox::new();
    rendered_lab(&sb, &[("control_plane_count", "3"), ("worker_count", "2")]);
    fill_cache(&sb);
    let config = sb.lab().join("k0sctl.yaml");
    let good = fs::read_to_string(&config).unwrap();
    let bundle = good
        .lines()
        .find_map(|l| l.trim().strip_prefix("src: "))
        .unwrap()
        .to_string();
    let broken = [
        (
            good.replacen(&format!("src: {bundle}"), "src: /nonexistent/bundle", 1),
            "failed to resolve upload file paths: failed to stat local path for k0s-airgap-bundle: stat /nonexistent/bundle: no such file or directory".to_string(),
        ),
        (
            good.replacen(&format!("src: {bundle}"), "src: /nonexistent/*.tar", 1),
            "failed to resolve upload file paths: no files found for k0s-airgap-bundle".into(),
        ),
        (
            good.replacen(&format!("      src: {bundle}\n"), "", 1),
            "failed to resolve local path for k0s-airgap-bundle: empty source".into(),
        ),
        (
            good.replacen("perm: '0644'", "perm: '600'", 1),
            "invalid permission 600: owner would have unconventional access".into(),
        ),
        (
            good.replacen("      dstDir: /var/lib/k0s/images/\n", "", 1),
            "files: (0: (dst: dst or dstdir required; dstDir: dst or dstdir required.).)".into(),
        ),
    ];
    for (text, expect) in broken {
        assert_ne!(text, good, "{expect}: the edit changed nothing");
        let o = apply(&sb, "broken", &text, &[]);
        assert_eq!(o.status.code(), Some(1), "{expect}: {}", both(&o));
        assert!(stderr(&o).contains(&expect), "{expect}: {}", both(&o));
        assert!(stderr(&o).contains("level=fatal"), "{}", both(&o));
    }
    // An unquoted 0644 is YAML's octal integer: fine.
    let path = sb.work().join("octal.yaml");
    fs::write(&path, good.replace("perm: '0644'", "perm: 0644")).unwrap();
    let o = sb.command(
        &tool("k0sctl"),
        &["apply", "--config", path.to_str().unwrap()],
        &[],
    );
    assert!(
        stdout(&o).contains("no route to host"),
        "loads, then cannot reach the hosts: {}",
        both(&o)
    );
}

/// A lab that is up (1 controller+worker, 1 worker by default), its k0sctl.yaml's text.
fn up_lab(sb: &Sandbox, env: &[(&str, &str)]) -> String {
    let o = sb.k0slab(&["up", "--wait", "5s"], env);
    assert!(o.status.success(), "{}", both(&o));
    fs::read_to_string(sb.lab().join("k0sctl.yaml")).unwrap()
}

fn apply(sb: &Sandbox, name: &str, text: &str, env: &[(&str, &str)]) -> std::process::Output {
    let path = sb.work().join(format!("{name}.yaml"));
    fs::write(&path, text).unwrap();
    sb.command(
        &tool("k0sctl"),
        &["apply", "--config", path.to_str().unwrap()],
        env,
    )
}

/// The config for another cluster (`metadata.name: NAME`) on the same hosts: one k0sctl has
/// not applied yet.
fn renamed(config: &str, name: &str) -> String {
    let old = config
        .lines()
        .find_map(|l| l.strip_prefix("  name: "))
        .unwrap()
        .to_string();
    config.replace(&format!("  name: {old}\n"), &format!("  name: {name}\n"))
}

#[test]
fn k0sctl_uploads_the_binary_path_caches_an_uploaded_download_and_refuses_a_missing_file() {
    let sb = Sandbox::new();
    let config = up_lab(&sb, &[]);
    // k0slab pins the version, uploads the binary and the bundle: k0sctl and the nodes
    // fetch nothing.
    let entries = ledger(&sb);
    assert!(ledger_of(&entries, "k0sctl").is_empty(), "{entries:?}");
    assert!(ledger_of(&entries, "node").is_empty(), "{entries:?}");
    let cluster = sb.cluster().unwrap();
    for h in cluster["hosts"].as_array().unwrap() {
        assert_eq!(h["k0s_binary"]["provider"], "local_file", "{h}");
        assert_eq!(h["images"], "bundle", "{h}");
        assert_eq!(h["images_missing"], false, "{h}");
        let uploaded = h["uploaded"].as_array().unwrap();
        assert_eq!(uploaded.len(), 1, "{h}");
        assert_eq!(
            uploaded[0]["dst"],
            "/var/lib/k0s/images/k0s-airgap-bundle-v1.34.1+k0s.0-arm64"
        );
        assert_eq!(uploaded[0]["bytes"], 3 * MIB);
    }

    // A k0sBinaryPath that is not there fails where k0sctl stages it.
    let binary = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("k0sBinaryPath: "))
        .unwrap()
        .to_string();
    let o = apply(
        &sb,
        "missing",
        &config.replace(&binary, "/nonexistent/k0s"),
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stdout(&o).contains("upload k0s binary: open file for upload: open /nonexistent/k0s: no such file or directory"),
        "{}",
        both(&o)
    );

    // uploadBinary without k0sBinaryPath: k0sctl downloads into its cache once.
    let upload = |name: &str| {
        renamed(&config, name)
            .lines()
            .filter(|l| !l.trim().starts_with("k0sBinaryPath:"))
            .map(|l| l.replace("uploadBinary: false", "uploadBinary: true"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let o = apply(&sb, "upload", &upload("upload"), &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(stdout(&o).contains("downloading k0s v1.34.1+k0s.0 binary for linux-arm64"));
    let cached = sb
        .home()
        .join("Library/Caches/k0sctl/k0s/linux/arm64/k0s-1.34.1+k0s.0");
    assert_eq!(fs::metadata(&cached).unwrap().len(), MIB);
    let o = apply(&sb, "again", &upload("again"), &[]);
    assert!(o.status.success(), "{}", both(&o));
    let entries = ledger(&sb);
    let k0sctl = ledger_of(&entries, "k0sctl");
    assert_eq!(
        k0sctl.len(),
        1,
        "the second apply used the cache: {k0sctl:?}"
    );
    assert_eq!(k0sctl[0]["url"], format!("{RELEASE}/{BINARY}"));
    assert_eq!(k0sctl[0]["bytes"], MIB);
    // Offline, the cache is all it needs.
    let o = apply(
        &sb,
        "offline",
        &upload("offline"),
        &[("STANDIN_OFFLINE", "1")],
    );
    assert!(o.status.success(), "{}", both(&o));
    fs::remove_file(&cached).unwrap();
    let o = apply(
        &sb,
        "nocache",
        &upload("nocache"),
        &[("STANDIN_OFFLINE", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let out = stdout(&o);
    assert!(
        out.contains("cache k0s binary: download k0s binary: Get")
            && out.contains(&format!("{RELEASE}/{BINARY}"))
            && out.contains("dial tcp: lookup github.com: no such host"),
        "{}",
        both(&o)
    );
}

#[test]
fn nodes_pull_once_per_containerd_host_without_a_bundle_and_not_at_all_with_one() {
    let sb = Sandbox::new();
    // The k0s cache off: k0slab renders uploadBinary without k0sBinaryPath or files, as before.
    let config = up_lab(
        &sb,
        &[
            ("control_plane_count", "3"),
            ("worker_count", "2"),
            ("K0SLAB_K0S_CACHE", "off"),
        ],
    );
    assert!(
        !config.contains("k0sBinaryPath") && !config.contains("files:"),
        "{config}"
    );
    assert!(
        config.contains("    version: v1.34.1+k0s.0\n"),
        "k0slab pins it: {config}"
    );
    let entries = ledger(&sb);
    let k0sctl: Vec<String> = ledger_of(&entries, "k0sctl")
        .iter()
        .map(|e| e["url"].as_str().unwrap().to_string())
        .collect();
    // k0sctl downloaded the binary into its cache, once for all hosts.
    assert_eq!(k0sctl, [format!("{RELEASE}/{BINARY}")]);
    let mut pulled: Vec<String> = ledger_of(&entries, "node")
        .iter()
        .map(|e| {
            assert_eq!(e["bytes"], 3 * MIB, "{e}");
            e["host"].as_str().unwrap().to_string()
        })
        .collect();
    pulled.sort();
    // control-plane-1 runs workloads (controller+worker), the others are plain controllers.
    assert_eq!(pulled, ["control-plane-1", "worker-1", "worker-2"]);
    let cluster = sb.cluster().unwrap();
    for h in cluster["hosts"].as_array().unwrap() {
        if h["role"] == "controller" {
            assert!(h.get("images").is_none(), "no containerd: {h}");
        } else {
            assert_eq!(h["images"], "pulled", "{h}");
        }
    }
    // Again: the images stay in containerd, the binary in the cache.
    let o = sb.k0slab(&["up", "--wait", "5s"], &[("K0SLAB_K0S_CACHE", "off")]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(ledger_of(&ledger(&sb), "node").len(), 3);
    assert_eq!(ledger_of(&ledger(&sb), "k0sctl").len(), 1);

    // Without spec.k0s.version (an older lab), k0sctl looks it up first: online, then offline.
    let unpinned = config.replace("    version: v1.34.1+k0s.0\n", "");
    let o = apply(&sb, "unpinned", &renamed(&unpinned, "unpinned"), &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("Using k0s version v1.34.1+k0s.0"),
        "{}",
        both(&o)
    );
    let entries = ledger(&sb);
    let k0sctl = ledger_of(&entries, "k0sctl");
    assert_eq!(
        k0sctl.len(),
        2,
        "the lookup; the binary came from the cache"
    );
    assert_eq!(k0sctl[1]["url"], "https://docs.k0sproject.io/stable.txt");
    assert_eq!(k0sctl[1]["bytes"], "v1.34.1+k0s.0\n".len());
    let o = apply(
        &sb,
        "offline",
        &renamed(&unpinned, "offline"),
        &[("STANDIN_OFFLINE", "1")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        stdout(&o).contains(
            "failed to look up k0s version online - try setting spec.k0s.version manually: http request to https://docs.k0sproject.io/stable.txt failed"
        ),
        "{}",
        both(&o)
    );
}

#[test]
fn offline_without_a_bundle_the_nodes_have_no_images_and_kubectl_shows_them_not_ready() {
    let sb = Sandbox::new();
    // Up to k0sctl (machines up, the cache filled), which fails.
    let o = sb.k0slab(
        &["up", "--wait", "5s"],
        &[
            ("control_plane_count", "3"),
            ("worker_count", "1"),
            ("STANDIN_K0SCTL_FAIL", "1"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(sb.cluster().is_none());
    let config = fs::read_to_string(sb.lab().join("k0sctl.yaml")).unwrap();
    let bare = without_files(&config);
    assert!(
        !bare.contains("files:") && bare.contains("k0sBinaryPath"),
        "{bare}"
    );
    let o = apply(&sb, "bare", &bare, &[("STANDIN_OFFLINE", "1")]);
    assert!(
        o.status.success(),
        "k0s starts, its pods do not: {}",
        both(&o)
    );
    let cluster = sb.cluster().unwrap();
    let missing: Vec<&str> = cluster["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["images_missing"] == true)
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["control-plane-1", "worker-1"]);
    assert!(ledger_of(&ledger(&sb), "node").is_empty());

    let kubeconfig = sb.work().join("kubeconfig");
    let o = sb.command(
        &tool("k0sctl"),
        &[
            "kubeconfig",
            "--config",
            sb.work().join("bare.yaml").to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", both(&o));
    fs::write(&kubeconfig, &o.stdout).unwrap();
    let kubectl = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
        all.extend_from_slice(args);
        let o = sb.command(&tool("kubectl"), &all, &[]);
        assert!(o.status.success(), "{}", both(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let nodes = kubectl(&["get", "nodes", "-o", "json"]);
    for n in nodes["items"].as_array().unwrap() {
        let ready = &n["status"]["conditions"][0];
        assert_eq!(ready["status"], "False", "{n}");
        assert_eq!(ready["reason"], "KubeletNotReady");
        assert!(
            ready["message"]
                .as_str()
                .unwrap()
                .contains("NetworkReady=false reason:NetworkPluginNotReady"),
            "{ready}"
        );
    }
    let pods = kubectl(&["get", "pods", "-n", "kube-system", "-o", "json"]);
    for p in pods["items"].as_array().unwrap() {
        assert_eq!(p["status"]["phase"], "Pending", "{p}");
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ImagePullBackOff"
        );
    }

    // Online again, the next apply's nodes pull what they lack.
    let o = apply(&sb, "bare", &bare, &[]);
    assert!(o.status.success(), "{}", both(&o));
    let entries = ledger(&sb);
    assert_eq!(ledger_of(&entries, "node").len(), 2, "{entries:?}");
    let nodes = kubectl(&["get", "nodes", "-o", "json"]);
    assert!(nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["status"]["conditions"][0]["status"] == "True"));
}

#[test]
fn the_load_balancer_needs_the_internet_for_haproxy_once() {
    let sb = Sandbox::new();
    rendered_lab(&sb, &[("control_plane_count", "3"), ("worker_count", "1")]);
    let lab = sb.lab().display().to_string();
    let up = |env: &[(&str, &str)]| {
        let mut all = vec![("VAGRANT_CWD", lab.as_str())];
        all.extend_from_slice(env);
        sb.command(
            &tool("vagrant"),
            &[
                "up",
                "load-balancer",
                "--provider",
                "tart",
                "--machine-readable",
            ],
            &all,
        )
    };
    let o = up(&[("STANDIN_OFFLINE", "1")]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let out = stdout(&o);
    assert!(
        out.contains("W: Failed to fetch http://ports.ubuntu.com/ubuntu-ports/dists/noble/InRelease  Temporary failure resolving 'ports.ubuntu.com'"),
        "{out}"
    );
    assert!(out.contains(
        "E: Unable to fetch some archives%!(VAGRANT_COMMA) maybe run apt-get update or try with --fix-missing?"
    ));
    // The script's own line, from templates/load-balancer-setup.sh.tera, last.
    assert!(
        out.contains("k0slab: the load balancer needs the internet once"),
        "{out}"
    );
    assert!(out.contains(",error-exit,Vagrant::Errors::VagrantError,The SSH command responded with a non-zero exit status"));
    assert!(stderr(&o).contains("The SSH command responded with a non-zero exit status"));
    assert_eq!(sb.vm("k0slab-load-balancer")["haproxy"], false);
    // Vagrant wrote its provisioning sentinel first, so only run: "always" provisioners run
    // again: k0slab's HAProxy step is one, and installs HAProxy now.
    let o = up(&[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("Machine already provisioned"),
        "{}",
        both(&o)
    );
    assert_eq!(sb.vm("k0slab-load-balancer")["haproxy"], true);
    // Without run: "always" (the Vagrantfile before this), the sentinel keeps it from trying.
    let vagrantfile = sb.lab().join("Vagrantfile");
    let text = fs::read_to_string(&vagrantfile).unwrap();
    fs::write(
        &vagrantfile,
        text.replace(
            r#"name: "k0slab-haproxy", run: "always","#,
            r#"name: "k0slab-haproxy","#,
        ),
    )
    .unwrap();
    let mut vm = sb.vm("k0slab-load-balancer");
    vm["haproxy"] = serde_json::Value::Bool(false);
    fs::write(
        sb.state().join("vms/k0slab-load-balancer.json"),
        serde_json::to_string(&vm).unwrap(),
    )
    .unwrap();
    let o = up(&[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(sb.vm("k0slab-load-balancer")["haproxy"], false);
}

#[test]
fn the_internet_runs_at_its_rate_and_curl_gives_up_at_its_max_time() {
    let sb = Sandbox::new();
    let url = format!("{RELEASE}/{BINARY}");
    let part = sb.work().join("part");
    // 1 MiB at 2 MiB/s: half a second, the file growing 64 KiB at a time meanwhile.
    let started = std::time::Instant::now();
    let mut child = std::process::Command::new(tool("curl"))
        .args(["-fsSL", "-C", "-", "-o", part.to_str().unwrap(), &url])
        .current_dir(sb.work())
        .env_clear()
        .envs(&sb.env)
        .env("STANDIN_INTERNET_BYTES_PER_SECOND", "2097152")
        .spawn()
        .unwrap();
    let mut sizes = Vec::new();
    while child.try_wait().unwrap().is_none() {
        if let Ok(m) = fs::metadata(&part) {
            sizes.push(m.len());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    assert!(
        started.elapsed().as_secs_f64() >= 0.45,
        "{:?}",
        started.elapsed()
    );
    assert!(
        sizes.iter().any(|&s| s > 0 && s < MIB),
        "a watcher saw it grow: {sizes:?}"
    );
    assert_eq!(fs::metadata(&part).unwrap().len(), MIB);

    // --max-time: exit 28 with what arrived by then, which stays in the file.
    fs::remove_file(&part).unwrap();
    let o = curl(
        &sb,
        &[
            "-fsSL",
            "--max-time",
            "0.2",
            "-o",
            part.to_str().unwrap(),
            &url,
        ],
        &[("STANDIN_INTERNET_BYTES_PER_SECOND", "1048576")],
    );
    assert_eq!(o.status.code(), Some(28), "{}", both(&o));
    assert!(
        stderr(&o).contains("curl: (28) Operation timed out after")
            && stderr(&o).contains("out of 1048576 bytes received"),
        "{}",
        both(&o)
    );
    let got = fs::metadata(&part).unwrap().len();
    assert!(got > 100_000 && got < 300_000, "{got}");
    let entries = ledger(&sb);
    assert_eq!(entries.last().unwrap()["bytes"], got);
}

// --- kairos install --infrastructure kubevirt: the stand-in virtualization stack ------------

/// A 1 controller + 2 nested workers lab (every worker has /dev/kvm).
const NESTED_LAB: [(&str, &str); 6] = [
    ("control_plane_count", "1"),
    ("worker_count", "2"),
    ("K0SLAB_NESTED", "workers"),
    ("memory_worker", "8192"),
    ("disk_size", "80"),
    ("K0S_VERSION", "v1.34.1+k0s.0"),
];

fn release(path: &str) -> String {
    standins_bin()
        .join("../releases")
        .join(path)
        .display()
        .to_string()
}

/// `kubectl apply -f FILE` on the lab, which must succeed.
fn kube_apply(sb: &Sandbox, file: &str) {
    let o = kairos_kubectl(sb, &["apply", "--server-side", "-f", file], &[]);
    assert!(o.status.success(), "{file}: {}", both(&o));
}

fn kube_apply_text(sb: &Sandbox, name: &str, text: &str) {
    let path = sb.work().join(format!("{name}.yaml"));
    fs::write(&path, text).unwrap();
    kube_apply(sb, path.to_str().unwrap());
}

fn without_kvm(sb: &Sandbox, vm: &str) {
    let mut v = sb.vm(vm);
    v["kvm"] = Value::Bool(false);
    fs::write(
        sb.state().join(format!("vms/{vm}.json")),
        serde_json::to_string(&v).unwrap(),
    )
    .unwrap();
}

fn condition<'a>(o: &'a Value, t: &str) -> &'a Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == t))
        .unwrap_or(&Value::Null)
}

const CDI: &str = "github.com/kubevirt/containerized-data-importer/releases/download/v1.66.0";
const KUBEVIRT: &str = "github.com/kubevirt/kubevirt/releases/download/v1.8.2";
const LOCAL_PATH: &str =
    "raw.githubusercontent.com/rancher/local-path-provisioner/v0.0.28/deploy/local-path-storage.yaml";

/// local-path as the default StorageClass, CDI and KubeVirt, Deployed.
fn virt_stack(sb: &Sandbox) {
    kube_apply(sb, &release(LOCAL_PATH));
    let sc = fs::read_to_string(release(LOCAL_PATH)).unwrap();
    let sc = sc.split("---").find(|d| d.contains("kind: StorageClass")).unwrap().replace(
        "metadata: {name: local-path}",
        "metadata: {name: local-path, annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}}",
    );
    kube_apply_text(sb, "default-sc", &sc);
    kube_apply(sb, &release(&format!("{CDI}/cdi-operator.yaml")));
    kube_apply(sb, &release(&format!("{CDI}/cdi-cr.yaml")));
    kube_apply(sb, &release(&format!("{KUBEVIRT}/kubevirt-operator.yaml")));
    kube_apply(sb, &release(&format!("{KUBEVIRT}/kubevirt-cr.yaml")));
    sb.wait_for("CDI and KubeVirt Deployed", |sb| {
        kget(sb, &["cdis.cdi.kubevirt.io", "cdi"])["status"]["phase"] == "Deployed"
            && kget(
                sb,
                &[
                    "kubevirts.kubevirt.io",
                    "kubevirt",
                    "--namespace",
                    "kubevirt",
                ],
            )["status"]["phase"]
                == "Deployed"
    });
}

fn kget(sb: &Sandbox, args: &[&str]) -> Value {
    kairos_get(sb, args, &[])
}

#[test]
fn kubevirt_deploys_and_only_a_node_with_dev_kvm_offers_kvm_until_the_cr_goes() {
    let sb = Sandbox::new();
    up_lab(&sb, &NESTED_LAB);
    without_kvm(&sb, "k0slab-worker-2");
    kube_apply(&sb, &release(&format!("{KUBEVIRT}/kubevirt-operator.yaml")));
    kube_apply(&sb, &release(&format!("{KUBEVIRT}/kubevirt-cr.yaml")));
    let kv = kget(
        &sb,
        &[
            "kubevirts.kubevirt.io",
            "kubevirt",
            "--namespace",
            "kubevirt",
        ],
    );
    assert_eq!(kv["status"]["phase"], "Deploying", "{kv}");
    assert_eq!(condition(&kv, "Available")["status"], "False");
    assert_eq!(
        condition(&kv, "Available")["reason"],
        "DeploymentInProgress"
    );
    sb.wait_for("KubeVirt Deployed", |sb| {
        kget(sb, &["kv", "kubevirt", "-n", "kubevirt"])["status"]["phase"] == "Deployed"
    });
    let kv = kget(&sb, &["kubevirts", "kubevirt", "-n", "kubevirt"]);
    assert_eq!(condition(&kv, "Available")["status"], "True", "{kv}");
    assert_eq!(condition(&kv, "Available")["reason"], "AllComponentsReady");
    let nodes = kget(&sb, &["nodes"]);
    let node = |name: &str| {
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    let (one, two) = (node("worker-1"), node("worker-2"));
    assert_eq!(
        one["status"]["allocatable"]["devices.kubevirt.io/kvm"], "1k",
        "{one}"
    );
    assert_eq!(
        two["status"]["capacity"]["devices.kubevirt.io/kvm"], "1k",
        "{two}"
    );
    assert_eq!(
        two["status"]["allocatable"]["devices.kubevirt.io/kvm"], "0",
        "{two}"
    );
    assert_eq!(one["status"]["capacity"]["memory"], "8388608Ki", "{one}");
    let ds = kget(&sb, &["ds", "virt-handler", "-n", "kubevirt"]);
    // The controller+worker runs a kubelet too.
    assert_eq!(ds["status"]["numberReady"], 3, "{ds}");
    assert!(kget(&sb, &["crd"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["metadata"]["name"] == "virtualmachineinstances.kubevirt.io"));

    // Deleting the CR removes what the operator deployed.
    let o = kairos_kubectl(
        &sb,
        &[
            "delete",
            "--ignore-not-found",
            "--wait=true",
            "-f",
            &release(&format!("{KUBEVIRT}/kubevirt-cr.yaml")),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", both(&o));
    assert!(!kget(&sb, &["crd"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["metadata"]["name"] == "virtualmachineinstances.kubevirt.io"));
    assert!(kget(&sb, &["daemonsets", "-n", "kubevirt"])["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(
        kget(&sb, &["nodes"])["items"][0]["status"]["capacity"]["devices.kubevirt.io/kvm"]
            .is_null()
    );
}

#[test]
fn a_datavolume_waits_for_its_first_consumer_unless_bound_at_once_and_retries_an_unserved_url() {
    let sb = Sandbox::new();
    up_lab(&sb, &NESTED_LAB);
    virt_stack(&sb);
    let dv = |name: &str, extra: &str, url: &str| {
        format!(
            "apiVersion: cdi.kubevirt.io/v1beta1\nkind: DataVolume\nmetadata:\n  name: {name}\n  namespace: default\n{extra}spec:\n  source: {{http: {{url: \"{url}\"}}}}\n  storage: {{resources: {{requests: {{storage: 17024Mi}}}}}}\n"
        )
    };
    let served = "https://github.com/kubevirt/kubevirt/releases/download/v1.8.2/kubevirt-cr.yaml";
    let immediate = "  annotations: {cdi.kubevirt.io/storage.bind.immediate.requested: \"true\"}\n";
    kube_apply_text(&sb, "late", &dv("late", "", served));
    kube_apply_text(&sb, "now", &dv("now", immediate, served));
    kube_apply_text(
        &sb,
        "missing",
        &dv(
            "missing",
            immediate,
            "http://kairos-operator-nginx.default.svc.cluster.local/none.iso",
        ),
    );
    sb.wait_for("the bound DataVolume imported", |sb| {
        kget(sb, &["dv", "now", "--namespace", "default"])["status"]["phase"] == "Succeeded"
    });
    let late = kget(&sb, &["datavolumes", "late", "--namespace", "default"]);
    assert_eq!(late["status"]["phase"], "WaitForFirstConsumer", "{late}");
    // nginx is not there: the importer cannot resolve its Service and restarts.
    let missing = kget(
        &sb,
        &[
            "datavolumes.cdi.kubevirt.io",
            "missing",
            "--namespace",
            "default",
        ],
    );
    assert_eq!(missing["status"]["phase"], "ImportInProgress", "{missing}");
    assert_eq!(
        condition(&missing, "Running")["reason"],
        "Error",
        "{missing}"
    );
    assert!(
        missing["status"]["restartCount"].as_u64().is_some(),
        "{missing}"
    );
}

/// The provider's e2e workload cluster on CAPK (cluster-api-provider-kairos c300236
/// test/e2e/workload_cluster.go 69-204), with `cpu` as the domain's cpu.
fn capk_cluster(cpu: &str) -> String {
    format!(
        r#"apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata: {{name: e2e-workload, namespace: default}}
spec:
  infrastructureRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1, kind: KubevirtCluster, name: e2e-workload}}
  controlPlaneRef: {{apiVersion: controlplane.cluster.x-k8s.io/v1beta2, kind: KairosControlPlane, name: e2e-workload-cp}}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
kind: KubevirtCluster
metadata: {{name: e2e-workload, namespace: default}}
spec: {{}}
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: KairosControlPlane
metadata: {{name: e2e-workload-cp, namespace: default}}
spec:
  replicas: 1
  version: v1.35.4+k3s1
  distribution: k3s
  machineTemplate:
    infrastructureRef: {{apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1, kind: KubevirtMachineTemplate, name: e2e-workload-mt, namespace: default}}
  kairosConfigTemplate: {{name: e2e-workload-config}}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1alpha1
kind: KubevirtMachineTemplate
metadata: {{name: e2e-workload-mt, namespace: default}}
spec:
  template:
    spec:
      virtualMachineBootstrapCheck: {{checkStrategy: none}}
      virtualMachineTemplate:
        spec:
          runStrategy: Always
          dataVolumeTemplates:
          - metadata: {{name: e2e-workload-rootdisk}}
            spec: {{source: {{blank: {{}}}}, pvc: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 40Gi}}}}}}}}
          template:
            spec:
              domain:
                cpu: {cpu}
                resources: {{requests: {{memory: 4Gi}}}}
                devices:
                  disks:
                  - {{name: rootdisk, disk: {{bus: virtio}}, bootOrder: 1}}
                  - {{name: installerdisk, disk: {{bus: virtio}}, bootOrder: 2}}
                  interfaces: [{{name: default, masquerade: {{}}}}]
                firmware: {{bootloader: {{efi: {{secureBoot: false}}}}}}
              networks: [{{name: default, pod: {{}}}}]
              volumes:
              - {{name: installerdisk, dataVolume: {{name: kairos-kubevirt}}}}
              - {{name: rootdisk, dataVolume: {{name: e2e-workload-rootdisk}}}}
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: KairosConfigTemplate
metadata: {{name: e2e-workload-config, namespace: default}}
spec:
  template:
    spec: {{role: control-plane, distribution: k3s, kubernetesVersion: v1.35.4+k3s1}}
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: kairos-kubevirt
  namespace: default
  annotations: {{cdi.kubevirt.io/storage.bind.immediate.requested: "true"}}
spec:
  source: {{blank: {{}}}}
  storage: {{resources: {{requests: {{storage: 17024Mi}}}}}}
"#
    )
}

/// cert-manager, CAPI core, the successor Kairos providers and CAPK, applied as released.
fn capk_providers(sb: &Sandbox) {
    for f in [
        "github.com/cert-manager/cert-manager/releases/download/v1.16.2/cert-manager.yaml",
        "github.com/kubernetes-sigs/cluster-api/releases/download/v1.11.2/core-components.yaml",
        "github.com/kairos-io/cluster-api-provider-kairos/releases/download/v0.1.0-alpha.2/kairos-capi-provider.yaml",
        "github.com/kubernetes-sigs/cluster-api-provider-kubevirt/releases/download/v0.1.10/infrastructure-components.yaml",
    ] {
        kube_apply(sb, &release(f));
    }
}

fn patch_ingress(sb: &Sandbox, ip: &str, subresource: bool) -> std::process::Output {
    let patch = format!(r#"{{"status":{{"loadBalancer":{{"ingress":[{{"ip":"{ip}"}}]}}}}}}"#);
    let mut args = vec![
        "patch",
        "service",
        "e2e-workload-control-plane-lb",
        "--namespace",
        "default",
    ];
    if subresource {
        args.push("--subresource=status");
    }
    args.extend_from_slice(&["--type=merge", "-p", patch.as_str()]);
    kairos_kubectl(sb, &args, &[])
}

fn workload_kubeconfig(sb: &Sandbox, server: &str) -> String {
    let path = sb.work().join(format!("workload-{server}"));
    fs::write(
        &path,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: w\n  cluster: {{server: \"https://{server}:6443\"}}\nusers:\n- name: w\n  user: {{token: x}}\ncontexts:\n- name: w\n  context: {{cluster: w, user: w}}\ncurrent-context: w\n"),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn a_capk_machine_waits_for_the_lb_ingress_then_kvm_and_its_volumes_and_answers_at_a_workers_address(
) {
    let sb = Sandbox::new();
    up_lab(&sb, &NESTED_LAB);
    without_kvm(&sb, "k0slab-worker-1");
    without_kvm(&sb, "k0slab-worker-2");
    virt_stack(&sb);
    capk_providers(&sb);
    kube_apply_text(&sb, "capk", &capk_cluster("{cores: 2}"));

    // The KCP's LoadBalancer Service, no ingress yet: no bootstrap data.
    sb.wait_for("the control plane's LB Service", |sb| {
        kget(sb, &["services", "--namespace", "default"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["metadata"]["name"] == "e2e-workload-control-plane-lb")
    });
    let svc = kget(
        &sb,
        &["svc", "e2e-workload-control-plane-lb", "-n", "default"],
    );
    assert_eq!(svc["spec"]["type"], "LoadBalancer", "{svc}");
    assert!(svc["spec"]["selector"].is_null(), "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["port"], 6443);
    std::thread::sleep(std::time::Duration::from_millis(600));
    let config = kget(
        &sb,
        &["kairosconfigs", "e2e-workload-cp-0", "-n", "default"],
    );
    assert!(config["status"]["dataSecretName"].is_null(), "{config}");
    // A status in a plain patch is dropped; the status subresource keeps it.
    let o = patch_ingress(&sb, "192.168.64.21", false);
    assert!(o.status.success(), "{}", both(&o));
    assert!(kget(
        &sb,
        &["svc", "e2e-workload-control-plane-lb", "-n", "default"]
    )["status"]["loadBalancer"]["ingress"]
        .is_null());
    let workers: Vec<String> = kget(&sb, &["nodes"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("worker-")
        })
        .map(|n| {
            n["status"]["addresses"][0]["address"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let ip = workers[0].clone();
    let o = patch_ingress(&sb, &ip, true);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("service/e2e-workload-control-plane-lb patched"),
        "{}",
        both(&o)
    );
    assert_eq!(
        kget(
            &sb,
            &["svc", "e2e-workload-control-plane-lb", "-n", "default"]
        )["status"]["loadBalancer"]["ingress"][0]["ip"],
        ip.as_str()
    );
    sb.wait_for("bootstrap data once the ingress is there", |sb| {
        kget(sb, &["kairosconfigs", "e2e-workload-cp-0", "-n", "default"])["status"]
            ["dataSecretName"]
            .is_string()
    });

    // No node offers kvm: the VMI's temporary pod fits nowhere, the root disk waits.
    sb.wait_for("the VMI", |sb| {
        !kget(sb, &["vmi", "--namespace", "default"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    let vmi = kget(
        &sb,
        &[
            "virtualmachineinstances",
            "e2e-workload-cp-0",
            "--namespace",
            "default",
        ],
    );
    assert_eq!(vmi["status"]["phase"], "Pending", "{vmi}");
    assert_eq!(
        condition(&vmi, "PodScheduled")["message"],
        "0/3 nodes are available: 3 Insufficient devices.kubevirt.io/kvm.",
        "{vmi}"
    );
    let kvm = kget(
        &sb,
        &[
            "kubevirtmachines",
            "e2e-workload-cp-0",
            "--namespace",
            "default",
        ],
    );
    assert_eq!(
        condition(&kvm, "VMProvisioned")["reason"],
        "Unschedulable",
        "{kvm}"
    );
    let machine = kget(&sb, &["machines", "e2e-workload-cp-0", "-n", "default"]);
    assert_eq!(machine["status"]["phase"], "Provisioning", "{machine}");

    // A nested worker gets /dev/kvm back: the VMI runs there, the Machine is Provisioned, then Running.
    let mut v = sb.vm("k0slab-worker-2");
    v["kvm"] = Value::Bool(true);
    fs::write(
        sb.state().join("vms/k0slab-worker-2.json"),
        serde_json::to_string(&v).unwrap(),
    )
    .unwrap();
    sb.wait_for("the Machine Running", |sb| {
        kget(sb, &["machines", "e2e-workload-cp-0", "-n", "default"])["status"]["phase"]
            == "Running"
    });
    let vmi = kget(&sb, &["vmis", "e2e-workload-cp-0", "-n", "default"]);
    assert_eq!(vmi["status"]["phase"], "Running", "{vmi}");
    assert_eq!(vmi["status"]["nodeName"], "worker-2", "{vmi}");
    let vmi_ip = vmi["status"]["interfaces"][0]["ipAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(vmi_ip.starts_with("10.244."), "{vmi}");
    let root = kget(
        &sb,
        &[
            "dv",
            "e2e-workload-cp-0-e2e-workload-rootdisk",
            "-n",
            "default",
        ],
    );
    assert_eq!(root["status"]["phase"], "Succeeded", "{root}");
    let kvm = kget(
        &sb,
        &["kubevirtmachines", "e2e-workload-cp-0", "-n", "default"],
    );
    assert_eq!(
        kvm["spec"]["providerID"], "kubevirt://e2e-workload-cp-0",
        "{kvm}"
    );
    let ep = kget(
        &sb,
        &[
            "endpoints",
            "e2e-workload-control-plane-lb",
            "-n",
            "default",
        ],
    );
    assert_eq!(
        ep["subsets"][0]["addresses"][0]["ip"],
        vmi_ip.as_str(),
        "{ep}"
    );

    // The workload API answers at the ingress, a worker's address; not at one no node has.
    let ok = sb.command(
        &tool("kubectl"),
        &[
            "--kubeconfig",
            &workload_kubeconfig(&sb, &ip),
            "get",
            "nodes",
            "-o",
            "json",
        ],
        &[],
    );
    assert!(ok.status.success(), "{}", both(&ok));
    assert!(stdout(&ok).contains("e2e-workload-cp-0"), "{}", both(&ok));
    let o = patch_ingress(&sb, "192.168.64.250", true);
    assert!(o.status.success(), "{}", both(&o));
    let no = sb.command(
        &tool("kubectl"),
        &[
            "--kubeconfig",
            &workload_kubeconfig(&sb, "192.168.64.250"),
            "get",
            "--raw",
            "/readyz",
        ],
        &[],
    );
    assert!(stderr(&no).contains("no route to host"), "{}", both(&no));
}

#[test]
fn kubevirts_arm64_webhook_refuses_a_cpu_model_other_than_host_passthrough() {
    let sb = Sandbox::new();
    up_lab(&sb, &NESTED_LAB);
    virt_stack(&sb);
    capk_providers(&sb);
    kube_apply_text(&sb, "capk", &capk_cluster("{cores: 2, model: cortex-a57}"));
    let o = patch_ingress(&sb, "192.168.64.21", true);
    assert!(o.status.success(), "{}", both(&o));
    sb.wait_for("CAPK's refusal", |sb| {
        condition(
            &kget(
                sb,
                &["kubevirtmachines", "e2e-workload-cp-0", "-n", "default"],
            ),
            "VMProvisioned",
        )["reason"]
            == "VMCreateFailed"
    });
    let kvm = kget(
        &sb,
        &["kubevirtmachines", "e2e-workload-cp-0", "-n", "default"],
    );
    assert_eq!(
        condition(&kvm, "VMProvisioned")["message"],
        "Failed vm creation: admission webhook \"virtualmachine-validator.kubevirt.io\" denied the request: currently, host-passthrough is the only model supported on Arm64",
        "{kvm}"
    );
    assert!(kget(&sb, &["vm", "-n", "default"])["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn kustomize_of_a_remote_url_answers_from_the_release_and_fails_offline_as_git_does() {
    let sb = Sandbox::new();
    let url = "https://github.com/kairos-io/kairos-operator/config/nginx?ref=v0.1.0-beta4";
    let o = sb.command(&tool("kubectl"), &["kustomize", url], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains("name: kairos-operator-nginx"),
        "{}",
        both(&o)
    );
    let o = sb.command(
        &tool("kubectl"),
        &["kustomize", url],
        &[("STANDIN_OFFLINE", "1")],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: git cmd = '/usr/bin/git fetch --depth=1 origin v0.1.0-beta4': exit status 128"
    );
}

#[test]
fn an_osartifact_builds_once_the_operator_runs_and_its_iso_is_what_nginx_serves_to_cdi() {
    let sb = Sandbox::new();
    up_lab(&sb, &NESTED_LAB);
    virt_stack(&sb);
    let kustomize = |path: &str, name: &str| {
        let url = format!("https://github.com/kairos-io/kairos-operator/{path}?ref=v0.1.0-beta4");
        let o = sb.command(&tool("kubectl"), &["kustomize", &url], &[]);
        assert!(o.status.success(), "{}", both(&o));
        kube_apply_text(&sb, name, &stdout(&o));
    };
    kustomize("config/default", "operator");
    kustomize("config/nginx", "nginx");
    let image = r##"apiVersion: v1
kind: Secret
metadata: {name: kairos-kubevirt-cloud-config, namespace: default}
stringData: {userdata: "#cloud-config\n"}
---
apiVersion: build.kairos.io/v1alpha2
kind: OSArtifact
metadata: {name: kairos-kubevirt, namespace: default}
spec:
  image: {ref: "quay.io/kairos/hadron:v0.2.0-standard-arm64-generic-v4.1.0-k3s-v1.35.4-k3s1"}
  artifacts: {arch: arm64, iso: true, diskSize: "16000", cloudConfigRef: {name: kairos-kubevirt-cloud-config, key: userdata}}
  exporters:
  - template:
      spec:
        restartPolicy: Never
        containers:
        - name: upload-to-nginx
          image: curlimages/curl:latest
          command: ["sh", "-ec"]
          args: ['for f in /artifacts/*; do curl -fsSL -T "$f" "http://kairos-operator-nginx/$(basename "$f")"; done']
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: kairos-kubevirt
  namespace: default
  annotations: {cdi.kubevirt.io/storage.bind.immediate.requested: "true"}
spec:
  source: {http: {url: "http://kairos-operator-nginx.default.svc.cluster.local/kairos-kubevirt.iso"}}
  storage: {resources: {requests: {storage: 17024Mi}}}
"##;
    kube_apply_text(&sb, "image", image);
    let art = kget(
        &sb,
        &[
            "osartifacts.build.kairos.io",
            "kairos-kubevirt",
            "--namespace",
            "default",
        ],
    );
    assert_eq!(art["status"]["phase"], "Building", "{art}");
    // Until the ISO is exported the importer gets a 404 and restarts.
    let dv = kget(&sb, &["dv", "kairos-kubevirt", "--namespace", "default"]);
    assert_ne!(dv["status"]["phase"], "Succeeded", "{dv}");
    sb.wait_for("the OSArtifact Ready", |sb| {
        kget(sb, &["osartifacts", "kairos-kubevirt", "-n", "default"])["status"]["phase"] == "Ready"
    });
    let nginx: Value =
        serde_json::from_str(&fs::read_to_string(sb.state().join("nginx.json")).unwrap()).unwrap();
    assert!(nginx["files"]["kairos-kubevirt.iso"].is_number(), "{nginx}");
    sb.wait_for("the DataVolume imported", |sb| {
        kget(sb, &["datavolumes", "kairos-kubevirt", "-n", "default"])["status"]["phase"]
            == "Succeeded"
    });

    // A failing build ends in Error.
    let failing = image
        .split("---")
        .nth(1)
        .unwrap()
        .replace("kairos-kubevirt,", "broken,");
    kube_apply_text(&sb, "broken", &failing);
    let env = [("STANDIN_OSARTIFACT_FAIL", "broken")];
    sb.wait_for("the broken OSArtifact in Error", |sb| {
        kairos_get(sb, &["osartifacts", "broken", "-n", "default"], &env)["status"]["phase"]
            == "Error"
    });
}

#[test]
fn a_k0s_ha_control_plane_on_capk_runs_controllers_and_registers_no_node() {
    let sb = Sandbox::new();
    up_lab(&sb, &NESTED_LAB);
    virt_stack(&sb);
    capk_providers(&sb);
    let manifest = capk_cluster("{cores: 2}")
        .replace(
            "replicas: 1\n  version: v1.35.4+k3s1\n  distribution: k3s",
            "replicas: 3\n  version: v1.34.1+k0s.0\n  distribution: k0s",
        )
        .replace(
            "distribution: k3s, kubernetesVersion: v1.35.4+k3s1",
            "distribution: k0s, kubernetesVersion: v1.34.1+k0s.0",
        );
    kube_apply_text(&sb, "capk-k0s", &manifest);
    let o = patch_ingress(&sb, "192.168.64.21", true);
    assert!(o.status.success(), "{}", both(&o));
    sb.wait_for(
        "three Provisioned machines and an initialized control plane",
        |sb| {
            let ms = kget(sb, &["machines", "-n", "default"]);
            let kcp = kget(
                sb,
                &["kairoscontrolplanes", "e2e-workload-cp", "-n", "default"],
            );
            ms["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["status"]["phase"] == "Provisioned")
                .count()
                == 3
                && kcp["status"]["initialized"] == true
        },
    );
    std::thread::sleep(std::time::Duration::from_millis(700));
    let kcp = kget(
        &sb,
        &["kairoscontrolplanes", "e2e-workload-cp", "-n", "default"],
    );
    assert_eq!(kcp["status"]["readyReplicas"], 0, "{kcp}");
    let ms = kget(&sb, &["machines", "-n", "default"]);
    assert!(
        ms["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"]["nodeRef"].is_null()),
        "{ms}"
    );
}
