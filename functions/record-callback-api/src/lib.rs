//! `/v2/apps/{app_id}/record-callback`: where an app's recording events are sent.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::callback::CallbackView;
use roomrec_http_edge::{body, json, no_content, path, route_key, serve, ApiError};

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let service = &deps.service;
    let req = &req;
    serve(service, req, |account| async move {
        let app_id = path(req, "app_id")?;
        let (app_id, record_callback) = match route_key(req) {
            "PUT /v2/apps/{app_id}/record-callback" => service.put_callback(&account, app_id, body(req)?).await?,
            "GET /v2/apps/{app_id}/record-callback" => service.get_callback(&account, app_id).await?,
            "DELETE /v2/apps/{app_id}/record-callback" => {
                service.delete_callback(&account, app_id).await?;
                return no_content();
            }
            _ => return Err(ApiError::unknown_route()),
        };
        json(200, &CallbackView { app_id, record_callback })
    })
    .await
}
