//! `/v2/apps`: create, list, get, update and delete the caller's apps; `/v2/usage`, what
//! the caller's apps used over a range of days;
//! `/v2/openapi.json`, the API's description, which needs no credentials; and
//! `/v3/auth/tokens`, IAM's token request, authenticated by the credential in its body.

mod openapi;
mod tokens;

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::app::App;
use roomrec_domain::usage::UsageRange;
use roomrec_http_edge::{body, json, no_content, path, query, route_key, serve, ApiError};
use serde::Serialize;

pub use openapi::OPENAPI_JSON;

/// The list response.
#[derive(Serialize)]
struct AppList {
    total: usize,
    apps: Vec<App>,
}

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    if route_key(&req) == openapi::ROUTE {
        return openapi::document();
    }
    if route_key(&req) == tokens::ROUTE {
        return tokens::issue(&deps.access, &req).await;
    }
    let req = &req;
    serve(&deps.access, req, |account| async move {
        let route = route_key(req);
        match route {
            "POST /v2/apps" => return json(201, &deps.apps.create(&account, body(req)?).await?),
            "GET /v2/apps" => {
                let apps = deps.apps.list(&account).await?;
                return json(200, &AppList { total: apps.len(), apps });
            }
            "GET /v2/usage" => {
                let range = UsageRange::parse(query(req, "from").as_deref(), query(req, "to").as_deref())?;
                return json(200, &deps.metering.summary(&account, range).await?);
            }
            _ => {}
        }
        let app = deps.access.app(&account, path(req, "app_id")?).await?;
        match route {
            "GET /v2/apps/{app_id}" => json(200, app.app()),
            "PUT /v2/apps/{app_id}" => json(200, deps.apps.update(app, body(req)?).await?.app()),
            "DELETE /v2/apps/{app_id}" => {
                deps.apps.delete(app).await?;
                no_content()
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}
