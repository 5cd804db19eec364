//! The front page: the registry's totals and a filtered, paged list of
//! repositories.

use super::{cached_mark, layout, time};
use crate::ui::format;
use crate::ui::routes::UiRoute;
use crate::ui::view::{Context, GcPanel, HomePage, Overview};
use maud::{html, Markup};

pub fn render(context: &Context, page: &HomePage) -> String {
    let main = html! {
        h1 { "Repositories" }
        @if let Some(overview) = &page.overview { (totals(overview)) }
        @if let Some(gc) = &page.gc { (gc_panel(context, gc)) }
        form.filter method="get" action=(UiRoute::Home.path()) role="search" {
            input type="search" name="q" value=(page.query) placeholder="Filter repositories"
                aria-label="Filter repositories" autocomplete="off" data-filter-remote="repositories";
            button type="submit" { "Filter" }
        }
        (list(context, page))
    };
    layout(context, "Repositories", &[], main)
}

fn totals(overview: &Overview) -> Markup {
    html! {
        dl.stats aria-label="Registry totals" {
            div { dt { "Repositories" } dd { (overview.repositories) } }
            div { dt { "Tags" } dd { (overview.tags) } }
            div { dt { "Manifests" } dd { (overview.manifests) } }
            @if let Some(blobs) = overview.blobs {
                div { dt { "Blobs" } dd { (blobs) } }
                div { dt { "Stored" } dd { (format::size(overview.stored_bytes)) } }
            } @else {
                div { dt { "Size" } dd { (format::size(overview.stored_bytes)) } }
            }
            @if let Some(saved) = overview.saved_bytes {
                div { dt { "Saved by sharing" } dd { (format::size(saved)) } }
            }
        }
    }
}

/// What garbage collection could take back, did last, and does next.
fn gc_panel(context: &Context, gc: &GcPanel) -> Markup {
    let count = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    html! {
        section.gc aria-labelledby="gc-title" {
            h2 #gc-title { "Garbage collection" }
            dl.gc-stats {
                div {
                    dt { "Reclaimable" }
                    dd #gc-reclaimable data-bytes=(gc.reclaimable_bytes) {
                        (format::size(gc.reclaimable_bytes))
                    }
                }
                div {
                    dt { "Last pass" }
                    dd #gc-last {
                        @if let Some(last) = &gc.last {
                            (time(context, Some(last.at)))
                            @if last.dry_run { " (dry run): would remove " } @else { ": removed " }
                            (count(last.blobs, "blob", "blobs")) " (" (format::size(last.bytes)) "), "
                            (count(last.manifests, "manifest", "manifests")) ", "
                            (count(last.tags, "tag", "tags"))
                        } @else {
                            span.muted { "none since berth started" }
                        }
                    }
                }
                div {
                    dt { "Next pass" }
                    dd #gc-next {
                        @if gc.running { "running now" }
                        @else if let Some(at) = gc.next_run_at {
                            time datetime=(format::iso_time(at)) title=(format::absolute_time(at)) {
                                (format::time_until(at, context.now))
                            }
                        } @else { span.muted { "none scheduled" } }
                    }
                }
            }
            p.muted {
                (count(gc.reclaimable_blobs, "blob", "blobs"))
                " nothing references; a GC pass removes each once nothing has wanted it for "
                (gc.grace) "."
            }
        }
    }
}

/// The table and its pager: what the script swaps when the filter changes.
fn list(context: &Context, page: &HomePage) -> Markup {
    html! {
        section #repositories aria-live="polite" {
            @if page.rows.is_empty() {
                p.muted {
                    @if page.query.is_empty() { "No repositories yet." }
                    @else { "No repository matches “" (page.query) "”." }
                }
            } @else {
                @let quotas = page.rows.iter().any(|row| row.quota.is_some());
                div.scroll {
                    table {
                        colgroup { col; col.w6; col.w7; @if quotas { col.w10; } col.w9; }
                        thead { tr {
                            th scope="col" { "Name" }
                            th.num scope="col" { "Tags" }
                            th.num scope="col" { "Size" }
                            @if quotas { th scope="col" { "Quota" } }
                            th scope="col" { "Last push" }
                        } }
                        tbody {
                            @for row in &page.rows {
                                tr {
                                    td {
                                        a href=(UiRoute::Repository(row.name.clone()).path()) { (row.name) }
                                        @if let Some(cached) = &row.cached { br; (cached_mark(context, cached)) }
                                    }
                                    td.num { (row.tags) }
                                    td.num { (format::size(row.size)) }
                                    @if quotas {
                                        td.quota {
                                            @if let Some(quota) = &row.quota { (format::quota_use(quota)) }
                                        }
                                    }
                                    td { (time(context, row.last_push)) }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next {
                nav.pager aria-label="Pages" {
                    a.button rel="next" href=(next_href(&page.query, next)) { "Next page" }
                }
            }
        }
    }
}

fn next_href(query: &str, last: &str) -> String {
    let mut params = form_urlencoded::Serializer::new(String::new());
    if !query.is_empty() {
        params.append_pair("q", query);
    }
    params.append_pair("last", last);
    format!("{}?{}", UiRoute::Home.path(), params.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::pages::testing::context;
    use crate::ui::view::RepositoryRow;

    fn page() -> HomePage {
        HomePage {
            overview: Some(Overview {
                repositories: 2,
                tags: 3,
                manifests: 4,
                blobs: Some(5),
                stored_bytes: 3 * 1024 * 1024,
                saved_bytes: Some(1024),
            }),
            query: "lib".into(),
            rows: vec![RepositoryRow {
                name: "library/alpine".parse().unwrap(),
                tags: 7,
                size: 2048,
                last_push: Some(1_796_000_000 - 7200),
                quota: None,
                cached: None,
            }],
            next: Some("library/alpine".into()),
            gc: None,
        }
    }

    #[test]
    fn lists_repositories_with_totals_and_a_next_page() {
        let html = render(&context(), &page());
        assert!(
            html.contains(r#"<a href="/ui/r/library/alpine">library/alpine</a>"#),
            "{html}"
        );
        assert!(html.contains("2 hours ago"));
        assert!(html.contains("3.0 MiB"));
        assert!(html.contains("Saved by sharing"));
        assert!(html.contains(r#"value="lib""#));
        assert!(
            html.contains(r#"href="/ui/?q=lib&amp;last=library%2Falpine""#),
            "{html}"
        );
    }

    #[test]
    fn the_gc_panel_shows_reclaimable_bytes_and_the_last_and_next_pass() {
        use crate::ui::view::GcPass;
        let mut page = page();
        let now = context().now;
        page.gc = Some(GcPanel {
            reclaimable_blobs: 4,
            reclaimable_bytes: 5 * 1024 * 1024,
            grace: "1h".into(),
            running: false,
            last: Some(GcPass {
                at: now - 7200,
                dry_run: false,
                blobs: 12,
                bytes: 3 * 1024,
                manifests: 1,
                tags: 0,
            }),
            next_run_at: Some(now + 2400),
        });
        let html = render(&context(), &page);
        assert!(
            html.contains(r#"<dd id="gc-reclaimable" data-bytes="5242880">5.0 MiB</dd>"#),
            "{html}"
        );
        assert!(
            html.contains("2 hours ago</time>: removed 12 blobs (3.0 KiB), 1 manifest, 0 tags"),
            "{html}"
        );
        assert!(html.contains(">in 40 minutes</time>"), "{html}");
        assert!(html.contains("4 blobs nothing references"), "{html}");
        page.gc = Some(GcPanel::default());
        let html = render(&context(), &page);
        assert!(html.contains("none since berth started"), "{html}");
        assert!(html.contains("none scheduled"), "{html}");
        page.gc = None;
        assert!(!render(&context(), &page).contains("Garbage collection"));
    }

    #[test]
    fn the_quota_column_shows_only_when_a_quota_applies() {
        let mut page = page();
        assert!(!render(&context(), &page).contains("Quota"));
        page.rows[0].quota = Some(crate::ui::view::QuotaView {
            used_bytes: 0,
            max_bytes: None,
            tags: 7,
            max_tags: Some(10),
        });
        let html = render(&context(), &page);
        assert!(html.contains(r#"<th scope="col">Quota</th>"#), "{html}");
        assert!(
            html.contains(r#"<td class="quota">7 of 10 tags</td>"#),
            "{html}"
        );
    }

    #[test]
    fn the_filter_text_is_escaped() {
        let mut page = page();
        page.query = r#""><script>alert(1)</script>"#.into();
        page.rows.clear();
        let html = render(&context(), &page);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("No repository matches"));
    }

    #[test]
    fn a_user_who_sees_part_of_the_registry_gets_sums_not_registry_totals() {
        let mut page = page();
        page.overview = Some(Overview {
            repositories: 1,
            tags: 2,
            manifests: 2,
            blobs: None,
            stored_bytes: 2048,
            saved_bytes: None,
        });
        let html = render(&context(), &page);
        assert!(html.contains("<dt>Size</dt><dd>2.0 KiB</dd>"), "{html}");
        for hidden in ["Blobs", "Stored", "Saved by sharing"] {
            assert!(!html.contains(hidden), "{hidden}: {html}");
        }
    }

    #[test]
    fn the_header_names_the_user_or_offers_a_login() {
        use crate::ui::view::Viewer;
        let mut context = context();
        let html = render(&context, &page());
        assert!(!html.contains("Log in") && !html.contains("Log out"));
        context.viewer = Viewer::Anonymous;
        let html = render(&context, &page());
        assert!(html.contains(r#"<a href="/ui/login">Log in</a>"#), "{html}");
        context.viewer = Viewer::User("<alice>".into());
        let html = render(&context, &page());
        assert!(
            html.contains(r#"title="Logged in as">&lt;alice&gt;</span>"#),
            "{html}"
        );
        assert!(html.contains(
            r#"<form method="post" action="/ui/logout"><button type="submit">Log out</button></form>"#
        ));
    }

    #[test]
    fn cached_repositories_are_marked_with_their_upstream_and_last_check() {
        let mut page = page();
        assert!(!render(&context(), &page).contains("cache of"));
        page.rows[0].cached = Some(crate::ui::view::CachedView {
            upstream: "docker.io".into(),
            remote: "library/alpine".into(),
            checked_at: Some(context().now - 3 * 3600),
        });
        let html = render(&context(), &page);
        assert!(
            html.contains("cache of docker.io (library/alpine) · checked"),
            "{html}"
        );
        assert!(html.contains("3 hours ago"), "{html}");
    }
}
