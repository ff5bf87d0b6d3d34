//! `/v2/apps/{app_id}/preflight`: checks a rule's bucket, the callback URL and a room's
//! streams without recording; `GET .../preflight/{preflight_id}` reads one again (the
//! streams' probe may answer after the POST did).

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_http_edge::{json, optional_body, path, route_key, serve_app, ApiError};

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let (preflight, req) = (&deps.preflight, &req);
    serve_app(&deps.access, req, |app| async move {
        match route_key(req) {
            "POST /v2/apps/{app_id}/preflight" => json(200, &preflight.run(&app, optional_body(req)?).await?),
            "GET /v2/apps/{app_id}/preflight/{preflight_id}" => {
                json(200, &preflight.get(&app, path(req, "preflight_id")?).await?)
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}
