//! The host's container engine: which one, the IDs of images, and the `save` stream.
//!
//! docker and nerdctl print IDs as `sha256:<hex>`, podman as bare hex; k0slab keeps the
//! `sha256:` form (docker/cli `image inspect`; containers/podman `libimage/inspect.go` line
//! 124). A missing image fails `inspect` before anything is sent: docker "No such image"
//! (moby `daemon/images/image.go` lines 28-33), podman "image not known" (exit 125).

use std::fmt;
use std::path::PathBuf;

use clap::ValueEnum;

use crate::environment::Environment;
use crate::error::{Error, InputError, Result};
use crate::output::Output;
use crate::tools::process::{ByteReader, Cmd};

/// A container engine with a Docker-compatible CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Docker,
    Podman,
    Nerdctl,
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
            Engine::Nerdctl => "nerdctl",
        })
    }
}

/// An engine found on PATH.
#[derive(Debug, Clone)]
pub struct Found {
    pub engine: Engine,
    pub path: PathBuf,
}

/// The engine to use: `choice`, else the first of docker, podman, nerdctl on PATH.
pub fn find(env: &Environment, choice: Option<Engine>) -> Result<Found> {
    let candidates = match choice {
        Some(e) => vec![e],
        None => vec![Engine::Docker, Engine::Podman, Engine::Nerdctl],
    };
    candidates
        .into_iter()
        .find_map(|engine| {
            crate::tools::on_path(env, &engine.to_string()).map(|path| Found { engine, path })
        })
        .ok_or_else(|| {
            InputError::Rule(match choice {
                Some(e) => format!("--engine {e}: {e} is not on PATH"),
                None => "no container engine on PATH (docker, podman or nerdctl); give image \
                         archives with --archive instead"
                    .to_string(),
            })
            .into()
        })
}

impl Found {
    /// The IDs of `images`, in order. An image the engine does not have is bad input.
    pub fn ids(&self, env: &Environment, out: &Output, images: &[String]) -> Result<Vec<String>> {
        let result = Cmd::new(
            &self.path,
            format!("asking {} for the images' IDs", self.engine),
        )
        .args(["image", "inspect", "--format", "{{.Id}}"])
        .args(images)
        .output(env, out);
        let text = match result {
            Ok(text) => text,
            Err(Error::CommandFailed { stderr, .. }) => {
                return Err(InputError::Rule(format!(
                    "{} does not have every image to load: {}",
                    self.engine,
                    crate::output::first_line(&stderr)
                ))
                .into())
            }
            Err(e) => return Err(e),
        };
        let ids: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|id| {
                if id.starts_with("sha256:") {
                    id.to_string()
                } else {
                    format!("sha256:{id}")
                }
            })
            .collect();
        if ids.len() == images.len() {
            Ok(ids)
        } else {
            Err(Error::Step(format!(
                "{} printed {} IDs for {} images: {text:?}",
                self.engine,
                ids.len(),
                images.len()
            )))
        }
    }

    /// `save IMAGE…` to stdout, as a stream (podman needs `-m` for several images and a
    /// docker-archive; containers/podman `cmd/podman/images/save.go` lines 86, 94, 136-137).
    pub fn save(&self, env: &Environment, out: &Output, images: &[String]) -> Result<ByteReader> {
        let mut cmd = Cmd::new(
            &self.path,
            format!("exporting {} with {}", images.join(", "), self.engine),
        )
        .arg("save");
        if self.engine == Engine::Podman {
            cmd = cmd.args(["--format", "docker-archive"]);
            if images.len() > 1 {
                cmd = cmd.arg("-m");
            }
        }
        cmd.args(images).read_bytes(env, out)
    }
}
