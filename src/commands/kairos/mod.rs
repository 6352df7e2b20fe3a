//! `k0slab kairos install | verify | uninstall | lint`: the Kairos Cluster API providers on the
//! lab. One file per subcommand; no subcommand calls another.

pub mod install;
pub mod lint;
pub mod uninstall;
pub mod verify;
