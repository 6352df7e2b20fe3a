//! `k0slab image load` and `image ls`: local images into every node that runs a kubelet, in
//! parallel, without a registry.
//!
//! - [`reference`]: image names as containerd stores them (`myapp:dev` is
//!   `docker.io/library/myapp:dev`).
//! - [`engine`]: the host's container engine (docker, podman, nerdctl): image IDs and the
//!   `save` stream.
//! - [`archive`]: image archives given as files (docker-archive or OCI layout tar): their names
//!   and IDs, checked before anything is sent.
//! - [`node`]: the nodes' side: k0s' own containerd client over the lab's SSH key, and what
//!   `ctr images ls` says.
//! - [`stream`]: one read of the image, written to every node at once.

pub mod archive;
pub mod engine;
pub mod node;
pub mod reference;
pub mod stream;

/// The label k0slab puts on an image it imported: the host's image ID, so that a second
/// `load` can tell the node already has this very image.
pub const ID_LABEL: &str = "k0slab.image-id";

/// One image to load: its name as containerd stores it and the host's ID for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Image {
    /// As the user named it.
    pub given: String,
    /// As containerd names it after import.
    pub name: String,
    pub id: String,
}
