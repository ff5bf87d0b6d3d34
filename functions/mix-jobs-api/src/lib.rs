//! `/v2/apps/{app_id}/mix-stream-jobs`: composite a whole room into one recording, and
//! change its layout while it records.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_http_edge::{body, job_filter, job_list, json, path, route_key, serve, ApiError};

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let service = &deps.service;
    let req = &req;
    serve(service, req, |account| async move {
        let app_id = path(req, "app_id")?;
        match route_key(req) {
            "POST /v2/apps/{app_id}/mix-stream-jobs" => {
                json(201, &service.create_mix_job(&account, app_id, body(req)?).await?)
            }
            "GET /v2/apps/{app_id}/mix-stream-jobs" => {
                let filter = job_filter(req, true)?;
                job_list(req, service.list_jobs(&account, app_id, &filter).await?)
            }
            "GET /v2/apps/{app_id}/mix-stream-jobs/{job_id}" => {
                json(200, &service.get_job(&account, app_id, path(req, "job_id")?, true).await?)
            }
            "PUT /v2/apps/{app_id}/mix-stream-jobs/{job_id}" => {
                json(200, &service.update_mix_job(&account, app_id, path(req, "job_id")?, body(req)?).await?)
            }
            "POST /v2/apps/{app_id}/mix-stream-jobs/{job_id}/stop" => {
                json(200, &service.stop_job(&account, app_id, path(req, "job_id")?, true).await?)
            }
            "GET /v2/apps/{app_id}/mix-stream-jobs/{job_id}/events" => {
                let job_id = path(req, "job_id")?;
                let events = service.job_events(&account, app_id, job_id, true).await?;
                json(200, &serde_json::json!({ "job_id": job_id, "events": events }))
            }
            "POST /v2/apps/{app_id}/mix-stream-jobs/{job_id}/events/{event_id}/redeliver" => {
                let (job_id, event_id) = (path(req, "job_id")?, path(req, "event_id")?);
                json(202, &service.redeliver_event(&account, app_id, job_id, true, event_id).await?)
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}
