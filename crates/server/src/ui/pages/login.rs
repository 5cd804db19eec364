//! The login page: user name and password, posted back to itself with
//! where to go afterwards.

use super::layout;
use crate::ui::routes;
use crate::ui::view::Context;
use maud::html;

/// The form; `error` says why the last attempt failed.
pub fn render(context: &Context, next: &str, user: &str, error: Option<&str>) -> String {
    let main = html! {
        form.login method="post" action=(routes::LOGIN) {
            h1 { "Log in" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            input type="hidden" name="next" value=(next);
            label {
                "User name"
                input type="text" name="user" value=(user) autocomplete="username" required autofocus[user.is_empty()];
            }
            label {
                "Password"
                input type="password" name="password" autocomplete="current-password" required autofocus[!user.is_empty()];
            }
            button type="submit" { "Log in" }
        }
    };
    layout(context, "Log in", &[], main)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::pages::testing::context;
    use crate::ui::view::Viewer;

    #[test]
    fn posts_user_password_and_next_and_shows_the_error_escaped() {
        let mut context = context();
        context.viewer = Viewer::Anonymous;
        let html = render(&context, "/ui/r/a", "al<ice", Some("Wrong <password>"));
        assert!(html.contains(r#"<form class="login" method="post" action="/ui/login">"#));
        assert!(html.contains(r#"name="next" value="/ui/r/a""#), "{html}");
        assert!(html.contains(r#"value="al&lt;ice""#));
        assert!(html.contains("Wrong &lt;password&gt;"));
        assert!(html.contains(r#"type="password" name="password""#));
        // The password is never echoed back.
        assert!(!html.contains(r#"name="password" value"#));
    }
}
