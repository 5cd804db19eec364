//! An image: a manifest's layers and config, or an index's platforms; its
//! referrers; and the manifest itself, pretty-printed.

use super::repository::kind_of;
use super::{layout, repository_crumbs, short_digest, Crumb};
use crate::ui::format;
use crate::ui::routes::UiRoute;
use crate::ui::view::{
    ConfigView, Context, ImageContent, ImagePage, LayerRow, PlatformRow, ReferrerRow,
};
use berth_oci::{Reference, RepositoryName};
use maud::{html, Markup};

pub fn render(context: &Context, page: &ImagePage) -> String {
    let name = &page.name;
    let main = html! {
        h1 { (name) ":" (page.reference) }
        dl.kv {
            dt { "Digest" } dd { code { (page.digest) } (super::copy_button(&page.digest.to_string(), "digest")) }
            dt { "Type" } dd { (kind_of(&page.media_type)) " " span.muted { "(" (page.media_type) ")" } }
            dt { "Size" } dd { (format::size(page.size)) }
            dt { "Pushed" } dd { (super::time(context, page.pushed)) }
            @if !page.tags.is_empty() { dt { "Tags" } dd { (page.tags.join(", ")) } }
        }
        @match &page.content {
            ImageContent::Manifest { layers, config, config_digest } => {
                p {
                    a href=(UiRoute::ImageFiles(name.clone(), Reference::Digest(page.digest.clone())).path()) {
                        "Browse the image's files"
                    }
                }
                (layers_table(name, layers))
                @if let Some(config) = config { (config_section(name, config, layers)) }
                @else if let Some(digest) = config_digest {
                    h2 { "Config" }
                    p.muted { "The config " code { (digest) } " is not an image config." }
                }
            }
            ImageContent::Index { platforms } => { (platforms_table(name, platforms)) }
            ImageContent::Unknown => { p.notice { "berth cannot read this manifest's contents." } }
        }
        (referrers_table(name, &page.referrers))
        @if context.deletes_enabled && page.cached.is_none() {
            p {
                a.button.danger href=(UiRoute::Delete(name.clone(), Reference::Digest(page.digest.clone())).path())
                    data-confirm={ "Delete manifest " (page.digest) " and every tag that points to it?" }
                    aria-label="Delete this manifest" { "Delete manifest" }
            }
        }
        details {
            summary { "Manifest JSON" }
            pre.json { code { (page.pretty_json) } }
        }
    };
    let mut crumbs = repository_crumbs(name);
    crumbs.push(Crumb {
        href: UiRoute::Image(name.clone(), page.reference.clone()).path(),
        label: page.reference.to_string(),
    });
    let title = format!("{name}:{}", page.reference);
    layout(context, &title, &crumbs, main)
}

fn layers_table(name: &RepositoryName, layers: &[LayerRow]) -> Markup {
    let total: u64 = layers.iter().map(|l| l.size).sum();
    html! {
        h2 #layers-title { "Layers " span.muted { "(" (layers.len()) ", " (format::size(total)) ")" } }
        div.scroll {
            table aria-labelledby="layers-title" {
                colgroup { col.w3; col.w12; col; col.w7; col.w6; }
                thead { tr {
                    th.num scope="col" { "#" }
                    th scope="col" { "Digest" }
                    th scope="col" { "Media type" }
                    th.num scope="col" { "Size" }
                    th scope="col" { "Files" }
                } }
                tbody {
                    @for (i, layer) in layers.iter().enumerate() {
                        tr {
                            td.num { (i + 1) }
                            td { (short_digest(&layer.digest)) }
                            td { code { (layer.media_type) } }
                            td.num { (format::size(layer.size)) }
                            td { a href=(UiRoute::Layer(name.clone(), layer.digest.clone()).path())
                                aria-label={ "Files in layer " (i + 1) } { "Inside" } }
                        }
                    }
                }
            }
        }
    }
}

/// The config, and its history with each step that added a layer linked
/// to that layer (when the counts agree, as they do for built images).
fn config_section(name: &RepositoryName, config: &ConfigView, layers: &[LayerRow]) -> Markup {
    let words = |words: &[String]| words.join(" ");
    let layered = config.history.iter().filter(|h| !h.empty_layer).count() == layers.len();
    let mut next_layer = 0;
    let mut layer_of = |empty: bool| {
        if empty || !layered {
            return None;
        }
        next_layer += 1;
        layers.get(next_layer - 1).map(|l| (next_layer, l))
    };
    html! {
        h2 { "Config" }
        dl.kv {
            dt { "Platform" } dd { (config.platform) }
            @if let Some(created) = &config.created { dt { "Created" } dd { (created) } }
            @if !config.entrypoint.is_empty() { dt { "Entrypoint" } dd { code { (words(&config.entrypoint)) } } }
            @if !config.cmd.is_empty() { dt { "Cmd" } dd { code { (words(&config.cmd)) } } }
            @if !config.working_dir.is_empty() { dt { "Working dir" } dd { code { (config.working_dir) } } }
            @if !config.user.is_empty() { dt { "User" } dd { code { (config.user) } } }
            @if !config.exposed_ports.is_empty() { dt { "Exposed ports" } dd { (config.exposed_ports.join(", ")) } }
            @if !config.env.is_empty() {
                dt { "Env" }
                dd { ul.plain { @for var in &config.env { li { code { (var) } } } } }
            }
            @if !config.labels.is_empty() {
                dt { "Labels" }
                dd { ul.plain { @for (key, value) in &config.labels { li { code { (key) "=" (value) } } } } }
            }
        }
        @if !config.history.is_empty() {
            h2 #history-title { "History" }
            div.scroll {
                table #history aria-labelledby="history-title" {
                    colgroup { col.w3; col; col.w10; }
                    thead { tr { th.num scope="col" { "#" } th scope="col" { "Created by" } th scope="col" { "Layer" } } }
                    tbody {
                        @for (i, step) in config.history.iter().enumerate() {
                            @let layer = layer_of(step.empty_layer);
                            tr.empty[step.empty_layer] {
                                td.num { (i + 1) }
                                td { code { (step.created_by) }
                                    @if let Some(comment) = &step.comment { br; span.muted { (comment) } } }
                                td {
                                    @if step.empty_layer { "empty layer" }
                                    @else if let Some((n, layer)) = layer {
                                        a href=(UiRoute::Layer(name.clone(), layer.digest.clone()).path()) { "layer " (n) }
                                    }
                                    @else { "adds a layer" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn platforms_table(name: &RepositoryName, platforms: &[PlatformRow]) -> Markup {
    html! {
        h2 #platforms-title { "Platforms" }
        div.scroll {
            table #platforms aria-labelledby="platforms-title" {
                colgroup { col.w12; col.w12; col; col.w7; }
                thead { tr {
                    th scope="col" { "Platform" } th scope="col" { "Digest" }
                    th scope="col" { "Type" } th.num scope="col" { "Size" }
                } }
                tbody {
                    @for platform in platforms {
                        tr {
                            td { a href=(UiRoute::Image(name.clone(), Reference::Digest(platform.digest.clone())).path()) { (platform.platform) } }
                            td { (short_digest(&platform.digest)) }
                            td { (kind_of(&platform.media_type)) }
                            td.num { (format::size(platform.size)) }
                        }
                    }
                }
            }
        }
    }
}

fn referrers_table(name: &RepositoryName, referrers: &[ReferrerRow]) -> Markup {
    html! {
        h2 #referrers-title { "Referrers" }
        @if referrers.is_empty() {
            p.muted { "No signatures, SBOMs or attestations refer to this manifest." }
        } @else {
            div.scroll {
                table #referrers aria-labelledby="referrers-title" {
                    colgroup { col; col.w12; col.w7; }
                    thead { tr { th scope="col" { "Artifact type" } th scope="col" { "Digest" } th.num scope="col" { "Size" } } }
                    tbody {
                        @for referrer in referrers {
                            tr {
                                td { a href=(UiRoute::Image(name.clone(), Reference::Digest(referrer.digest.clone())).path()) {
                                    @if referrer.artifact_type.is_empty() { (referrer.media_type) } @else { (referrer.artifact_type) }
                                } }
                                td { (short_digest(&referrer.digest)) }
                                td.num { (format::size(referrer.size)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::pages::testing::context;
    use crate::ui::view::HistoryRow;
    use berth_oci::Digest;

    fn manifest_page() -> ImagePage {
        let layer = Digest::sha256_of(b"layer");
        ImagePage {
            name: "app".parse().unwrap(),
            reference: "v1".parse().unwrap(),
            digest: Digest::sha256_of(b"manifest"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 700,
            pushed: Some(1_795_999_000),
            tags: vec!["v1".into()],
            content: ImageContent::Manifest {
                layers: vec![LayerRow {
                    digest: layer,
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    size: 2 * 1024 * 1024,
                }],
                config: Some(Box::new(ConfigView {
                    platform: "linux/arm64".into(),
                    entrypoint: vec!["/bin/app".into()],
                    cmd: vec!["--port".into(), "80".into()],
                    env: vec!["PATH=/bin".into()],
                    labels: vec![("evil".into(), "<script>alert(1)</script>".into())],
                    exposed_ports: vec!["80/tcp".into()],
                    working_dir: "/srv".into(),
                    user: "app".into(),
                    history: vec![
                        HistoryRow {
                            created: None,
                            created_by: "COPY app /bin/app".into(),
                            comment: None,
                            empty_layer: false,
                        },
                        HistoryRow {
                            created: None,
                            created_by: "ENV PATH=/bin".into(),
                            comment: None,
                            empty_layer: true,
                        },
                    ],
                    ..Default::default()
                })),
                config_digest: Some(Digest::sha256_of(b"config")),
            },
            referrers: vec![ReferrerRow {
                artifact_type: "application/spdx+json".into(),
                digest: Digest::sha256_of(b"sbom"),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 500,
            }],
            pretty_json: "{\n  \"annotations\": {\"x\": \"</code><script>\"}\n}".into(),
            cached: None,
        }
    }

    #[test]
    fn a_manifest_shows_layers_config_history_and_referrers() {
        let html = render(&context(), &manifest_page());
        let layer = Digest::sha256_of(b"layer");
        assert!(
            html.contains(&format!(r#"href="/ui/r/app/-/layer/{layer}""#)),
            "{html}"
        );
        assert!(html.contains("application/vnd.oci.image.layer.v1.tar+gzip"));
        assert!(html.contains("2.0 MiB"));
        assert!(html.contains("linux/arm64"));
        assert!(html.contains("/bin/app"));
        assert!(html.contains("--port 80"));
        assert!(html.contains("80/tcp"));
        assert!(html.contains("COPY app /bin/app"));
        assert!(
            html.contains(r#"<tr class="empty">"#),
            "empty layers are marked"
        );
        assert!(html.contains("application/spdx+json"));
        let manifest = Digest::sha256_of(b"manifest");
        assert!(html.contains(&format!(r#"href="/ui/r/app/-/m/{manifest}/files""#)));
    }

    #[test]
    fn labels_and_manifest_json_render_inert() {
        let html = render(&context(), &manifest_page());
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("</code><script>"));
        assert!(html.contains("&lt;/code&gt;&lt;script&gt;"));
    }

    #[test]
    fn an_index_links_each_platform_to_its_manifest() {
        let child = Digest::sha256_of(b"child");
        let mut page = manifest_page();
        page.content = ImageContent::Index {
            platforms: vec![PlatformRow {
                platform: "linux/riscv64".into(),
                digest: child.clone(),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 400,
            }],
        };
        let html = render(&context(), &page);
        assert!(
            html.contains(&format!(
                r#"<a href="/ui/r/app/-/m/{child}">linux/riscv64</a>"#
            )),
            "{html}"
        );
        assert!(!html.contains("Layers"));
    }

    #[test]
    fn a_manifest_of_a_cached_repository_has_no_delete_button() {
        let mut page = manifest_page();
        assert!(render(&context(), &page).contains("Delete manifest"));
        page.cached = Some(crate::ui::view::CachedView {
            upstream: "ghcr.io".into(),
            remote: "org/app".into(),
            checked_at: None,
        });
        let html = render(&context(), &page);
        assert!(!html.contains("Delete manifest"), "{html}");
    }
}
