//! Deleting a tag or a manifest from the UI: a confirmation page on GET,
//! the delete on a same-origin POST, then back to the repository.

use super::error::UiError;
use super::routes::UiRoute;
use super::view::Context;
use super::{csrf, load, pages, respond};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use berth_oci::{Reference, RepositoryName};
use berth_registry::Registry;

pub async fn answer(
    registry: &Registry,
    context: &Context,
    method: &Method,
    headers: &HeaderMap,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, UiError> {
    if !context.deletes_enabled {
        return Err(berth_registry::Error::DeleteDisabled.into());
    }
    if *method != Method::POST {
        let page = load::delete(registry, name, reference).await?;
        return Ok(respond::html(
            StatusCode::OK,
            pages::delete::render(context, &page),
        ));
    }
    if !csrf::is_same_origin(headers) {
        return Err(UiError::CrossSite);
    }
    registry.delete_manifest(&name, &reference).await?;
    // A manifest delete may have emptied the repository: then its page is
    // gone, and the list is where to land.
    let to = match registry.repository_summary(&name).await {
        Ok(_) => UiRoute::Repository(name),
        Err(_) => UiRoute::Home,
    };
    Ok(respond::redirect(StatusCode::SEE_OTHER, &to.path()))
}
