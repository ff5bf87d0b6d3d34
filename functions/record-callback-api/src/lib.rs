//! `/v2/apps/{app_id}/record-callback`: where an app's recording events are sent.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::callback::CallbackView;
use roomrec_http_edge::{body, json, no_content, route_key, serve_app, ApiError};

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let (callbacks, req) = (&deps.callbacks, &req);
    serve_app(&deps.access, req, |app| async move {
        let record_callback = match route_key(req) {
            "PUT /v2/apps/{app_id}/record-callback" => callbacks.put(&app, body(req)?).await?,
            "GET /v2/apps/{app_id}/record-callback" => callbacks.get(&app).await?,
            "DELETE /v2/apps/{app_id}/record-callback" => {
                callbacks.delete(&app).await?;
                return no_content();
            }
            _ => return Err(ApiError::unknown_route()),
        };
        json(200, &CallbackView { app_id: app.id().clone(), record_callback })
    })
    .await
}
