//! `berth kind up`: observe, plan, then act step by step, saying what was done.

use super::berth_config;
use super::commands::{self, Storage};
use super::credentials;
use super::observe;
use super::plan::{self, Cluster, NetworkMode, UpAction, UpObserved, UpWanted};
use super::record::{self, Record};
use super::spec::{Credentials, Spec};
use super::tools::{self, Tool};
use super::KindError;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Up {
    pub spec: Spec,
    pub image: String,
    pub network: NetworkMode,
    pub storage: Storage,
}

pub fn run(up: &Up, record_path: &Path) -> Result<(), KindError> {
    tools::require(&[Tool::Docker, Tool::Kind, Tool::Kubectl])?;
    let spec = &up.spec;
    let record = record::load(record_path)?;
    let registry = observe::registry(spec)?;
    let registry_seen = registry.clone();
    let needs_port = !matches!(registry, plan::Registry::Ours { running: true, .. });
    let port_free = !needs_port || observe::port_free(spec.port);
    let cluster = observe::cluster(spec)?;
    let seen = UpObserved {
        image_present: observe::image_present(&up.image)?,
        free_port_hint: if port_free {
            None
        } else {
            observe::free_port_near(spec.port)
        },
        port_free,
        configmap: match cluster {
            Cluster::Absent => None,
            Cluster::Present { .. } => observe::configmap(spec)?,
        },
        cluster,
        registry,
        record: record.clone(),
        password_accepted: match (&registry_seen, &spec.credentials) {
            (
                plan::Registry::Ours {
                    running: true,
                    auth_user: Some(_),
                    ..
                },
                Some(c),
            ) => v2_status(spec.port, Some(c)) == Some(200),
            _ => true,
        },
    };
    let want = UpWanted {
        port: spec.port,
        network: up.network,
        hosts_tomls: spec.hosts_tomls(),
        registry_hosting: spec.local_registry_hosting(),
        credentials: spec.credentials.clone(),
        mirrors: spec.mirrors_label(),
    };
    let plan = plan::plan_up(
        &seen,
        &want,
        &up.image,
        spec.registry.as_str(),
        spec.cluster.as_str(),
    )?;

    for fact in &plan.already {
        println!("  = {fact}");
    }
    if plan.actions.is_empty() {
        println!(
            "Nothing to do: the registry and cluster {} are already set up.",
            spec.cluster
        );
        next_steps(spec, record_path);
        return Ok(());
    }

    // Write down what we are about to create before creating it, so an
    // interrupted `up` can still be undone by `down`.
    let mut rec = record.unwrap_or_else(|| Record {
        cluster: spec.cluster.to_string(),
        created_cluster: false,
        registry: spec.registry.to_string(),
        port: spec.port,
        volume: None,
        data_dir: None,
        patched_nodes: Vec::new(),
        applied_configmap: false,
        auth_user: None,
        mirrors: Vec::new(),
    });
    for m in &spec.mirrors {
        if !rec.mirrors.contains(&m.registry) {
            rec.mirrors.push(m.registry.clone());
        }
    }
    rec.auth_user = spec.credentials.as_ref().map(|c| c.user.clone());
    rec.created_cluster = plan.record_created_cluster;
    rec.registry = spec.registry.to_string();
    rec.port = spec.port;
    match &up.storage {
        Storage::Volume(v) => rec.volume = Some(v.clone()),
        Storage::Dir(d, _) => rec.data_dir = Some(d.clone()),
    }
    for action in &plan.actions {
        if let UpAction::WriteHostsToml { node } = action {
            if !rec.patched_nodes.contains(node) {
                rec.patched_nodes.push(node.clone());
            }
        }
    }
    rec.applied_configmap |=
        !rec.created_cluster && plan.actions.contains(&UpAction::ApplyConfigMap);
    record::save(record_path, &rec)?;

    let state_dir = record_path.parent().unwrap_or(Path::new("."));
    let config_file = berth_config::path(state_dir, spec.registry.as_str());
    for action in &plan.actions {
        act(up, action, &config_file)?;
    }
    println!(
        "Done: cluster {} uses the registry at localhost:{}.",
        spec.cluster, spec.port
    );
    next_steps(spec, record_path);
    Ok(())
}

/// `config_file`: where the registry container's config file is kept on this
/// host (written only with mirrors).
fn act(up: &Up, action: &UpAction, config_file: &Path) -> Result<(), KindError> {
    let spec = &up.spec;
    match action {
        UpAction::AddUser => {
            if let Some(c) = &spec.credentials {
                let args = commands::add_user(&up.image, &up.storage, &c.user);
                tools::check(Tool::Docker, &args, Some(&format!("{}\n", c.password)))?;
                println!(
                    "  + added user {} to {} in the registry's data",
                    c.user,
                    commands::HTPASSWD_IN_CONTAINER
                );
            }
        }
        UpAction::AddUserInRegistry => {
            if let Some(c) = &spec.credentials {
                let args = commands::add_user_in_registry(spec, &c.user);
                tools::check(Tool::Docker, &args, Some(&format!("{}\n", c.password)))?;
                println!(
                    "  + set a new password for user {} in registry container {}",
                    c.user, spec.registry
                );
            }
        }
        UpAction::RunRegistry => {
            let config = write_berth_config(spec, config_file)?;
            let args = commands::run_registry(spec, &up.image, up.network, &up.storage, config);
            tools::check(Tool::Docker, &args, None)?;
            wait_for_registry(spec)?;
            println!(
                "  + started registry container {} ({}) on 127.0.0.1:{}",
                spec.registry, up.image, spec.port
            );
        }
        UpAction::StartRegistry => {
            // Its mount needs the file (the label said these mirrors).
            write_berth_config(spec, config_file)?;
            tools::check(Tool::Docker, &["start", spec.registry.as_str()], None)?;
            wait_for_registry(spec)?;
            println!("  + restarted registry container {}", spec.registry);
        }
        UpAction::CreateCluster => {
            println!(
                "  + creating cluster {} (this takes a minute)…",
                spec.cluster
            );
            tools::check(
                Tool::Kind,
                &commands::create_cluster(spec),
                Some(&spec.cluster_config()),
            )?;
        }
        UpAction::WriteHostsTomlOnNewNodes => {
            for node in observe::node_names(spec)? {
                write_hosts_toml(spec, &node)?;
            }
        }
        UpAction::WriteHostsToml { node } => write_hosts_toml(spec, node)?,
        UpAction::ConnectNetwork => {
            tools::check(
                Tool::Docker,
                &["network", "connect", "kind", spec.registry.as_str()],
                None,
            )?;
            println!("  + connected {} to the kind network", spec.registry);
        }
        UpAction::ApplyConfigMap => {
            tools::check(
                Tool::Kubectl,
                &commands::kubectl(spec, &["apply", "-f", "-"]),
                Some(&spec.configmap()),
            )?;
            println!("  + applied ConfigMap kube-public/local-registry-hosting");
        }
    }
    Ok(())
}

/// With mirrors: the registry container's config file, written and its path
/// returned for the mount; without, nothing.
fn write_berth_config<'a>(spec: &Spec, file: &'a Path) -> Result<Option<&'a Path>, KindError> {
    match spec.berth_config() {
        Some(text) => {
            berth_config::write(file, &text)?;
            println!(
                "  + wrote {} (berth's [[upstream]] per --mirror)",
                file.display()
            );
            Ok(Some(file))
        }
        None => Ok(None),
    }
}

/// Every hosts.toml the node needs: `localhost:PORT`'s and each mirror's.
fn write_hosts_toml(spec: &Spec, node: &str) -> Result<(), KindError> {
    for file in spec.hosts_tomls() {
        tools::check(
            Tool::Docker,
            &["exec", node, "mkdir", "-p", &file.dir()],
            None,
        )?;
        let target = file.path();
        tools::check(
            Tool::Docker,
            &["exec", "-i", node, "cp", "/dev/stdin", &target],
            Some(&file.content),
        )?;
        println!("  + wrote {target} on node {node}");
    }
    Ok(())
}

/// Waits until the registry answers `GET /v2/` on 127.0.0.1:PORT (401 with
/// auth on: it answers, and wants credentials).
fn wait_for_registry(spec: &Spec) -> Result<(), KindError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if v2_answers(spec.port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(KindError::RegistryNotAnswering {
        port: spec.port,
        name: spec.registry.to_string(),
    })
}

fn v2_answers(port: u16) -> bool {
    matches!(v2_status(port, None), Some(200 | 401))
}

/// The status of `GET /v2/` on 127.0.0.1:PORT, with Basic credentials if given.
fn v2_status(port: u16, credentials: Option<&Credentials>) -> Option<u16> {
    use base64::Engine;
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let authorization = credentials.map_or_else(String::new, |c| {
        let pair = format!("{}:{}", c.user, c.password);
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    let request = format!(
        "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{authorization}Connection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn next_steps(spec: &Spec, record_path: &Path) {
    let reg = spec.local_host();
    println!();
    println!("Next:");
    if let Some(c) = &spec.credentials {
        let state_dir = record_path.parent().unwrap_or(Path::new("."));
        let file = credentials::password_path(state_dir, spec.registry.as_str(), &c.user);
        println!(
            "  docker login {reg} -u {} --password-stdin < '{}'   (the password is kept there, 0600; the nodes have it, pods need no imagePullSecret)",
            c.user,
            file.display()
        );
    }
    println!("  docker tag busybox {reg}/busybox && docker push {reg}/busybox");
    println!(
        "  kubectl --context {} run hello --image={reg}/busybox --restart=Never -- echo hello",
        spec.context()
    );
    for m in &spec.mirrors {
        let prefix = m.prefix().unwrap_or_else(|| m.registry.clone());
        let (image, kept) = match m.registry.as_str() {
            "docker.io" => ("busybox".to_string(), format!("{prefix}/library/busybox")),
            other => (
                format!("{other}/OWNER/IMAGE"),
                format!("{prefix}/OWNER/IMAGE"),
            ),
        };
        println!(
            "  kubectl --context {} run cached --image={image} ...   (pulled through berth's cache of {}; in berth as {kept})",
            spec.context(),
            m.registry,
        );
    }
    println!("  browse http://{reg}/");
    println!(
        "  berth kind down --name {}   (keeps the registry's data; --purge removes it)",
        spec.cluster
    );
}
