//! A repository: its tags newest first, with the commands that pull them.

use super::{cached_mark, copy_button, layout, repository_crumbs, short_digest, time};
use crate::ui::format;
use crate::ui::routes::UiRoute;
use crate::ui::view::{Context, RepositoryPage, TagRow};
use berth_oci::{Reference, RepositoryName};
use maud::{html, Markup};

pub fn render(context: &Context, page: &RepositoryPage) -> String {
    let name = &page.name;
    let main = html! {
        h1 { (name) }
        p.muted {
            (page.summary.tags) @if page.summary.tags == 1 { " tag" } @else { " tags" }
            " · " (format::size(page.summary.size))
            " · last push " (time(context, page.summary.last_push))
        }
        @if let Some(cached) = &page.summary.cached {
            p #cached { (cached_mark(context, cached)) }
        }
        @if let Some(quota) = &page.summary.quota {
            p #quota { "Quota: " (format::quota_use(quota)) }
        }
        @if context.may_delete_repositories {
            p.actions {
                a.button.danger href=(UiRoute::DeleteRepository(name.clone()).path()) { "Delete repository" }
            }
        }
        @if let Some(newest) = page.tags.first() {
            (commands(context, name, newest.tag.as_str()))
        }
        h2 #tags-title { "Tags" }
        @if page.tags.is_empty() {
            p.muted { "No tags." }
        } @else {
            form.filter role="search" {
                input type="search" placeholder="Filter tags" aria-label="Filter tags"
                    autocomplete="off" data-filter-rows="tags";
            }
            div.scroll {
                table.wide #tags aria-labelledby="tags-title" {
                    colgroup {
                        col.w10; col.w11; col;
                        col.w6; col.w8; col.w10;
                    }
                    thead { tr {
                        th scope="col" { "Tag" }
                        th.hide-narrow scope="col" { "Digest" }
                        th.hide-narrow scope="col" { "Type" }
                        th.num scope="col" { "Size" }
                        th scope="col" { "Pushed" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for row in &page.tags { (tag_row(context, name, row, page.summary.cached.is_some())) }
                    }
                }
            }
            @if let Some(next) = &page.next {
                nav.pager aria-label="Pages" {
                    a.button rel="next" href={ (UiRoute::Repository(name.clone()).path()) "?last=" (next) } { "Next page" }
                }
            }
        }
    };
    layout(context, name.as_str(), &repository_crumbs(name), main)
}

fn commands(context: &Context, name: &RepositoryName, tag: &str) -> Markup {
    let pull = pull_command(context, name, tag);
    let run = kubectl_command(context, name, tag);
    html! {
        div.cmds {
            div { code { (pull) } (copy_button(&pull, "docker pull command")) }
            div { code { (run) } (copy_button(&run, "kubectl run command")) }
        }
    }
}

/// `cached`: the repository is a pull-through cache, whose tags are not deleted.
fn tag_row(context: &Context, name: &RepositoryName, row: &TagRow, cached: bool) -> Markup {
    let image = UiRoute::Image(name.clone(), Reference::Tag(row.tag.clone()));
    html! {
        tr {
            td { a href=(image.path()) { (row.tag) } }
            td.hide-narrow { (short_digest(&row.digest)) }
            td.hide-narrow title=(row.media_type) {
                (kind_of(&row.media_type))
                @if !row.platforms.is_empty() {
                    br;
                    span.muted { (row.platforms.join(", ")) }
                }
            }
            td.num { (format::size(row.size)) }
            td { (time(context, row.pushed)) }
            td {
                (copy_button(&pull_command(context, name, row.tag.as_str()), &format!("docker pull command for {}", row.tag)))
                @if context.deletes_enabled && !cached {
                    " "
                    a.button.danger href=(UiRoute::Delete(name.clone(), Reference::Tag(row.tag.clone())).path())
                        data-confirm={ "Delete tag " (row.tag) "? Other tags of the same image stay." }
                        aria-label={ "Delete tag " (row.tag) } { "Delete" }
                }
            }
        }
    }
}

/// A short name for a media type: `OCI index`, `Docker manifest`, or the type itself.
pub fn kind_of(media_type: &str) -> String {
    match media_type {
        "application/vnd.oci.image.index.v1+json" => "OCI index".into(),
        "application/vnd.oci.image.manifest.v1+json" => "OCI manifest".into(),
        "application/vnd.docker.distribution.manifest.list.v2+json" => {
            "Docker manifest list".into()
        }
        "application/vnd.docker.distribution.manifest.v2+json" => "Docker manifest".into(),
        other => other.into(),
    }
}

pub fn pull_command(context: &Context, name: &RepositoryName, tag: &str) -> String {
    format!("docker pull {}/{name}:{tag}", context.host)
}

/// `kubectl run` needs a DNS label: the name's last part, lowercased, with
/// anything else turned into dashes.
pub fn kubectl_command(context: &Context, name: &RepositoryName, tag: &str) -> String {
    let last = name.as_str().rsplit('/').next().unwrap_or("image");
    let mut label: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    label = label.trim_matches('-').to_owned();
    if label.is_empty() {
        label = "image".into();
    }
    format!("kubectl run {label} --image={}/{name}:{tag}", context.host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::pages::testing::context;
    use berth_oci::Digest;

    fn row(tag: &str, pushed: i64) -> TagRow {
        TagRow {
            tag: tag.parse().unwrap(),
            digest: Digest::sha256_of(tag.as_bytes()),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            size: 4096,
            pushed: Some(pushed),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
        }
    }

    fn page() -> RepositoryPage {
        RepositoryPage {
            name: "team/app_server".parse().unwrap(),
            summary: crate::ui::view::RepositoryRow {
                name: "team/app_server".parse().unwrap(),
                tags: 2,
                size: 3 * 1024 * 1024,
                last_push: Some(1_795_999_000),
                quota: None,
                cached: None,
            },
            tags: vec![row("v2", 1_795_999_000), row("v1", 1_795_000_000)],
            next: None,
        }
    }

    #[test]
    fn shows_tags_in_the_given_order_with_commands() {
        let html = render(&context(), &page());
        let (v2, v1) = (html.find(">v2</a>").unwrap(), html.find(">v1</a>").unwrap());
        assert!(v2 < v1, "newest first");
        assert!(html.contains("docker pull registry.example:5000/team/app_server:v2"));
        assert!(html
            .contains("kubectl run app-server --image=registry.example:5000/team/app_server:v2"));
        assert!(html.contains("linux/amd64, linux/arm64"));
        assert!(html.contains("OCI index"));
        assert!(html.contains("2 tags · 3.0 MiB · last push"), "{html}");
        let digest = Digest::sha256_of(b"v2");
        assert!(html.contains(&format!(r#"data-copy="{digest}""#)));
        assert!(html.contains(r#"href="/ui/r/team/app_server/-/m/v2""#));
        assert!(html.contains(r#"href="/ui/r/team/app_server/-/delete/v2""#));
        assert!(html.contains(r#"<dialog id="confirm""#));
    }

    #[test]
    fn a_next_page_link_carries_the_last_key() {
        let mut page = page();
        page.next = Some("1795000000.v1".into());
        let html = render(&context(), &page);
        assert!(
            html.contains(r#"href="/ui/r/team/app_server?last=1795000000.v1""#),
            "{html}"
        );
    }

    #[test]
    fn delete_controls_hide_when_deletes_are_off() {
        let mut context = context();
        context.deletes_enabled = false;
        let html = render(&context, &page());
        assert!(!html.contains("/-/delete/"), "{html}");
        assert!(!html.contains("<dialog"));
    }

    #[test]
    fn quota_use_shows_where_a_quota_applies() {
        let mut page = page();
        assert!(!render(&context(), &page).contains("Quota"));
        page.summary.quota = Some(crate::ui::view::QuotaView {
            used_bytes: 3 * 1024 * 1024,
            max_bytes: Some(4 * 1024 * 1024),
            tags: 2,
            max_tags: None,
        });
        let html = render(&context(), &page);
        assert!(
            html.contains(r#"<p id="quota">Quota: 3.0 MiB of 4.0 MiB (75%)</p>"#),
            "{html}"
        );
    }

    #[test]
    fn the_repository_delete_shows_only_to_who_may_do_it() {
        let html = render(&context(), &page());
        assert!(
            html.contains(r#"href="/ui/r/team/app_server/-/delete">Delete repository</a>"#),
            "{html}"
        );
        let mut context = context();
        context.may_delete_repositories = false;
        assert!(!render(&context, &page()).contains("Delete repository"));
    }

    #[test]
    fn a_cached_repository_is_marked_and_offers_no_tag_deletes_but_keeps_repository_delete() {
        let mut page = page();
        let now = context().now;
        page.summary.cached = Some(crate::ui::view::CachedView {
            upstream: "docker.io".into(),
            remote: "library/<busybox>".into(),
            checked_at: Some(now - 120),
        });
        let html = render(&context(), &page);
        assert!(
            html.contains("cache of docker.io (library/&lt;busybox&gt;) · checked"),
            "{html}"
        );
        assert!(html.contains("2 minutes ago"), "{html}");
        assert!(!html.contains("/-/delete/"), "tag delete offered: {html}");
        assert!(html.contains("Delete repository"), "{html}");
        assert!(!render(&context(), &self::page()).contains("cache of"));
    }
}
