//! Which k0sctl role each node gets, and whether it keeps its control-plane taint.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A k0sctl host role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// One controller that is also the only worker (`k0s --single`); must be the only host.
    #[serde(rename = "single")]
    Single,
    /// A controller only: no kubelet, not a Kubernetes Node.
    #[serde(rename = "controller")]
    Controller,
    /// A controller that also runs a kubelet.
    #[serde(rename = "controller+worker")]
    ControllerWorker,
    #[serde(rename = "worker")]
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Controller => "controller",
            Role::ControllerWorker => "controller+worker",
            Role::Worker => "worker",
        }
    }

    /// Whether nodes of this role run a kubelet (and so are Kubernetes Nodes).
    pub fn runs_kubelet(self) -> bool {
        !matches!(self, Role::Controller)
    }

    pub fn is_controller(self) -> bool {
        !matches!(self, Role::Worker)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A controller's role and whether it drops its taints (`noTaints`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerRole {
    pub role: Role,
    pub no_taints: bool,
}

/// How many controllers run workloads in HA mode (3+ controllers): max(1, floor(N/3)).
pub fn ha_workload_controllers(controllers: u32) -> u32 {
    (controllers / 3).max(1)
}

/// The role of controller number `index` (1-based) of `controllers`, with `workers` workers.
///
/// - 1 controller and 0 workers: `single`.
/// - Controllers run workloads by default: with 1–2 controllers all of them, in HA mode only
///   the first max(1, floor(N/3)); those are `controller+worker` with `noTaints`.
/// - `controller_workloads = false`: every controller is a plain `controller` (the caller
///   refuses this when there are no workers).
pub fn controller_role(
    index: u32,
    controllers: u32,
    workers: u32,
    controller_workloads: bool,
) -> ControllerRole {
    let plain = ControllerRole {
        role: Role::Controller,
        no_taints: false,
    };
    if !controller_workloads {
        return plain;
    }
    if controllers == 1 && workers == 0 {
        return ControllerRole {
            role: Role::Single,
            no_taints: false,
        };
    }
    let with_workloads = if controllers <= 2 {
        controllers
    } else {
        ha_workload_controllers(controllers)
    };
    if index <= with_workloads {
        ControllerRole {
            role: Role::ControllerWorker,
            no_taints: true,
        }
    } else {
        plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(controllers: u32, workers: u32, workloads: bool) -> Vec<(Role, bool)> {
        (1..=controllers)
            .map(|i| {
                let r = controller_role(i, controllers, workers, workloads);
                (r.role, r.no_taints)
            })
            .collect()
    }

    const CW: (Role, bool) = (Role::ControllerWorker, true);
    const C: (Role, bool) = (Role::Controller, false);

    #[test]
    fn single_only_for_one_controller_without_workers() {
        assert_eq!(roles(1, 0, true), vec![(Role::Single, false)]);
        assert_eq!(roles(1, 1, true), vec![CW]);
        assert_eq!(roles(2, 0, true), vec![CW, CW]);
    }

    #[test]
    fn one_or_two_controllers_all_run_workloads() {
        assert_eq!(roles(1, 1, true), vec![CW]);
        assert_eq!(roles(2, 2, true), vec![CW, CW]);
    }

    #[test]
    fn ha_mode_runs_workloads_on_a_third() {
        assert_eq!(roles(3, 2, true), vec![CW, C, C]);
        assert_eq!(roles(4, 2, true), vec![CW, C, C, C]);
        assert_eq!(roles(5, 3, true), vec![CW, C, C, C, C]);
        assert_eq!(roles(6, 1, true), vec![CW, CW, C, C, C, C]);
        let ten = roles(10, 80, true);
        assert_eq!(ten.iter().filter(|r| **r == CW).count(), 3);
        assert_eq!(&ten[..3], &[CW, CW, CW]);
        assert!(ten[3..].iter().all(|r| *r == C));
    }

    #[test]
    fn ha_share_is_a_floor_with_a_minimum_of_one() {
        let got: Vec<u32> = (3..=10).map(ha_workload_controllers).collect();
        assert_eq!(got, vec![1, 1, 1, 2, 2, 2, 3, 3]);
    }

    #[test]
    fn without_controller_workloads_every_controller_is_plain() {
        assert_eq!(roles(1, 1, false), vec![C]);
        assert_eq!(roles(3, 2, false), vec![C, C, C]);
    }

    #[test]
    fn no_taints_only_with_controller_worker() {
        for n in 1..=10 {
            for w in [0, 1, 80] {
                for workloads in [true, false] {
                    for (role, no_taints) in roles(n, w, workloads) {
                        assert!(!no_taints || role == Role::ControllerWorker);
                    }
                }
            }
        }
    }
}
