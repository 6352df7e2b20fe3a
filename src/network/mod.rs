//! Networking: how every lab VM gets exactly one address, its planned one, and how the VMs
//! reach each other.
//!
//! The principle: **on the wire between lab VMs, every packet carries only lab VMs' own DHCP
//! leases.** etcd checks a peer's certificate against the address the connection comes from,
//! Softnet drops packets from any address but the VM's lease, and macOS filters ARP replies for
//! extra addresses, so no address is ever added beside the lease. Instead:
//!
//! - [`mode`]: which network the VMs are attached to (`K0SLAB_NETWORK`) and the `tart run`
//!   arguments for it.
//! - [`bootptab`]: where addresses are reserved: a marked block per lab in macOS bootpd's
//!   `/etc/bootptab` binds each planned address to a placeholder MAC, so that bootpd gives it to
//!   no other machine (a binding with the VM's own MAC would make an infinite lease, which
//!   Softnet overflows on).
//! - [`leases`]: where addresses are assigned: bootpd's leases file gets an entry per VM (its
//!   MAC, its planned address); also finds addresses that other machines hold.
//! - [`dhcp`]: writing both files (with root, never silently) and telling bootpd to re-read.
//! - [`assign`]: the step of `up` that moves every VM to its planned address and checks it.
//! - [`softnet`]: Softnet's one-time set-up (SUID bit or passwordless sudo).
//! - [`probe`]: `k0slab doctor --network`, which measures what this host's network allows.

pub mod bootpd_plist;
pub mod bootptab;
pub mod dhcp;
pub mod guest;
pub mod leases;
pub mod mode;
pub mod probe;

pub use bootptab::{Binding, Mac};
pub use mode::NetworkMode;
