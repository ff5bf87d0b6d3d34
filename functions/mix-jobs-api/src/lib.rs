//! `/v2/apps/{app_id}/mix-stream-jobs`: composite a whole room into one recording, and
//! change its layout while it records.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::job::JobKind;
use roomrec_http_edge::{body, job_routes, json, path, route_key, serve_app, JobUseCases};

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let (jobs, req) = (&deps.jobs, &req);
    serve_app(&deps.access, req, |app| async move {
        match route_key(req) {
            "POST /v2/apps/{app_id}/mix-stream-jobs" => json(201, &jobs.create_mix(&app, body(req)?).await?),
            "PUT /v2/apps/{app_id}/mix-stream-jobs/{job_id}" => {
                let job = jobs.update_mix(&app, path(req, "job_id")?, body(req)?).await?;
                json(200, &deps.files.signed(&app, job).await)
            }
            _ => job_routes(cases(deps), JobKind::Mix, &app, req).await,
        }
    })
    .await
}

fn cases(deps: &Deps) -> JobUseCases<'_> {
    JobUseCases { jobs: &deps.jobs, events: &deps.events, files: &deps.files }
}
