//! The stand-in tools themselves: they must refuse what the real tools refuse, or the flow
//! tests would pass against a world kinder than the real one.

mod common;

use std::fs;

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
