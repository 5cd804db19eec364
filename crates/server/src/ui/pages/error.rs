//! A page for what went wrong, in words; the cause of a server failure
//! stays in the log.

use super::layout;
use crate::ui::view::Context;
use maud::html;

pub fn render(context: &Context, title: &str, message: &str) -> String {
    let main = html! {
        h1 { (title) }
        p { (message) }
        p { a href=(crate::ui::routes::UiRoute::Home.path()) { "Back to the repositories" } }
    };
    layout(context, title, &[], main)
}
