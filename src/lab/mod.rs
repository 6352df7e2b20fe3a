//! The lab directory and what k0slab keeps about labs on this host: the one place that names a
//! lab's files, reads and writes them, and removes them.
//!
//! - [`files`]: every file name and mode of a lab directory.
//! - [`dir`]: the directory itself (reading `lab.json`, writing files all or none).
//! - [`record`]: `lab.json`, the lab's record, and a resolved lab ([`record::Planned`]).
//! - [`sshkey`]: the lab's SSH key pair.
//! - [`lock`]: one command that changes a lab at a time.
//! - [`registry`], [`host_addresses`]: host-wide records under `~/.k0slab`: which lab owns
//!   which Tart VM, and which addresses each lab holds.

pub mod cache;
pub mod dir;
pub mod files;
pub mod host_addresses;
pub mod lock;
pub mod record;
pub mod registry;
pub mod sshkey;
