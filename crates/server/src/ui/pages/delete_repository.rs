//! The confirmation before deleting a whole repository: what goes, when
//! the space comes back, and a POST form.

use super::{layout, repository_crumbs};
use crate::ui::format;
use crate::ui::routes::UiRoute;
use crate::ui::view::{Context, RepositoryDeletePage};
use maud::html;

pub fn render(context: &Context, page: &RepositoryDeletePage) -> String {
    let name = &page.name;
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let main = html! {
        h1 { "Delete repository " (name) "?" }
        p {
            "Everything in it goes at once: "
            strong { (plural(page.tags, "tag", "tags")) } " and "
            strong { (plural(page.manifests, "manifest", "manifests")) }
            ", holding " strong { (format::size(page.size)) } "."
        }
        p.muted {
            "Layers other repositories share stay. The rest of the space returns at the \
             next garbage collection pass after the grace period ("
            (page.grace) ")."
        }
        form method="post" action=(UiRoute::DeleteRepository(name.clone()).path()) {
            button.danger type="submit" { "Delete repository" }
            " "
            a.button href=(UiRoute::Repository(name.clone()).path()) { "Cancel" }
        }
    };
    layout(
        context,
        &format!("Delete repository {name}"),
        &repository_crumbs(name),
        main,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::pages::testing::context;

    #[test]
    fn says_what_goes_and_posts_to_its_own_path() {
        let page = RepositoryDeletePage {
            name: "team/app".parse().unwrap(),
            tags: 3,
            manifests: 1,
            size: 5 * 1024 * 1024,
            grace: "1h".into(),
        };
        let html = render(&context(), &page);
        assert!(html.contains("Delete repository team/app?"), "{html}");
        assert!(html.contains("<strong>3 tags</strong>"), "{html}");
        assert!(html.contains("<strong>1 manifest</strong>"), "{html}");
        assert!(html.contains("5.0 MiB"), "{html}");
        assert!(html.contains("grace period (1h)"), "{html}");
        assert!(
            html.contains(r#"<form method="post" action="/ui/r/team/app/-/delete">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"href="/ui/r/team/app">Cancel</a>"#),
            "{html}"
        );
    }
}
