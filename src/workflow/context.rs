//! What every step and command gets: the environment, the output, the lab directory and the
//! tools found.

use std::path::Path;
use std::time::Duration;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::inputs;
use crate::lab::dir::LabDir;
use crate::lab::files::{K0SCTL_YAML, KNOWN_HOSTS};
use crate::lab::record::LabRecord;
use crate::output::Output;
use crate::tools::k0sctl::K0sctl;
use crate::tools::vagrant::Vagrant;
use crate::tools::{Tool, Tools};

/// What every command gets.
pub struct Context<'a> {
    pub env: &'a Environment,
    pub out: Output,
    pub dir: LabDir,
    pub tools: Tools,
}

impl Context<'_> {
    /// Vagrant in the lab directory.
    pub fn vagrant(&self) -> Result<Vagrant<'_>> {
        Ok(Vagrant {
            path: self.tools.get(Tool::Vagrant)?,
            lab_dir: self.dir.absolute(),
            env: self.env,
            out: &self.out,
        })
    }

    /// k0sctl at `path`, for the lab's k0sctl.yaml and its own known_hosts.
    pub fn k0sctl_at<'c>(&'c self, path: &'c Path) -> K0sctl<'c> {
        K0sctl {
            path,
            config: self.dir.join(K0SCTL_YAML),
            known_hosts: self.dir.join(KNOWN_HOSTS),
            env: self.env,
            out: &self.out,
        }
    }

    /// k0sctl, as found, for the lab.
    pub fn k0sctl(&self) -> Result<K0sctl<'_>> {
        Ok(self.k0sctl_at(self.tools.get(Tool::K0sctl)?))
    }

    /// The lab's record; an error when the directory holds no lab.
    pub fn record(&self) -> Result<LabRecord> {
        self.dir.read_record()?.ok_or_else(|| {
            Error::Step(format!(
                "there is no lab in {} (no lab.json): create one with `k0slab up`",
                self.dir.shown().display()
            ))
        })
    }

    /// How often to poll while waiting: `K0SLAB_POLL_INTERVAL` (e.g. `500ms`), else 5s.
    /// [`crate::run`] refuses a bad value before the command starts.
    pub fn poll_interval(&self) -> Duration {
        inputs::poll_interval(self.env).expect("K0SLAB_POLL_INTERVAL is checked in k0slab::run")
    }

    /// How many machines are worked on at once: `K0SLAB_CONCURRENCY`, else 10.
    /// [`crate::run`] refuses a bad value before the command starts.
    pub fn concurrency(&self) -> usize {
        inputs::concurrency(self.env).expect("K0SLAB_CONCURRENCY is checked in k0slab::run")
    }
}
