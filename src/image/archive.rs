//! Image archives given as files: a docker-archive (`docker save`: `manifest.json` with
//! `Config` and `RepoTags`) or an OCI image layout (`oci-layout`, `index.json`). containerd
//! takes names from `index.json` when `oci-layout` is there, else from `manifest.json`
//! (containerd `core/images/archive/importer.go` lines 132-235). Read once, as a stream, before
//! anything is sent: an unreadable archive is bad input.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::{reference, Image};
use crate::error::{Error, InputError, Result};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
}

/// JSON files of the archive worth keeping: the indexes and small blobs (manifests, configs).
const SMALL: u64 = 4 * 1024 * 1024;

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    InputError::Rule(format!(
        "{} is not an image archive k0slab can load: {} (give a `docker save` tar or an OCI \
         image layout tar)",
        path.display(),
        reason.into()
    ))
    .into()
}

/// The images in archive `path`, with their IDs (config digests); its size in bytes.
pub fn images(path: &Path) -> Result<(Vec<Image>, u64)> {
    let file = File::open(path).map_err(|e| bad(path, e.to_string()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut tar = tar::Archive::new(file);
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut oci_layout = false;
    let entries = tar.entries().map_err(|e| bad(path, e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(path, e.to_string()))?;
        let name = entry
            .path()
            .map_err(|e| bad(path, e.to_string()))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name == "oci-layout" {
            oci_layout = true;
        }
        if entry.header().entry_type().is_file() && entry.size() <= SMALL {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| bad(path, e.to_string()))?;
            if name.ends_with(".json") || name.starts_with("blobs/") {
                small.insert(name, bytes);
            }
        }
    }
    let digest_of_path = |p: &str| -> String {
        format!(
            "sha256:{}",
            p.rsplit('/').next().unwrap_or(p).trim_end_matches(".json")
        )
    };
    let mut found = Vec::new();
    if oci_layout {
        let index: Index = serde_json::from_slice(
            small
                .get("index.json")
                .ok_or_else(|| bad(path, "oci-layout without index.json"))?,
        )
        .map_err(|e| bad(path, format!("index.json: {e}")))?;
        for m in index.manifests {
            let Some(name) = m
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| m.annotations.get("org.opencontainers.image.ref.name"))
            else {
                continue;
            };
            let blob = format!("blobs/{}", m.digest.replace(':', "/"));
            let id = small
                .get(&blob)
                .and_then(|b| serde_json::from_slice::<Manifest>(b).ok())
                .map_or_else(|| m.digest.clone(), |man| man.config.digest);
            found.push(Image {
                given: name.clone(),
                name: reference::normalize(name),
                id,
            });
        }
    } else {
        let entries: Vec<DockerEntry> = serde_json::from_slice(
            small
                .get("manifest.json")
                .ok_or_else(|| bad(path, "neither manifest.json nor oci-layout"))?,
        )
        .map_err(|e| bad(path, format!("manifest.json: {e}")))?;
        for e in entries {
            for tag in e.repo_tags.unwrap_or_default() {
                found.push(Image {
                    name: reference::normalize(&tag),
                    given: tag,
                    id: digest_of_path(&e.config),
                });
            }
        }
    }
    if found.is_empty() {
        return Err(bad(path, "it names no image (no RepoTags or image names)"));
    }
    Ok((found, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut builder = tar::Builder::new(file.reopen().unwrap());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.finish().unwrap();
        file
    }

    #[test]
    fn docker_archive_names_and_ids() {
        let manifest =
            br#"[{"Config":"blobs/sha256/abc","RepoTags":["myapp:dev","me/x:1"],"Layers":[]}]"#;
        let f = tar_of(&[("blobs/sha256/abc", b"{}"), ("manifest.json", manifest)]);
        let (images, _) = images(f.path()).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(images[0].name, "docker.io/library/myapp:dev");
        assert_eq!(images[0].id, "sha256:abc");
        assert_eq!(images[1].name, "docker.io/me/x:1");
    }

    #[test]
    fn oci_layout_names_from_index_and_ids_from_the_manifest() {
        let index = br#"{"manifests":[{"digest":"sha256:m1","annotations":{"io.containerd.image.name":"ghcr.io/me/op:1"}}]}"#;
        let manifest = br#"{"config":{"digest":"sha256:c1"}}"#;
        let f = tar_of(&[
            ("oci-layout", b"{}"),
            ("index.json", index),
            ("blobs/sha256/m1", manifest),
        ]);
        let (images, _) = images(f.path()).unwrap();
        assert_eq!(images[0].name, "ghcr.io/me/op:1");
        assert_eq!(images[0].id, "sha256:c1");
    }

    #[test]
    fn what_is_not_an_image_archive_is_bad_input() {
        let f = tar_of(&[("hello.txt", b"hi")]);
        let e = images(f.path()).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_INPUT);
        let junk = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(junk.path(), vec![7u8; 2000]).unwrap();
        assert!(images(junk.path()).is_err());
        assert!(images(Path::new("/no/such/archive.tar")).is_err());
    }
}
