//! The files inside a layer, or the merged tree of an image.

use super::{layout, repository_crumbs, Crumb};
use crate::ui::format;
use crate::ui::routes::UiRoute;
use crate::ui::view::{Context, FileKind, FileRow, Files, FilesOf, FilesPage};
use maud::{html, Markup};

pub fn render(context: &Context, page: &FilesPage) -> String {
    let name = &page.name;
    let (title, heading) = match &page.subject {
        FilesOf::Layer(digest) => (
            format!("Layer {} of {name}", format::short_digest(digest)),
            html! { "Files in layer " code title=(digest) { (format::short_digest(digest)) } },
        ),
        FilesOf::Image(reference) => (
            format!("Files of {name}:{reference}"),
            html! { "Files of " (name) ":" (reference) },
        ),
    };
    let main = html! {
        h1 { (heading) }
        @match &page.subject {
            FilesOf::Layer(_) => p.muted { "What this layer adds, changes and deletes." },
            FilesOf::Image(_) => p.muted { "Every layer applied in order: what a container starts with." },
        }
        @match &page.files {
            Err(unreadable) => {
                p.notice role="alert" { "This listing cannot be shown: " (unreadable.0) }
            }
            Ok(files) => { (table(files)) }
        }
    };
    let mut crumbs = repository_crumbs(name);
    if let FilesOf::Image(reference) = &page.subject {
        crumbs.push(Crumb {
            href: UiRoute::Image(name.clone(), reference.clone()).path(),
            label: reference.to_string(),
        });
    }
    crumbs.push(match &page.subject {
        FilesOf::Layer(digest) => Crumb {
            href: UiRoute::Layer(name.clone(), digest.clone()).path(),
            label: format!("layer {}", format::short_digest(digest)),
        },
        FilesOf::Image(reference) => Crumb {
            href: UiRoute::ImageFiles(name.clone(), reference.clone()).path(),
            label: "files".into(),
        },
    });
    layout(context, &title, &crumbs, main)
}

fn table(files: &Files) -> Markup {
    let total: u64 = files.rows.iter().map(|f| f.size).sum();
    let merged = files.rows.iter().any(|f| f.layer.is_some());
    html! {
        p {
            (files.rows.len()) " entries, " (format::size(total))
            @if files.truncated { " — the listing stops here: the layer has more entries than berth lists" }
        }
        form.filter role="search" {
            input type="search" placeholder="Filter paths" aria-label="Filter paths"
                autocomplete="off" data-filter-rows="files";
        }
        div.scroll {
            table #files {
                colgroup { col; col.w7; col.w7_5; col.w22p; @if merged { col.w6; } }
                thead { tr {
                    th scope="col" { "Path" }
                    th.num scope="col" { "Size" }
                    th scope="col" { "Mode" }
                    th scope="col" { "Link / change" }
                    @if merged { th.num scope="col" { "Layer" } }
                } }
                tbody {
                    @for file in &files.rows { (row(file)) }
                }
            }
        }
    }
}

fn row(file: &FileRow) -> Markup {
    let deleted = matches!(file.kind, FileKind::Deleted | FileKind::Opaque);
    html! {
        tr.deleted[deleted] {
            td { code { (file.path) } }
            td.num { @if file.kind == FileKind::File { (format::size(file.size)) } }
            td { @if !deleted { code { (format::mode(type_char(file.kind), file.mode)) } } }
            td {
                @match file.kind {
                    FileKind::Deleted => "deleted",
                    FileKind::Opaque => "contents replaced",
                    FileKind::Symlink => { "→ " code { (file.link_target.as_deref().unwrap_or_default()) } },
                    FileKind::Hardlink => { "hard link to " code { "/" (file.link_target.as_deref().unwrap_or_default()) } },
                    _ => {},
                }
            }
            @if let Some(layer) = file.layer { td.num { (layer + 1) } }
        }
    }
}

fn type_char(kind: FileKind) -> char {
    match kind {
        FileKind::Directory => 'd',
        FileKind::Symlink => 'l',
        FileKind::Other => '?',
        FileKind::File | FileKind::Hardlink | FileKind::Deleted | FileKind::Opaque => '-',
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::pages::testing::context;
    use crate::ui::view::Unreadable;
    use berth_oci::Digest;

    fn file(path: &str, kind: FileKind, mode: u32, target: Option<&str>) -> FileRow {
        FileRow {
            path: path.into(),
            kind,
            size: 10,
            mode,
            link_target: target.map(Into::into),
            layer: None,
        }
    }

    #[test]
    fn a_layer_lists_modes_links_and_deletions() {
        let page = FilesPage {
            name: "app".parse().unwrap(),
            subject: FilesOf::Layer(Digest::sha256_of(b"l")),
            files: Ok(Files {
                rows: vec![
                    file("bin/", FileKind::Directory, 0o755, None),
                    file("bin/app", FileKind::File, 0o755, None),
                    file("bin/sh", FileKind::Symlink, 0o777, Some("busybox")),
                    file("etc/<old>", FileKind::Deleted, 0, None),
                ],
                truncated: false,
            }),
        };
        let html = render(&context(), &page);
        assert!(html.contains("drwxr-xr-x"));
        assert!(html.contains("-rwxr-xr-x"));
        assert!(html.contains("lrwxrwxrwx"));
        assert!(html.contains("busybox"));
        assert!(
            html.contains(r#"<tr class="deleted"><td><code>etc/&lt;old&gt;</code>"#),
            "{html}"
        );
        assert!(html.contains("4 entries"));
    }

    #[test]
    fn an_unreadable_layer_says_why() {
        let page = FilesPage {
            name: "app".parse().unwrap(),
            subject: FilesOf::Image("v1".parse().unwrap()),
            files: Err(Unreadable("not a tar archive".into())),
        };
        let html = render(&context(), &page);
        assert!(
            html.contains("cannot be shown: not a tar archive"),
            "{html}"
        );
        assert!(html.contains(r#"href="/ui/r/app/-/m/v1""#));
    }
}
