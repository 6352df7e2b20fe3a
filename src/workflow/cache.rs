//! The k0s release a lab runs, pinned once, and its files fetched once per host into the
//! cache (`lab::cache`), from where k0sctl uploads them to the nodes instead of every node
//! pulling its images from the internet.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::file_digest;
use crate::inputs::K0sVersion;
use crate::lab::cache::Cache;
use crate::lab::record::Planned;
use crate::output::bytes as format_bytes;
use crate::progress::Progress;
use crate::release::{self, Asset};
use crate::tools::curl::Curl;
use crate::tools::Tool;
use crate::workflow::context::Context;

/// How many times one file is downloaded (resumed, or started over) before giving up.
const ATTEMPTS: usize = 3;

fn curl<'c>(ctx: &'c Context<'_>) -> Result<Curl<'c>> {
    Ok(Curl {
        path: ctx.tools.get(Tool::Curl)?,
        env: ctx.env,
        out: &ctx.out,
    })
}

/// The newest stable k0s release, as k0sctl would look it up.
pub fn newest_stable(ctx: &Context<'_>) -> Result<K0sVersion> {
    let body = curl(ctx)?.text(release::STABLE_URL)?;
    release::parse_stable(&body).map_err(Error::Step)
}

/// How the lab's k0s release was chosen, for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinned {
    /// `K0S_VERSION`, or what the lab recorded.
    Already,
    /// The newest stable release, looked up just now.
    LookedUp,
    /// The newest release in the cache: the lookup failed (offline?).
    FromCache(String),
}

/// Pins the lab's k0s release when `K0S_VERSION` is empty and the lab has none recorded: the
/// newest stable release, looked up once (then `lab.json` keeps it, so every node, every
/// later `up` and the cache agree); without the internet, the newest release the cache holds.
pub fn pin(ctx: &Context<'_>, planned: &mut Planned) -> Result<Pinned> {
    if planned.topology.k0s_version.is_some() {
        return Ok(Pinned::Already);
    }
    let cache = Cache::new(ctx.env);
    let (version, how) = match newest_stable(ctx) {
        Ok(v) => (v, Pinned::LookedUp),
        Err(e) => match cache.newest_complete()? {
            Some(v) => {
                let why = crate::output::first_line(&e.to_string());
                ctx.out.warn(&format!(
                    "the newest stable k0s release could not be looked up ({why}): the lab \
                     runs {}, the newest in the cache {}",
                    v.as_str(),
                    cache.root().display()
                ));
                (v, Pinned::FromCache(why))
            }
            None => {
                return Err(Error::Step(format!(
                    "K0S_VERSION is empty, and the newest stable k0s release could not be \
                     looked up at {}: {e}\nThe cache holds no release to use instead. Connect \
                     this Mac to the internet once (k0slab then keeps the release in {}), or \
                     set K0S_VERSION to a release the cache holds (`k0slab cache ls`).",
                    release::STABLE_URL,
                    cache.root().display()
                )))
            }
        },
    };
    set(planned, &version)?;
    Ok(how)
}

/// Puts `version` into the lab's inputs and topology (as [`pin`] chose it).
pub fn set(planned: &mut Planned, version: &K0sVersion) -> Result<()> {
    planned.inputs.k0s_version = Some(version.clone());
    crate::topology::check_k0s_version(&planned.topology, version)?;
    planned.topology.k0s_version = Some(version.clone());
    Ok(())
}

/// Whether the lab's k0s comes from the cache (`K0SLAB_K0S_CACHE`, on unless `off`).
pub fn enabled(ctx: &Context<'_>) -> bool {
    crate::inputs::k0s_cache(ctx.env).expect("K0SLAB_K0S_CACHE is checked in k0slab::run")
}

/// What [`ensure`] did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fetched {
    /// Bytes downloaded from the internet (0 when the cache had everything).
    pub downloaded: u64,
}

/// Makes sure the cache holds `version`'s binary and airgap bundle, whole and matching the
/// release's checksums: what is missing, cut off or damaged is downloaded (resumed where a
/// download was cut off), with a bar in bytes each. Another k0slab fetching the same release
/// is waited for, so a host downloads each file once.
pub fn ensure(
    ctx: &Context<'_>,
    progress: &Progress,
    version: &K0sVersion,
    width: usize,
) -> Result<Fetched> {
    let cache = Cache::new(ctx.env);
    let waiting = progress.spinner("k0s");
    let _lock = cache.lock(version, || {
        waiting.message(&format!(
            "another k0slab is fetching k0s {}: waiting for it",
            version.as_str()
        ))
    })?;
    waiting.clear();
    let sums = sums(ctx, &cache, version)?;
    let mut fetched = Fetched::default();
    for asset in Asset::ALL {
        let name = asset.file_name(version);
        let want = sums.get(&name).ok_or_else(|| {
            Error::Step(format!(
                "the k0s release {} lists no {name} in its {}: is it a release for {}?",
                version.as_str(),
                release::SUMS,
                release::ARCH
            ))
        })?;
        let path = cache.path(version, asset);
        if path.is_file() {
            if file_digest(&path)? == *want {
                continue;
            }
            ctx.out.warn(&format!(
                "{} in the cache does not match the release's checksum (damaged or cut \
                 off): fetching it again",
                path.display()
            ));
            fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
        }
        fetched.downloaded += download(ctx, progress, version, asset, &path, want, width)?;
    }
    Ok(fetched)
}

/// The release's checksums: cached, else fetched (and then cached).
fn sums(
    ctx: &Context<'_>,
    cache: &Cache,
    version: &K0sVersion,
) -> Result<std::collections::BTreeMap<String, String>> {
    let path = cache.sums_path(version);
    let wanted = |sums: &std::collections::BTreeMap<String, String>| {
        Asset::ALL
            .iter()
            .all(|a| sums.contains_key(&a.file_name(version)))
    };
    if let Ok(text) = fs::read_to_string(&path) {
        let sums = release::parse_sums(&text);
        if wanted(&sums) {
            return Ok(sums);
        }
    }
    let url = release::url(version, release::SUMS);
    let text = curl(ctx)?
        .text(&url)
        .map_err(|e| unreachable_release(version, "checksums", &url, &e))?;
    let sums = release::parse_sums(&text);
    if wanted(&sums) {
        crate::fsutil::write_atomic(&path, text.as_bytes(), crate::lab::files::MODE_PUBLIC)?;
    }
    Ok(sums)
}

fn unreachable_release(version: &K0sVersion, what: &str, url: &str, e: &Error) -> Error {
    Error::Step(format!(
        "could not fetch the {what} of k0s {} from {url}: {}\nk0slab needs each k0s release \
         once per host (it keeps it in ~/.k0slab/cache, under K0SLAB_HOME); connect this Mac \
         to the internet and run the command again, or set K0S_VERSION to a release the \
         cache holds (`k0slab cache ls`).",
        version.as_str(),
        crate::output::first_line(&e.to_string())
    ))
}

fn size_of(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Downloads `asset` into `path` through `<path>.part`: resumed while it grows, started over
/// when it is longer than the file or its checksum is wrong. Returns the bytes downloaded.
fn download(
    ctx: &Context<'_>,
    progress: &Progress,
    version: &K0sVersion,
    asset: Asset,
    path: &Path,
    want: &str,
    width: usize,
) -> Result<u64> {
    let curl = curl(ctx)?;
    let url = release::url(version, &asset.file_name(version));
    let part = Cache::part_path(path);
    let total = curl
        .size(&url)
        .map_err(|e| unreachable_release(version, asset.label(), &url, &e))?;
    let label = match asset {
        Asset::Binary => "k0s",
        Asset::Bundle => "k0s images",
    };
    let bar = progress.bytes_bar(label, width, total);
    let mut downloaded = 0;
    let mut last_error = String::new();
    for _ in 0..ATTEMPTS {
        if total.is_some_and(|t| size_of(&part) > t) {
            fs::remove_file(&part).map_err(|e| Error::io("removing", &part, e))?;
        }
        let before = size_of(&part);
        let message = format!(
            "{} {}{}",
            asset.label(),
            version.as_str(),
            if before > 0 { " (resumed)" } else { "" }
        );
        bar.step(before, &message);
        let result = if Some(before) == total {
            Ok(())
        } else {
            curl.download(&url, &part, &mut || bar.step(size_of(&part), &message))
        };
        let after = size_of(&part);
        downloaded += after.saturating_sub(before);
        match result {
            Err(Error::Interrupted) => {
                bar.failed("interrupted: the next run resumes it");
                return Err(Error::Interrupted);
            }
            Err(e) => {
                last_error = crate::output::first_line(&e.to_string());
                if after <= before {
                    // Nothing came: start over next time (a server that refuses the range).
                    let _ = fs::remove_file(&part);
                }
            }
            Ok(()) => {
                let got = file_digest(&part)?;
                if got == want {
                    fs::set_permissions(
                        &part,
                        std::os::unix::fs::PermissionsExt::from_mode(
                            crate::lab::files::MODE_PUBLIC,
                        ),
                    )
                    .map_err(|e| Error::io("setting the mode of", &part, e))?;
                    fs::rename(&part, path).map_err(|e| Error::io("renaming", &part, e))?;
                    bar.done(&format!(
                        "{} {}: {} downloaded, checksum matches",
                        asset.label(),
                        version.as_str(),
                        format_bytes(size_of(path))
                    ));
                    return Ok(downloaded);
                }
                last_error = format!(
                    "its SHA-256 is {got}, the release's {} says {want}",
                    release::SUMS
                );
                fs::remove_file(&part).map_err(|e| Error::io("removing", &part, e))?;
            }
        }
    }
    bar.failed(&format!("{} failed", asset.label()));
    Err(Error::Step(format!(
        "downloading the {} of k0s {} from {url} failed {ATTEMPTS} times; the last time: \
         {last_error}\nRun the command again: a download that was cut off is resumed.",
        asset.label(),
        version.as_str()
    )))
}

/// One cached release and the labs on this host that pin it.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub entry: crate::lab::cache::Entry,
    pub labs: Vec<String>,
}

/// The k0s release each lab on this host pins (labs from `up` until `destroy`), by version.
fn pinned_by_labs(ctx: &Context<'_>) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut pins: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for dir in crate::lab::host_addresses::lab_dirs(ctx.env)? {
        let Ok(lab) = crate::lab::dir::LabDir::new(&dir) else {
            continue;
        };
        // A lab whose lab.json cannot be read pins nothing k0slab can tell.
        if let Ok(Some(record)) = lab.read_record() {
            if let Some(v) = record.inputs.k0s_version {
                pins.entry(v.as_str().to_string())
                    .or_default()
                    .push(dir.display().to_string());
            }
        }
    }
    Ok(pins)
}

/// The cached releases, newest first, with the labs that pin each.
pub fn list(ctx: &Context<'_>) -> Result<Vec<Listed>> {
    let mut pins = pinned_by_labs(ctx)?;
    Ok(Cache::new(ctx.env)
        .entries()?
        .into_iter()
        .map(|entry| Listed {
            labs: pins.remove(entry.version.as_str()).unwrap_or_default(),
            entry,
        })
        .collect())
}

/// What [`prune`] did with one release.
#[derive(Debug, serde::Serialize)]
pub struct Pruned {
    pub version: String,
    pub removed: bool,
    pub bytes: u64,
    /// Why it was kept, or what was left beside it.
    pub note: String,
}

/// Removes cached releases that no lab on this host pins (`all`: every release), each under
/// its lock: one being downloaded right now is kept. Files k0slab did not write are left.
pub fn prune(ctx: &Context<'_>, all: bool) -> Result<Vec<Pruned>> {
    let cache = Cache::new(ctx.env);
    let mut done = Vec::new();
    for listed in list(ctx)? {
        let version = &listed.entry.version;
        let keep = |note: String| Pruned {
            version: version.as_str().to_string(),
            removed: false,
            bytes: 0,
            note,
        };
        if !all && !listed.labs.is_empty() {
            done.push(keep(format!("pinned by {}", listed.labs.join(", "))));
            continue;
        }
        let Some(_lock) = cache.try_lock(version)? else {
            done.push(keep("being downloaded by another k0slab".into()));
            continue;
        };
        let (bytes, others) = cache.remove(version)?;
        done.push(Pruned {
            version: version.as_str().to_string(),
            removed: true,
            bytes,
            note: if others.is_empty() {
                String::new()
            } else {
                format!(
                    "kept what k0slab did not write: {}",
                    others
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        });
    }
    Ok(done)
}
