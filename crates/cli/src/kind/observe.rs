//! Read-only questions to docker, kind and kubectl: what exists right now.

use super::commands::{self, lines};
use super::plan::{Cluster, Node, Registry};
use super::spec::{hosts_dir_of, Spec};
use super::tools::{self, Tool, ToolError};
use std::collections::BTreeMap;

pub fn image_present(image: &str) -> Result<bool, ToolError> {
    Ok(tools::run(
        Tool::Docker,
        &["image", "inspect", "--format", "{{.Id}}", image],
        None,
    )?
    .success)
}

pub fn registry(spec: &Spec) -> Result<Registry, ToolError> {
    let out = tools::run(
        Tool::Docker,
        &["container", "inspect", spec.registry.as_str()],
        None,
    )?;
    if !out.success && out.stderr.to_lowercase().contains("no such") {
        return Ok(Registry::Absent);
    }
    if !out.success {
        return Err(ToolError::Failed {
            command: format!("docker container inspect {}", spec.registry),
            stderr: out.stderr.trim().into(),
        });
    }
    Ok(commands::parse_registry(&out.stdout))
}

pub fn volume_exists(volume: &str) -> Result<bool, ToolError> {
    Ok(tools::run(Tool::Docker, &["volume", "inspect", volume], None)?.success)
}

/// Whether `port` is free for a registry on `localhost:PORT`: nothing listens
/// on it on loopback or on all addresses, in IPv4 or IPv6 (`localhost` may
/// resolve to `::1`; on macOS AirPlay holds `*:5000`, which binding only
/// 127.0.0.1 does not notice, as BSD lets a specific address share a port
/// with a wildcard listener). An address the host lacks (no IPv6) is skipped.
pub fn port_free(port: u16) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
    let addrs: [SocketAddr; 4] = [
        (Ipv4Addr::LOCALHOST, port).into(),
        (Ipv4Addr::UNSPECIFIED, port).into(),
        (Ipv6Addr::LOCALHOST, port).into(),
        (Ipv6Addr::UNSPECIFIED, port).into(),
    ];
    addrs.iter().all(|a| match TcpListener::bind(a) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::AddrInUse,
    })
}

/// The first free port after `port`, else any free one.
pub fn free_port_near(port: u16) -> Option<u16> {
    (port.saturating_add(1)..port.saturating_add(100))
        .find(|p| port_free(*p))
        .or_else(|| {
            std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .ok()
                .map(|a| a.port())
        })
}

pub fn cluster_exists(spec: &Spec) -> Result<bool, ToolError> {
    let out = tools::check(Tool::Kind, &["get", "clusters"], None)?;
    Ok(lines(&out).iter().any(|c| c == spec.cluster.as_str()))
}

pub fn node_names(spec: &Spec) -> Result<Vec<String>, ToolError> {
    Ok(lines(&tools::check(
        Tool::Kind,
        &commands::get_nodes(spec),
        None,
    )?))
}

/// The cluster's nodes with their hosts.toml and containerd setting.
pub fn cluster(spec: &Spec) -> Result<Cluster, ToolError> {
    if !cluster_exists(spec)? {
        return Ok(Cluster::Absent);
    }
    let mut nodes = Vec::new();
    for name in node_names(spec)? {
        let registries: Vec<String> = spec.hosts_tomls().into_iter().map(|f| f.registry).collect();
        let hosts_tomls = hosts_tomls(&name, &registries)?;
        let dump = tools::check(
            Tool::Docker,
            &["exec", &name, "containerd", "config", "dump"],
            None,
        )?;
        nodes.push(Node {
            hosts_tomls,
            reads_certs_d: commands::reads_certs_d(&dump),
            credentials: commands::node_credentials(&dump, spec.endpoint_host()),
            name,
        });
    }
    Ok(Cluster::Present { nodes })
}

/// The node's hosts.toml files that exist among those of `registries`.
pub fn hosts_tomls(
    node: &str,
    registries: &[String],
) -> Result<BTreeMap<String, String>, ToolError> {
    let mut found = BTreeMap::new();
    for registry in registries {
        let path = format!("{}/hosts.toml", hosts_dir_of(registry));
        let out = tools::run(Tool::Docker, &["exec", node, "cat", &path], None)?;
        if out.success {
            found.insert(registry.clone(), out.stdout);
        }
    }
    Ok(found)
}

/// The current `localRegistryHosting.v1`, or `None` when the ConfigMap is absent.
pub fn configmap(spec: &Spec) -> Result<Option<String>, ToolError> {
    let out = tools::run(Tool::Kubectl, &commands::get_configmap(spec), None)?;
    Ok(out.success.then_some(out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_on_any_local_address_is_not_free() {
        for addr in ["127.0.0.1:0", "0.0.0.0:0", "[::1]:0"] {
            let Ok(held) = std::net::TcpListener::bind(addr) else {
                continue; // no IPv6 here
            };
            let port = held.local_addr().unwrap().port();
            assert!(!port_free(port), "{addr} held, port {port} called free");
            drop(held);
            assert!(port_free(port), "{addr} released, port {port} still taken");
        }
    }

    #[test]
    fn a_free_port_is_suggested_near_a_taken_one() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let hint = free_port_near(port).unwrap();
        assert_ne!(hint, port);
        assert!(port_free(hint));
    }
}
