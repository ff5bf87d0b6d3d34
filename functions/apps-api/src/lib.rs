//! `/v2/apps`: create, list, get, update and delete the caller's apps.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::app::App;
use roomrec_http_edge::{body, json, no_content, path, route_key, serve, ApiError};
use serde::Serialize;

/// The list response.
#[derive(Serialize)]
struct AppList {
    total: usize,
    apps: Vec<App>,
}

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let service = &deps.service;
    let req = &req;
    serve(service, req, |account| async move {
        match route_key(req) {
            "POST /v2/apps" => json(201, &service.create_app(&account, body(req)?).await?),
            "GET /v2/apps" => {
                let apps = service.list_apps(&account).await?;
                json(200, &AppList { total: apps.len(), apps })
            }
            "GET /v2/apps/{app_id}" => json(200, &service.app(&account, path(req, "app_id")?).await?),
            "PUT /v2/apps/{app_id}" => {
                json(200, &service.update_app(&account, path(req, "app_id")?, body(req)?).await?)
            }
            "DELETE /v2/apps/{app_id}" => {
                service.delete_app(&account, path(req, "app_id")?).await?;
                no_content()
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}
