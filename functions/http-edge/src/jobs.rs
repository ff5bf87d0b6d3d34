//! The routes both job collections share (`individual-stream-jobs`, `mix-stream-jobs`):
//! list, get, stop, pause, resume, the job's events, and its HLS playlists with presigned
//! segments. Each job function adds its own create (and the mix its layout update) and hands
//! every other route here.

use lambda_http::Request;
use roomrec_domain::job::JobKind;
use roomrec_domain::usecases::{Files, JobEvents, Jobs, OwnedApp};
use roomrec_domain::Invalid;

use crate::{job_filter, job_list, job_page, json, path, playlist, query, route_key, ApiError, ApiResult};

/// The use cases [`job_routes`] serves.
#[derive(Clone, Copy)]
pub struct JobUseCases<'a> {
    pub jobs: &'a Jobs,
    pub events: &'a JobEvents,
    pub files: &'a Files,
}

/// Answers a route of `kind`'s collection that every job kind has.
pub async fn job_routes(cases: JobUseCases<'_>, kind: JobKind, app: &OwnedApp, req: &Request) -> ApiResult {
    let JobUseCases { jobs, events, files } = cases;
    let prefix = format!("/v2/apps/{{app_id}}/{}", kind.collection());
    let route = route_key(req);
    let Some((method, rest)) = route.split_once(' ').and_then(|(m, p)| Some((m, p.strip_prefix(prefix.as_str())?)))
    else {
        return Err(ApiError::unknown_route());
    };
    match (method, rest) {
        ("GET", "") => job_list(jobs.list(app, &job_filter(req, kind)?, &job_page(req)?).await?),
        ("GET", "/{job_id}") => json(200, &files.get(app, kind, path(req, "job_id")?).await?),
        ("POST", "/{job_id}/stop") => {
            json(200, &files.signed(app, jobs.stop(app, kind, path(req, "job_id")?).await?).await)
        }
        ("POST", "/{job_id}/pause") => {
            json(200, &files.signed(app, jobs.pause(app, kind, path(req, "job_id")?).await?).await)
        }
        ("POST", "/{job_id}/resume") => {
            json(200, &files.signed(app, jobs.resume(app, kind, path(req, "job_id")?).await?).await)
        }
        ("GET", "/{job_id}/playback.m3u8") => {
            let object = query(req, "object").ok_or_else(|| Invalid::new("object", "is required"))?;
            playlist(files.playback(app, kind, path(req, "job_id")?, &object).await?)
        }
        ("GET", "/{job_id}/events") => {
            let job_id = path(req, "job_id")?;
            let listed = events.list(app, kind, job_id).await?;
            json(200, &serde_json::json!({ "job_id": job_id, "events": listed }))
        }
        ("POST", "/{job_id}/events/{event_id}/redeliver") => {
            let (job_id, event_id) = (path(req, "job_id")?, path(req, "event_id")?);
            json(202, &events.redeliver(app, kind, job_id, event_id).await?)
        }
        _ => Err(ApiError::unknown_route()),
    }
}
