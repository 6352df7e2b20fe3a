//! Rendering: the topology turned into the contents of the lab's files, as pure data. Naming
//! and writing them is the lab directory's job ([`crate::lab::files`]).

mod context;
mod haproxy;
mod k0sctl;
mod vagrantfile;

use crate::error::{Error, Result};
use crate::topology::{EndpointKind, Topology};

pub use context::{K0sFiles, RenderContext, SSH_PASSWORD, SSH_USER};
pub use k0sctl::K0sctlConfig;

/// The rendered files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub vagrantfile: String,
    pub k0sctl_yaml: String,
    /// With the `haproxy` endpoint only.
    pub haproxy_cfg: Option<String>,
}

/// Every rendered file of the lab.
pub fn render(topology: &Topology, ctx: &RenderContext<'_>) -> Result<Rendered> {
    check_public_key(ctx.public_key)?;
    Ok(Rendered {
        vagrantfile: vagrantfile::render(topology, ctx)?,
        k0sctl_yaml: k0sctl::render(topology, ctx)?,
        haproxy_cfg: if topology.endpoint.kind == EndpointKind::Haproxy {
            Some(haproxy::render(topology)?)
        } else {
            None
        },
    })
}

/// The public key is pasted into a shell script: allow only what an OpenSSH key line holds.
fn check_public_key(key: &str) -> Result<()> {
    let ok = key.starts_with("ssh-ed25519 ")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=@.-_ ".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Render {
            name: crate::templates::VAGRANTFILE.into(),
            reason: format!("the lab's public key is not an ssh-ed25519 key line: {key:?}"),
        })
    }
}
