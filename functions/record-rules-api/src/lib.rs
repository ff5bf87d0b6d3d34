//! `/v2/apps/{app_id}/record-rules`: where and how an app's recordings are stored.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::rule::RecordRule;
use roomrec_http_edge::{body, json, no_content, path, route_key, serve_app, ApiError};
use serde::Serialize;

/// The list response.
#[derive(Serialize)]
struct RuleList {
    total: usize,
    record_rules: Vec<RecordRule>,
}

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let (rules, req) = (&deps.rules, &req);
    serve_app(&deps.access, req, |app| async move {
        match route_key(req) {
            "POST /v2/apps/{app_id}/record-rules" => {
                let saved = rules.create_or_update(&app, body(req)?).await?;
                json(if saved.created { 201 } else { 200 }, &saved.rule)
            }
            "GET /v2/apps/{app_id}/record-rules" => {
                let record_rules = rules.list(&app).await?;
                json(200, &RuleList { total: record_rules.len(), record_rules })
            }
            "GET /v2/apps/{app_id}/record-rules/{rule_id}" => json(200, &rules.get(&app, path(req, "rule_id")?).await?),
            "PUT /v2/apps/{app_id}/record-rules/{rule_id}" => {
                json(200, &rules.update(&app, path(req, "rule_id")?, body(req)?).await?)
            }
            "DELETE /v2/apps/{app_id}/record-rules/{rule_id}" => {
                rules.delete(&app, path(req, "rule_id")?).await?;
                no_content()
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}
