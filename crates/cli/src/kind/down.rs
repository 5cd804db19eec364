//! `berth kind down`: removes what the record says `up` created, nothing else.

use super::berth_config;
use super::commands;
use super::credentials;
use super::observe;
use super::plan::{self, Cluster, DownAction, DownObserved, Node, Registry};
use super::record::{self, Record};
use super::spec::{hosts_dir_of, Spec};
use super::tools::{self, Tool};
use super::KindError;
use std::path::Path;

pub fn run(spec: &Spec, purge: bool, record_path: &Path) -> Result<(), KindError> {
    let state_dir = record_path.parent().unwrap_or(Path::new("."));
    let Some(rec) = record::load(record_path)? else {
        println!(
            "Nothing to do: berth kind up has not set up cluster {} (no {}).",
            spec.cluster,
            record_path.display()
        );
        return Ok(());
    };
    let mut needed = vec![Tool::Docker];
    if rec.created_cluster || !rec.patched_nodes.is_empty() {
        needed.push(Tool::Kind);
    }
    if rec.applied_configmap {
        needed.push(Tool::Kubectl);
    }
    tools::require(&needed)?;
    // The record, not today's flags, says which registry and port up used.
    let spec = Spec {
        registry: super::spec::Name::container(&rec.registry)?,
        port: rec.port,
        ..spec.clone()
    };
    let seen = DownObserved {
        registry: observe::registry(&spec)?,
        cluster: recorded_cluster(&spec, &rec)?,
        volume_exists: match &rec.volume {
            Some(v) => observe::volume_exists(v)?,
            None => false,
        },
        registry_users: match record_path.parent() {
            Some(dir) => record::other_users(dir, &rec.cluster, &rec.registry)?,
            None => Vec::new(),
        },
    };
    for action in plan::plan_down(&rec, &seen, purge) {
        match action {
            DownAction::ForgetRecord => record::forget(record_path)?,
            other => act(&spec, &rec, state_dir, &other)?,
        }
    }
    if !seen.registry_users.is_empty() {
        println!(
            "  = kept registry container {} and its data: cluster(s) {} still use it",
            spec.registry,
            seen.registry_users.join(", ")
        );
    } else if let (false, Some(v)) = (purge, &rec.volume) {
        println!("  = kept the registry's data in volume {v} (berth kind down --purge removes it)");
    }
    if let Some(d) = &rec.data_dir {
        println!("  = kept the registry's data in {}", d.display());
    }
    if seen.registry == Registry::Foreign {
        println!(
            "  = left container {} alone: berth did not create it",
            spec.registry
        );
    }
    println!("Done.");
    Ok(())
}

/// The cluster as far as `down` needs to know: does it exist, and do the
/// nodes `up` patched still hold our hosts.toml.
fn recorded_cluster(spec: &Spec, rec: &Record) -> Result<Cluster, KindError> {
    if !rec.created_cluster && rec.patched_nodes.is_empty() && !rec.applied_configmap {
        return Ok(Cluster::Absent);
    }
    if !observe::cluster_exists(spec)? {
        return Ok(Cluster::Absent);
    }
    let mut nodes = Vec::new();
    let registries = recorded_registries(spec, rec);
    for name in &rec.patched_nodes {
        nodes.push(Node {
            name: name.clone(),
            hosts_tomls: observe::hosts_tomls(name, &registries)?,
            reads_certs_d: true,
            credentials: None,
        });
    }
    Ok(Cluster::Present { nodes })
}

/// The registries whose certs.d folders `up` wrote: `localhost:PORT` and
/// every recorded mirror.
fn recorded_registries(spec: &Spec, rec: &Record) -> Vec<String> {
    let mut registries = vec![spec.local_host()];
    registries.extend(rec.mirrors.iter().cloned());
    registries
}

fn act(spec: &Spec, rec: &Record, state_dir: &Path, action: &DownAction) -> Result<(), KindError> {
    match action {
        DownAction::RemoveHostsToml { node } => {
            for registry in recorded_registries(spec, rec) {
                let dir = hosts_dir_of(&registry);
                tools::check(Tool::Docker, &["exec", node, "rm", "-rf", &dir], None)?;
                println!("  - removed {dir} on node {node}");
            }
        }
        DownAction::DeleteConfigMap => {
            let args = commands::kubectl(
                spec,
                &[
                    "-n",
                    "kube-public",
                    "delete",
                    "configmap",
                    "local-registry-hosting",
                    "--ignore-not-found",
                ],
            );
            tools::check(Tool::Kubectl, &args, None)?;
            println!("  - deleted ConfigMap kube-public/local-registry-hosting");
        }
        DownAction::DisconnectNetwork => {
            tools::check(
                Tool::Docker,
                &["network", "disconnect", "kind", spec.registry.as_str()],
                None,
            )?;
            println!("  - disconnected {} from the kind network", spec.registry);
        }
        DownAction::RemoveRegistry => {
            tools::check(Tool::Docker, &["rm", "-f", spec.registry.as_str()], None)?;
            println!("  - removed registry container {}", spec.registry);
            // Its password goes with it (the htpasswd stays with the data).
            if let Some(user) = &rec.auth_user {
                credentials::forget(state_dir, spec.registry.as_str(), user)?;
                println!(
                    "  - removed {}",
                    credentials::password_path(state_dir, spec.registry.as_str(), user).display()
                );
            }
        }
        DownAction::RemoveBerthConfig => {
            let file = berth_config::path(state_dir, spec.registry.as_str());
            berth_config::forget(&file)?;
            println!("  - removed {}", file.display());
        }
        DownAction::DeleteCluster => {
            tools::check(
                Tool::Kind,
                &["delete", "cluster", "--name", spec.cluster.as_str()],
                None,
            )?;
            println!("  - deleted cluster {}", spec.cluster);
        }
        DownAction::RemoveVolume => {
            if let Some(v) = &rec.volume {
                tools::check(Tool::Docker, &["volume", "rm", v.as_str()], None)?;
                println!("  - removed volume {v} and the images in it");
            }
        }
        // Dropped by `run`, last, so a failed step can be retried.
        DownAction::ForgetRecord => {}
    }
    Ok(())
}
