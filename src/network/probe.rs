//! `k0slab doctor --network`: measures on this host what its network allows.
