//! `k0slab kairos`: the Kairos Cluster API providers on the lab cluster.
//!
//! - [`components`]: what `install` puts on the cluster (cert-manager, Cluster API core, an
//!   infrastructure provider, the Kairos providers), with pinned default versions.
//! - [`manifest`]: fetching manifests and filling in their variables.
//! - [`bootstrap_rules`]: the pure checker of the providers' bootstrap data.
//! - [`milestones`]: judging a workload cluster's progress from its API objects.
//! - [`kubevirt`]: workload clusters on KubeVirt in the lab: their image, KVM, the
//!   control-plane Service's address, VM and volume phases.

pub mod bootstrap_rules;
pub mod components;
pub mod kubevirt;
pub mod manifest;
pub mod milestones;
