//! The confirmation before deleting a tag or a manifest: a page with a
//! POST form, so deleting works without the script's dialog.

use super::{layout, repository_crumbs};
use crate::ui::routes::UiRoute;
use crate::ui::view::{Context, DeletePage};
use berth_oci::Reference;
use maud::html;

pub fn render(context: &Context, page: &DeletePage) -> String {
    let name = &page.name;
    let what = match &page.reference {
        Reference::Tag(tag) => format!("tag {name}:{tag}"),
        Reference::Digest(digest) => format!("manifest {name}@{digest}"),
    };
    let main = html! {
        h1 { "Delete " (what) "?" }
        @match &page.reference {
            Reference::Tag(_) => p { "Only this tag goes; other tags of the same image stay." },
            Reference::Digest(_) => {
                p { "The manifest goes, with every tag that points to it." }
                @if !page.tags.is_empty() {
                    p { "Tags that go with it: " (page.tags.join(", ")) }
                }
            }
        }
        form method="post" action=(UiRoute::Delete(name.clone(), page.reference.clone()).path()) {
            button.danger type="submit" { "Delete" }
            " "
            a.button href=(UiRoute::Repository(name.clone()).path()) { "Cancel" }
        }
    };
    layout(
        context,
        &format!("Delete {what}"),
        &repository_crumbs(name),
        main,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::pages::testing::context;

    #[test]
    fn confirms_with_a_post_form_to_the_same_path() {
        let page = DeletePage {
            name: "a/b".parse().unwrap(),
            reference: "old".parse().unwrap(),
            tags: vec![],
        };
        let html = render(&context(), &page);
        assert!(html.contains("Delete tag a/b:old?"));
        assert!(
            html.contains(r#"<form method="post" action="/ui/r/a/b/-/delete/old">"#),
            "{html}"
        );
    }
}
