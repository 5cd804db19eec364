//! Pure argument lists for the `docker`/`kind`/`kubectl` calls, and parsers
//! for their answers. Kept apart from running them so both are unit-tested.

use super::berth_config;
use super::plan::{NetworkMode, Registry};
use super::spec::{Credentials, Spec, CONTAINER_PORT};
use std::path::{Path, PathBuf};

/// Label marking a container as created by `berth kind up`; its value is the port.
pub const PORT_LABEL: &str = "io.github.berth.kind.port";

/// Label naming the user `berth kind up --auth` made; absent without auth.
pub const AUTH_LABEL: &str = "io.github.berth.kind.auth-user";

/// Label naming the mirrors `berth kind up --mirror` started the registry
/// with ([`Spec::mirrors_label`]); absent without mirrors.
pub const MIRRORS_LABEL: &str = "io.github.berth.kind.mirrors";

/// Where berth's image keeps its data.
pub const DATA_IN_CONTAINER: &str = "/var/lib/registry";

/// The htpasswd file of a registry run with `--auth`: in its data folder, so
/// it lives and goes with the images, and `docker exec REGISTRY /berth user
/// add NAME` adds users to it (berth re-reads it when it changes).
pub const HTPASSWD_IN_CONTAINER: &str = "/var/lib/registry/htpasswd";

/// Where the registry's data lives on the docker host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// A named docker volume (the default): survives `down`, removed by `--purge`.
    Volume(String),
    /// A host folder, and the `uid:gid` owning it: the container runs as that
    /// user so it can write there and the files stay the owner's.
    Dir(PathBuf, Option<String>),
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// docker `--mount` is a CSV list: quote a field holding `,` or `"`.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// `docker run` for the registry container; with credentials, berth serves
/// with auth on, from the htpasswd file in its data folder; with mirrors, it
/// reads `berth_config` (a host file holding its `[[upstream]]` tables).
pub fn run_registry(
    spec: &Spec,
    image: &str,
    network: NetworkMode,
    storage: &Storage,
    berth_config: Option<&Path>,
) -> Vec<String> {
    let mut a = strings(&[
        "run",
        "-d",
        "--name",
        spec.registry.as_str(),
        "--restart=always",
    ]);
    a.push("--label".into());
    a.push(format!("{PORT_LABEL}={}", spec.port));
    if let Some(c) = &spec.credentials {
        a.push("--label".into());
        a.push(format!("{AUTH_LABEL}={}", c.user));
        a.push("-e".into());
        a.push(format!(
            "REGISTRY_AUTH_HTPASSWD_PATH={HTPASSWD_IN_CONTAINER}"
        ));
    }
    if let (false, Some(file)) = (spec.mirrors.is_empty(), berth_config) {
        a.push("--label".into());
        a.push(format!("{MIRRORS_LABEL}={}", spec.mirrors_label()));
        a.push("-e".into());
        a.push(format!("BERTH_CONFIG={}", berth_config::IN_CONTAINER));
        a.push("--mount".into());
        let source = csv_field(&format!("source={}", file.display()));
        a.push(format!(
            "type=bind,{source},target={},readonly",
            berth_config::IN_CONTAINER
        ));
    }
    match network {
        NetworkMode::Kind => {
            a.push("-p".into());
            a.push(format!("127.0.0.1:{}:{CONTAINER_PORT}", spec.port));
        }
        NetworkMode::Host => {
            a.extend(strings(&["--network", "host", "-e"]));
            a.push(format!("BERTH_ADDR=127.0.0.1:{}", spec.port));
        }
    }
    a.push("-e".into());
    a.push(format!("BERTH_DATA_DIR={DATA_IN_CONTAINER}"));
    a.extend(mount_data(storage));
    a.push(image.into());
    a.push("serve".into());
    a
}

/// The data folder's `--user` (a host folder's owner) and `--mount` options.
fn mount_data(storage: &Storage) -> Vec<String> {
    let mut a = Vec::new();
    match storage {
        Storage::Volume(v) => {
            a.push("--mount".into());
            a.push(format!("type=volume,source={v},target={DATA_IN_CONTAINER}"));
        }
        Storage::Dir(dir, owner) => {
            if let Some(owner) = owner {
                a.push("--user".into());
                a.push(owner.clone());
            }
            a.push("--mount".into());
            let source = csv_field(&format!("source={}", dir.display()));
            a.push(format!("type=bind,{source},target={DATA_IN_CONTAINER}"));
        }
    }
    a
}

/// `docker run` of the image's own `berth user add` on the data folder,
/// before the registry starts: the htpasswd file is written by berth's
/// writer, as the user the registry runs as, wherever the data lives. The
/// password goes on stdin, never in arguments.
pub fn add_user(image: &str, storage: &Storage, user: &str) -> Vec<String> {
    let mut a = strings(&["run", "--rm", "-i", "--network", "none"]);
    a.extend(mount_data(storage));
    a.push(image.into());
    a.extend(user_add_args(user));
    a
}

/// `docker exec` of `berth user add` in the running registry: for a password
/// made after it started (berth re-reads the file when it changes).
pub fn add_user_in_registry(spec: &Spec, user: &str) -> Vec<String> {
    let mut a = strings(&["exec", "-i", spec.registry.as_str(), "/berth"]);
    a.extend(user_add_args(user));
    a
}

fn user_add_args(user: &str) -> Vec<String> {
    strings(&[
        "user",
        "add",
        user,
        "--htpasswd",
        HTPASSWD_IN_CONTAINER,
        "--password-stdin",
    ])
}

pub fn create_cluster(spec: &Spec) -> Vec<String> {
    strings(&[
        "create",
        "cluster",
        "--name",
        spec.cluster.as_str(),
        "--config",
        "-",
    ])
}

pub fn get_nodes(spec: &Spec) -> Vec<String> {
    strings(&["get", "nodes", "--name", spec.cluster.as_str()])
}

pub fn kubectl(spec: &Spec, args: &[&str]) -> Vec<String> {
    let mut a = vec!["--context".to_string(), spec.context()];
    a.extend(strings(args));
    a
}

pub fn get_configmap(spec: &Spec) -> Vec<String> {
    kubectl(
        spec,
        &[
            "-n",
            "kube-public",
            "get",
            "configmap",
            "local-registry-hosting",
            "-o",
            "jsonpath={.data.localRegistryHosting\\.v1}",
        ],
    )
}

/// What `docker container inspect` says about the registry container.
pub fn parse_registry(inspect_json: &str) -> Registry {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(inspect_json) else {
        return Registry::Foreign;
    };
    let Some(c) = items.first() else {
        return Registry::Absent;
    };
    let port = c["Config"]["Labels"][PORT_LABEL]
        .as_str()
        .and_then(|p| p.parse().ok());
    let Some(port) = port else {
        return Registry::Foreign;
    };
    Registry::Ours {
        running: c["State"]["Running"].as_bool().unwrap_or(false),
        port,
        on_kind_network: c["NetworkSettings"]["Networks"].get("kind").is_some(),
        auth_user: c["Config"]["Labels"][AUTH_LABEL].as_str().map(String::from),
        mirrors: c["Config"]["Labels"][MIRRORS_LABEL]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The credentials a node's containerd has for `host`, from `containerd config
/// dump`: `registry.configs."HOST".auth` of the CRI plugin (containerd 1.x
/// `io.containerd.grpc.v1.cri`, 2.x `io.containerd.cri.v1.images`).
pub fn node_credentials(config_dump: &str, host: &str) -> Option<Credentials> {
    let dump: toml::Value = toml::from_str(config_dump).ok()?;
    ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"]
        .iter()
        .find_map(|plugin| {
            let auth = dump
                .get("plugins")?
                .get(plugin)?
                .get("registry")?
                .get("configs")?
                .get(host)?
                .get("auth")?;
            Some(Credentials {
                user: auth.get("username")?.as_str()?.to_string(),
                password: auth.get("password")?.as_str()?.to_string(),
            })
        })
}

/// Whether `containerd config dump` shows the CRI registry reading certs.d:
/// containerd 1.x prints `config_path = "…"`, 2.x `config_path = '…'`.
pub fn reads_certs_d(config_dump: &str) -> bool {
    config_dump.lines().any(|line| {
        let line = line.trim();
        line.starts_with("config_path")
            && line.split_once('=').is_some_and(|(_, v)| {
                v.trim().trim_matches(['"', '\'']).trim_end_matches('/') == super::spec::CERTS_D
            })
    })
}

/// Names listed one per line (`kind get clusters`, `kind get nodes`).
pub fn lines(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::spec::tests::spec;
    use super::super::spec::Mirror;
    use super::*;

    #[test]
    fn registry_runs_published_on_loopback_with_a_named_volume() {
        let a = run_registry(
            &spec(),
            "berth:latest",
            NetworkMode::Kind,
            &Storage::Volume("kind-registry-data".into()),
            None,
        );
        assert_eq!(
            a.join(" "),
            "run -d --name kind-registry --restart=always --label io.github.berth.kind.port=5000 \
             -p 127.0.0.1:5000:5000 -e BERTH_DATA_DIR=/var/lib/registry \
             --mount type=volume,source=kind-registry-data,target=/var/lib/registry berth:latest serve"
        );
    }

    #[test]
    fn a_data_folder_with_spaces_and_commas_stays_one_argument() {
        let storage = Storage::Dir("/tmp/my data, v2".into(), Some("1000:1000".into()));
        let a = run_registry(&spec(), "berth:latest", NetworkMode::Host, &storage, None);
        assert!(
            a.contains(
                &"type=bind,\"source=/tmp/my data, v2\",target=/var/lib/registry".to_string()
            ),
            "{a:?}"
        );
        assert!(a.windows(2).any(|w| w == ["--user", "1000:1000"]));
        assert!(a.windows(2).any(|w| w == ["--network", "host"]));
        assert!(a.contains(&"BERTH_ADDR=127.0.0.1:5000".to_string()));
        assert!(!a.contains(&"-p".to_string()));
    }

    #[test]
    fn with_mirrors_the_registry_reads_its_upstreams_from_a_mounted_file_and_is_labelled() {
        let mut s = spec();
        s.mirrors = vec![
            Mirror::parse("ghcr.io").unwrap(),
            Mirror::parse("docker.io").unwrap(),
        ];
        let storage = Storage::Volume("kind-registry-data".into());
        let file = Path::new("/home/u/.local/state/berth/kind/kind-registry.d/berth.toml");
        let a = run_registry(&s, "berth:latest", NetworkMode::Kind, &storage, Some(file));
        assert_eq!(
            a.join(" "),
            "run -d --name kind-registry --restart=always --label io.github.berth.kind.port=5000 \
             --label io.github.berth.kind.mirrors=docker.io=https://registry-1.docker.io,ghcr.io=https://ghcr.io \
             -e BERTH_CONFIG=/etc/berth/kind.toml \
             --mount type=bind,source=/home/u/.local/state/berth/kind/kind-registry.d/berth.toml,target=/etc/berth/kind.toml,readonly \
             -p 127.0.0.1:5000:5000 -e BERTH_DATA_DIR=/var/lib/registry \
             --mount type=volume,source=kind-registry-data,target=/var/lib/registry berth:latest serve"
        );
        // A state folder with a comma stays one --mount field.
        let odd = Path::new("/home/a, b/berth.toml");
        let a = run_registry(&s, "berth:latest", NetworkMode::Kind, &storage, Some(odd));
        assert!(
            a.contains(
                &"type=bind,\"source=/home/a, b/berth.toml\",target=/etc/berth/kind.toml,readonly"
                    .to_string()
            ),
            "{a:?}"
        );
        // The label reads back as the running container's mirrors.
        let inspect = format!(
            r#"[{{"State":{{"Running":true}},"Config":{{"Labels":{{"io.github.berth.kind.port":"5000","io.github.berth.kind.mirrors":"{}"}}}},"NetworkSettings":{{"Networks":{{}}}}}}]"#,
            s.mirrors_label()
        );
        assert!(
            matches!(parse_registry(&inspect), Registry::Ours { mirrors, .. } if mirrors == s.mirrors_label())
        );
    }

    #[test]
    fn inspect_tells_ours_from_foreign() {
        assert_eq!(parse_registry("[]"), Registry::Absent);
        let ours = r#"[{"State":{"Running":true},"Config":{"Labels":{"io.github.berth.kind.port":"5001"}},
            "NetworkSettings":{"Networks":{"bridge":{},"kind":{}}}}]"#;
        assert_eq!(
            parse_registry(ours),
            Registry::Ours {
                running: true,
                port: 5001,
                on_kind_network: true,
                auth_user: None,
                mirrors: String::new(),
            }
        );
        let with_auth = r#"[{"State":{"Running":false},"Config":{"Labels":{"io.github.berth.kind.port":"5000",
            "io.github.berth.kind.auth-user":"kind"}},"NetworkSettings":{"Networks":{}}}]"#;
        assert_eq!(
            parse_registry(with_auth),
            Registry::Ours {
                running: false,
                port: 5000,
                on_kind_network: false,
                auth_user: Some("kind".into()),
                mirrors: String::new(),
            }
        );
        let foreign = r#"[{"State":{"Running":true},"Config":{"Labels":null},"NetworkSettings":{"Networks":{}}}]"#;
        assert_eq!(parse_registry(foreign), Registry::Foreign);
    }

    #[test]
    fn with_auth_the_registry_reads_htpasswd_from_its_data_and_is_labelled() {
        let mut s = spec();
        s.credentials = Some(Credentials {
            user: "kind".into(),
            password: "secret".into(),
        });
        let storage = Storage::Volume("kind-registry-data".into());
        let a = run_registry(&s, "berth:latest", NetworkMode::Kind, &storage, None);
        assert!(a.windows(2).any(|w| w
            == [
                "-e",
                "REGISTRY_AUTH_HTPASSWD_PATH=/var/lib/registry/htpasswd"
            ]));
        assert!(a
            .windows(2)
            .any(|w| w == ["--label", "io.github.berth.kind.auth-user=kind"]));
        // The password never reaches docker's arguments (or `docker inspect`).
        assert!(!a.iter().any(|x| x.contains("secret")), "{a:?}");

        let add = add_user("berth:latest", &storage, "kind");
        assert_eq!(
            add.join(" "),
            "run --rm -i --network none --mount type=volume,source=kind-registry-data,target=/var/lib/registry \
             berth:latest user add kind --htpasswd /var/lib/registry/htpasswd --password-stdin"
        );
        // A host folder: the same owner as the registry will run as.
        let dir = Storage::Dir("/data".into(), Some("1000:1000".into()));
        let add = add_user("berth:latest", &dir, "kind");
        assert!(add.windows(2).any(|w| w == ["--user", "1000:1000"]));
        assert_eq!(
            add_user_in_registry(&s, "kind").join(" "),
            "exec -i kind-registry /berth user add kind --htpasswd /var/lib/registry/htpasswd --password-stdin"
        );
    }

    #[test]
    fn node_credentials_are_read_from_containerd_1_and_2_dumps() {
        let v1 = "version = 2\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    [plugins.\"io.containerd.grpc.v1.cri\".registry]\n      config_path = \"/etc/containerd/certs.d\"\n      [plugins.\"io.containerd.grpc.v1.cri\".registry.configs]\n        [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"kind-registry:5000\"]\n          [plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"kind-registry:5000\".auth]\n            auth = \"\"\n            password = \"pw\"\n            username = \"kind\"\n";
        let want = Credentials {
            user: "kind".into(),
            password: "pw".into(),
        };
        assert_eq!(
            node_credentials(v1, "kind-registry:5000"),
            Some(want.clone())
        );
        assert_eq!(node_credentials(v1, "other:5000"), None);
        let v2 = "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry.configs.'kind-registry:5000'.auth]\nusername = 'kind'\npassword = 'pw'\n";
        assert_eq!(node_credentials(v2, "kind-registry:5000"), Some(want));
        assert_eq!(node_credentials("not toml [", "kind-registry:5000"), None);
        assert_eq!(node_credentials("", "kind-registry:5000"), None);
    }

    #[test]
    fn config_path_is_found_in_containerd_1_and_2_dumps() {
        assert!(reads_certs_d("  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = \"/etc/containerd/certs.d\"\n"));
        assert!(reads_certs_d("[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = '/etc/containerd/certs.d'\n"));
        assert!(!reads_certs_d("    config_path = \"\"\n"));
        assert!(!reads_certs_d(""));
    }
}
