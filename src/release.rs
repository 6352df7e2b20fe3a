//! A k0s release as the lab uses it: which files to fetch for the VMs' architecture, from
//! where, and how to check them. Pure: the downloads are `workflow::cache`'s, the files on disk
//! `lab::cache`'s.
//!
//! Facts, from the sources (k0sproject/k0s at dff90cee9a and the release tags named;
//! k0sproject/version v0.8.0, which k0sctl v0.32.2 pins in its `go.mod` line 37):
//! - the newest stable release is the body of `https://docs.k0sproject.io/stable.txt`, which
//!   is where k0sctl looks it up when `spec.k0s.version` is empty (k0sctl
//!   `phase/default_k0s_version.go` lines 25-37 → k0sproject/version `latest.go` lines 15-32);
//! - assets are under `https://github.com/k0sproject/k0s/releases/download/<tag>/`, the tag's
//!   `+` escaped as `%2B` in that path segment only (k0sproject/version `version.go` lines
//!   317-338);
//! - the binary is `k0s-<tag>-<arch>`; the airgap bundle is `k0s-airgap-bundle-<tag>-<arch>`
//!   up to v1.35 and `k0s-airgap-bundle-<tag>-linux-<arch>.tar` from v1.36.1 (k0s
//!   `.github/workflows/release.yml` at v1.33.4+k0s.0 lines 117 and 147, at HEAD lines 132 and
//!   182; commit cf54367cbb "Publish platform-specific image lists and bundles"). Both bundles
//!   are uncompressed tars, which is all k0s imports (`pkg/component/worker/ocibundle.go`
//!   lines 278-291: containerd's importer reads a plain tar stream);
//! - one `sha256sums.txt` covers every asset, written by `sha256sum -b`: lines
//!   `<64 hex> *<file name>` (release.yml at v1.33.4 lines 442-448).

use std::collections::BTreeMap;

use crate::inputs::K0sVersion;

/// Where k0sctl and k0slab look up the newest stable k0s release.
pub const STABLE_URL: &str = "https://docs.k0sproject.io/stable.txt";

const DOWNLOAD_BASE: &str = "https://github.com/k0sproject/k0s/releases/download";

/// The checksum file of every release.
pub const SUMS: &str = "sha256sums.txt";

/// The VMs' architecture. Tart runs virtual machines on Apple Silicon only, with the host's
/// architecture (cirruslabs/tart at 5287b59, `README.md` line 3: "macOS and Linux virtual
/// machines (VMs) on Apple Silicon"; a Linux VM is a `VZGenericPlatformConfiguration`,
/// `Sources/tart/Platform/Linux.swift` line 18, which emulates no other CPU), so every lab VM
/// is linux/arm64.
pub const ARCH: &str = "arm64";

/// The two files a node needs from a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Asset {
    /// The k0s binary, which k0sctl uploads to every node.
    Binary,
    /// The airgap bundle: every system image of the release, which k0s imports into
    /// containerd on the nodes that run it.
    Bundle,
}

impl Asset {
    pub const ALL: [Asset; 2] = [Asset::Binary, Asset::Bundle];

    /// How a person calls it.
    pub fn label(self) -> &'static str {
        match self {
            Asset::Binary => "k0s binary",
            Asset::Bundle => "airgap bundle",
        }
    }

    /// The release's file name for `version`.
    pub fn file_name(self, version: &K0sVersion) -> String {
        let tag = version.as_str();
        match self {
            Asset::Binary => format!("k0s-{tag}-{ARCH}"),
            Asset::Bundle if version.at_least(1, 36, 1) => {
                format!("k0s-airgap-bundle-{tag}-linux-{ARCH}.tar")
            }
            Asset::Bundle => format!("k0s-airgap-bundle-{tag}-{ARCH}"),
        }
    }
}

/// The download address of `file` (an asset's name or [`SUMS`]) of `version`.
pub fn url(version: &K0sVersion, file: &str) -> String {
    format!(
        "{DOWNLOAD_BASE}/{}/{file}",
        version.as_str().replace('+', "%2B")
    )
}

/// The release named by `stable.txt`'s body (trimmed, as k0sproject/version `latest.go` line
/// 72 does; a missing leading `v` is accepted as its `NewVersion` does, `version.go` 37-40).
pub fn parse_stable(body: &str) -> Result<K0sVersion, String> {
    let text = body.trim();
    let text = if text.starts_with('v') {
        text.to_string()
    } else {
        format!("v{text}")
    };
    K0sVersion::try_from(text.clone()).map_err(|_| {
        format!(
            "{STABLE_URL} answered {:?}, which is no k0s release",
            body.chars().take(80).collect::<String>()
        )
    })
}

/// The SHA-256 digests (lower-case hex) by file name from a `sha256sums.txt`; lines in text
/// mode (`<hex>  <name>`) are read too.
pub fn parse_sums(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (digest, name) = line.split_once(' ')?;
            let name = name.trim_start_matches(' ').trim_start_matches('*').trim();
            (digest.len() == 64
                && digest.bytes().all(|b| b.is_ascii_hexdigit())
                && !name.is_empty())
            .then(|| (name.to_string(), digest.to_ascii_lowercase()))
        })
        .collect()
}

/// Where k0s imports image bundles from on a node that runs containerd: `<dataDir>/images`
/// with the default data directory `/var/lib/k0s` (k0s `pkg/config/cfgvars.go` line 168;
/// `docs/airgap-install.md` lines 100-111). Every file there is imported, whatever its name
/// (`ocibundle.go` lines 118-145).
pub const BUNDLE_DIR: &str = "/var/lib/k0s/images/";

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> K0sVersion {
        K0sVersion::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn asset_names_follow_the_release_workflow() {
        let old = v("v1.34.1+k0s.0");
        assert_eq!(Asset::Binary.file_name(&old), "k0s-v1.34.1+k0s.0-arm64");
        assert_eq!(
            Asset::Bundle.file_name(&old),
            "k0s-airgap-bundle-v1.34.1+k0s.0-arm64"
        );
        let new = v("v1.36.1+k0s.0");
        assert_eq!(
            Asset::Bundle.file_name(&new),
            "k0s-airgap-bundle-v1.36.1+k0s.0-linux-arm64.tar"
        );
        assert_eq!(Asset::Binary.file_name(&new), "k0s-v1.36.1+k0s.0-arm64");
    }

    #[test]
    fn urls_escape_the_plus_in_the_tag_only() {
        let version = v("v1.34.1+k0s.0");
        assert_eq!(
            url(&version, &Asset::Binary.file_name(&version)),
            "https://github.com/k0sproject/k0s/releases/download/v1.34.1%2Bk0s.0/k0s-v1.34.1+k0s.0-arm64"
        );
        assert_eq!(
            url(&version, SUMS),
            "https://github.com/k0sproject/k0s/releases/download/v1.34.1%2Bk0s.0/sha256sums.txt"
        );
    }

    #[test]
    fn stable_txt_is_trimmed_and_checked() {
        assert_eq!(
            parse_stable("v1.34.1+k0s.0\n").unwrap().as_str(),
            "v1.34.1+k0s.0"
        );
        assert_eq!(
            parse_stable("1.33.4+k0s.0").unwrap().as_str(),
            "v1.33.4+k0s.0"
        );
        let err = parse_stable("<html>404</html>").unwrap_err();
        assert!(err.contains("stable.txt"), "{err}");
    }

    #[test]
    fn sums_in_binary_and_text_mode() {
        let a = "a".repeat(64);
        let b = "B".repeat(64);
        let sums = parse_sums(&format!(
            "{a} *k0s-v1.34.1+k0s.0-arm64\n{b}  k0s-airgap-bundle-v1.34.1+k0s.0-arm64\nnot a line\n{a}\n"
        ));
        assert_eq!(sums.len(), 2);
        assert_eq!(sums["k0s-v1.34.1+k0s.0-arm64"], a);
        assert_eq!(
            sums["k0s-airgap-bundle-v1.34.1+k0s.0-arm64"],
            "b".repeat(64)
        );
    }
}
