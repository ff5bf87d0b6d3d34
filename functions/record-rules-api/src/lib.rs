//! `/v2/apps/{app_id}/record-rules`: where and how an app's recordings are stored.

use lambda_http::{Body, Request, Response};
use roomrec_adapters::Deps;
use roomrec_domain::rule::RecordRule;
use roomrec_http_edge::{body, json, no_content, path, route_key, serve, ApiError};
use serde::Serialize;

/// The list response.
#[derive(Serialize)]
struct RuleList {
    total: usize,
    record_rules: Vec<RecordRule>,
}

/// Answers one request routed to this function.
pub async fn handle(deps: &Deps, req: Request) -> Response<Body> {
    let service = &deps.service;
    let req = &req;
    serve(service, req, |account| async move {
        let app_id = path(req, "app_id")?;
        match route_key(req) {
            "POST /v2/apps/{app_id}/record-rules" => {
                json(201, &service.create_rule(&account, app_id, body(req)?).await?)
            }
            "GET /v2/apps/{app_id}/record-rules" => {
                let rules = service.list_rules(&account, app_id).await?;
                json(200, &RuleList { total: rules.len(), record_rules: rules })
            }
            "GET /v2/apps/{app_id}/record-rules/{rule_id}" => {
                json(200, &service.get_rule(&account, app_id, path(req, "rule_id")?).await?)
            }
            "PUT /v2/apps/{app_id}/record-rules/{rule_id}" => {
                json(200, &service.update_rule(&account, app_id, path(req, "rule_id")?, body(req)?).await?)
            }
            "DELETE /v2/apps/{app_id}/record-rules/{rule_id}" => {
                service.delete_rule(&account, app_id, path(req, "rule_id")?).await?;
                no_content()
            }
            _ => Err(ApiError::unknown_route()),
        }
    })
    .await
}
