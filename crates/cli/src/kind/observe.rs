//! Read-only questions to docker, kind and kubectl: what exists right now.

use super::commands::{self, lines};
use super::plan::{Cluster, Node, Registry};
use super::spec::Spec;
use super::tools::{self, Tool, ToolError};

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

/// Whether 127.0.0.1:`port` can be bound right now.
pub fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
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
        let hosts = tools::run(
            Tool::Docker,
            &["exec", &name, "cat", &spec.hosts_toml_path()],
            None,
        )?;
        let dump = tools::check(
            Tool::Docker,
            &["exec", &name, "containerd", "config", "dump"],
            None,
        )?;
        nodes.push(Node {
            hosts_toml: hosts.success.then_some(hosts.stdout),
            reads_certs_d: commands::reads_certs_d(&dump),
            name,
        });
    }
    Ok(Cluster::Present { nodes })
}

/// The current `localRegistryHosting.v1`, or `None` when the ConfigMap is absent.
pub fn configmap(spec: &Spec) -> Result<Option<String>, ToolError> {
    let out = tools::run(Tool::Kubectl, &commands::get_configmap(spec), None)?;
    Ok(out.success.then_some(out.stdout))
}
