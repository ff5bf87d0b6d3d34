//! `/v2/apps/{app_id}/jocloud/{verb}`: Jocloud / ThunderBolt cloud recording (seed 003) over
//! the same jobs: `applyrecord` reserves a resource (POST only: a GET that changes state is
//! one a cross-site page can make with the browser's credentials), `startrecord` starts a recording with
//! it, `updatemixrecord` changes a mix's layout, `stoprecord` stops, `queryrecord` reports.
//!
//! Successful answers are 200 with Jocloud's `"code": 0, "message": "success"` (and the
//! request's `traceId` query parameter echoed); errors are the API's usual
//! `{"error_code", "error_msg"}` with a 4xx/5xx status.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::jocloud::Reservation;
use roomrec_http_edge::{body, json, optional_body, query, route_key, serve_app, ApiError, ApiResult};
use serde::Serialize;

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let (jocloud, req) = (&deps.jocloud, &req);
    serve_app(&deps.access, req, |app| async move {
        match route_key(req) {
            "POST /v2/apps/{app_id}/jocloud/applyrecord" => {
                success(req, &reserved(jocloud.apply_record(&app, optional_body(req)?).await?))
            }
            "POST /v2/apps/{app_id}/jocloud/startrecord" => {
                success(req, &jocloud.start_record(&app, body(req)?).await?)
            }
            "POST /v2/apps/{app_id}/jocloud/updatemixrecord" => {
                success(req, &jocloud.update_mix_record(&app, body(req)?).await?)
            }
            "POST /v2/apps/{app_id}/jocloud/stoprecord" => success(req, &jocloud.stop_record(&app, body(req)?).await?),
            "POST /v2/apps/{app_id}/jocloud/queryrecord" => {
                success(req, &jocloud.query_record(&app, body(req)?).await?)
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}

/// `applyrecord`'s answer.
fn reserved(reservation: Reservation) -> serde_json::Value {
    serde_json::json!({
        "resid": reservation.resid,
        "expire_time": reservation.expire_time(),
        "roomid": reservation.room_id,
    })
}

/// 200 with `value`'s fields beside Jocloud's `code`, `message` and `traceId`.
fn success<T: Serialize>(req: &Request, value: &T) -> ApiResult {
    let mut answer = serde_json::to_value(value).map_err(|e| ApiError::internal(&e))?;
    if let Some(fields) = answer.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
        fields.insert("code".into(), 0.into());
        fields.insert("message".into(), "success".into());
        if let Some(trace) = query(req, "traceId") {
            fields.insert("traceId".into(), trace.into());
        }
    }
    json(200, &answer)
}
