//! `/v2/apps/{app_id}/individual-stream-jobs`: record one participant's stream.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::job::JobKind;
use roomrec_http_edge::{body, job_routes, json, route_key, serve_app, JobUseCases};

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let req = &req;
    serve_app(&deps.access, req, |app| async move {
        match route_key(req) {
            "POST /v2/apps/{app_id}/individual-stream-jobs" => {
                json(201, &deps.jobs.create_individual(&app, body(req)?).await?)
            }
            _ => job_routes(cases(deps), JobKind::Individual, &app, req).await,
        }
    })
    .await
}

fn cases(deps: &Deps) -> JobUseCases<'_> {
    JobUseCases { jobs: &deps.jobs, events: &deps.events, files: &deps.files }
}
