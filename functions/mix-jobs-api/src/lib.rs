//! `/v2/apps/{app_id}/mix-stream-jobs`: composite a whole room into one recording, and
//! change its layout while it records.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::job::JobKind;
use roomrec_http_edge::{body, job_routes, json, path, route_key, serve_app};

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let (jobs, req) = (&deps.jobs, &req);
    serve_app(&deps.access, req, |app| async move {
        match route_key(req) {
            "POST /v2/apps/{app_id}/mix-stream-jobs" => json(201, &jobs.create_mix(&app, body(req)?).await?),
            "PUT /v2/apps/{app_id}/mix-stream-jobs/{job_id}" => {
                json(200, &jobs.update_mix(&app, path(req, "job_id")?, body(req)?).await?)
            }
            _ => job_routes(jobs, &deps.events, JobKind::Mix, &app, req).await,
        }
    })
    .await
}
