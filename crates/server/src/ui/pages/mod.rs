//! One module per page; each renders its view data into a whole HTML
//! document. maud escapes every interpolated value, so names, labels and
//! manifest JSON can never become markup.

pub mod delete;
pub mod delete_repository;
pub mod error;
pub mod files;
pub mod home;
pub mod image;
pub mod login;
pub mod repository;

use super::assets;
use super::format;
use super::routes;
use super::routes::UiRoute;
use super::view::{CachedView, Context, Viewer};
use berth_oci::{Digest, RepositoryName};
use maud::{html, Markup, DOCTYPE};

/// A link in the breadcrumb trail.
pub struct Crumb {
    pub href: String,
    pub label: String,
}

/// The breadcrumbs down to a repository.
pub fn repository_crumbs(name: &RepositoryName) -> Vec<Crumb> {
    vec![Crumb {
        href: UiRoute::Repository(name.clone()).path(),
        label: name.to_string(),
    }]
}

/// The document around a page's `main`.
pub fn layout(context: &Context, title: &str, crumbs: &[Crumb], main: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · berth" }
                link rel="stylesheet" href=(assets::css_path());
                script defer src=(assets::js_path()) {}
            }
            body {
                header {
                    a.brand href=(UiRoute::Home.path()) { "berth" }
                    nav.crumbs aria-label="Breadcrumb" {
                        @for crumb in crumbs {
                            span { a href=(crumb.href) { (crumb.label) } }
                        }
                    }
                    (viewer(&context.viewer))
                }
                main { (main) }
                @if context.deletes_enabled {
                    dialog #confirm aria-labelledby="confirm-title" {
                        form method="post" {
                            h2 #confirm-title { "Delete?" }
                            p {}
                            button.danger type="submit" { "Delete" }
                            " "
                            button type="button" value="cancel" { "Cancel" }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// Who is logged in and the way out, or the way in.
fn viewer(viewer: &Viewer) -> Markup {
    html! {
        @match viewer {
            Viewer::Everyone => {},
            Viewer::Anonymous => div.session { a href=(routes::LOGIN) { "Log in" } },
            Viewer::User(name) => div.session {
                span.user title="Logged in as" { (name) }
                form method="post" action=(routes::LOGOUT) {
                    button type="submit" { "Log out" }
                }
            },
        }
    }
}

/// A button that copies `text`, named for screen readers by `what`.
pub fn copy_button(text: &str, what: &str) -> Markup {
    html! {
        button.copy type="button" data-copy=(text) aria-label={ "Copy " (what) } title={ "Copy " (what) } { "Copy" }
    }
}

/// A push time: relative, with the absolute time as its title.
pub fn time(context: &Context, unix: Option<i64>) -> Markup {
    html! {
        @if let Some(unix) = unix {
            time datetime=(format::iso_time(unix)) title=(format::absolute_time(unix)) {
                (format::relative_time(unix, context.now))
            }
        } @else {
            span.muted { "—" }
        }
    }
}

/// The mark of a cached repository: its upstream, its name there and when
/// a tag was last checked.
pub fn cached_mark(context: &Context, cached: &CachedView) -> Markup {
    html! {
        span.cached {
            "cache of " (cached.upstream) " (" (cached.remote) ") · checked "
            (time(context, cached.checked_at))
        }
    }
}

/// A digest shown short, its whole value in the title and a copy button.
pub fn short_digest(digest: &Digest) -> Markup {
    let full = digest.to_string();
    html! {
        code title=(full) { (format::short_digest(digest)) }
        (copy_button(&full, "digest"))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::super::view::{Context, Viewer};

    pub fn context() -> Context {
        Context {
            host: "registry.example:5000".into(),
            now: 1_796_000_000,
            deletes_enabled: true,
            may_delete_repositories: true,
            viewer: Viewer::Everyone,
        }
    }
}
