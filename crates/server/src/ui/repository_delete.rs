//! Deleting a whole repository from the UI: a confirmation page on GET
//! saying what goes, the delete on a same-origin POST, then home.

use super::error::UiError;
use super::routes::UiRoute;
use super::view::{Context, RepositoryDeletePage};
use super::{csrf, pages, respond};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use berth_oci::RepositoryName;
use berth_registry::Registry;

pub async fn answer(
    registry: &Registry,
    context: &Context,
    method: &Method,
    headers: &HeaderMap,
    name: RepositoryName,
) -> Result<Response, UiError> {
    if !registry.deletes_enabled() {
        return Err(berth_registry::Error::DeleteDisabled.into());
    }
    if !context.may_delete_repositories {
        return Err(UiError::Forbidden(format!(
            "Deleting the whole repository {name} is for admins."
        )));
    }
    if *method != Method::POST {
        let summary = registry.repository_summary(&name).await?;
        let page = RepositoryDeletePage {
            name,
            tags: summary.tag_count,
            manifests: summary.manifest_count,
            size: summary.size_bytes,
            grace: berth_registry::units::format_duration(registry.options().gc.grace),
        };
        return Ok(respond::html(
            StatusCode::OK,
            pages::delete_repository::render(context, &page),
        ));
    }
    if !csrf::is_same_origin(headers) {
        return Err(UiError::CrossSite);
    }
    let deleted = registry.delete_repository(&name).await?;
    tracing::info!(repository = %name, tags = deleted.tags, manifests = deleted.manifests, "repository deleted from the web UI");
    Ok(respond::redirect(
        StatusCode::SEE_OTHER,
        &UiRoute::Home.path(),
    ))
}
