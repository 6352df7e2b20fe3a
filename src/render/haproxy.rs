//! haproxy.cfg for the `haproxy` endpoint mode: TCP frontends for the API, konnectivity and
//! the controller join API, each backend listing every controller with TLS health checks.

use serde::Serialize;

use crate::error::Result;
use crate::templates;
use crate::topology::Topology;

/// The HAProxy statistics page.
pub const STATS_PORT: u16 = 9000;

/// The k0s control-plane ports a load balancer must carry.
pub const SERVICES: [(&str, u16); 3] = [
    ("kube_api", crate::topology::API_PORT),
    ("konnectivity", 8132),
    ("controller_join_api", 9443),
];

#[derive(Serialize)]
struct Service {
    name: &'static str,
    port: u16,
}

#[derive(Serialize)]
struct Controller<'a> {
    name: &'a str,
    address: String,
}

#[derive(Serialize)]
struct HaproxyCfg<'a> {
    version: &'a str,
    lab_name: &'a str,
    services: Vec<Service>,
    controllers: Vec<Controller<'a>>,
    stats_port: u16,
}

pub fn render(topology: &Topology) -> Result<String> {
    templates::render(
        templates::HAPROXY_CFG,
        &HaproxyCfg {
            version: crate::environment::VERSION,
            lab_name: topology.name.as_str(),
            services: SERVICES
                .iter()
                .map(|&(name, port)| Service { name, port })
                .collect(),
            controllers: topology
                .controllers()
                .map(|c| Controller {
                    name: &c.name,
                    address: c.address.to_string(),
                })
                .collect(),
            stats_port: STATS_PORT,
        },
    )
}
