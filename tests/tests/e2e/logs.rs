//! What an operator finds in the logs: each request once, as JSON, under the id API Gateway
//! returns in `apigw-requestid`.

use std::time::Duration;

use roomrec_domain::ids::AccountId;
use roomrec_tests::{deps, json_log_lines, stack_env, unique, Api};
use serde_json::Value;

/// The gateway's log lines that name `request_id`, each parsed as JSON; waits up to `wait` for
/// at least one.
fn lines_of(request_id: &str, wait: Duration) -> Vec<Value> {
    json_log_lines("gateway", &[request_id], |line| line["request_id"] == request_id, wait)
}

#[tokio::test]
async fn a_request_is_logged_once_at_info_as_json_under_the_id_the_gateway_returns() {
    let account = unique("acct");
    let access = deps().await.access;
    let api = Api::issue(&access, stack_env("ROOMREC_HTTP_URL"), AccountId::try_from(account.clone()).unwrap())
        .await
        .unwrap();
    let app = api.create_app("logged").await.unwrap();
    let (key_id, secret) = api.credential();
    let response = reqwest::Client::new()
        .get(format!("{}/v2/apps/{app}", stack_env("ROOMREC_HTTP_URL")))
        .basic_auth(key_id, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["apigw-requestid"].to_str().unwrap().to_owned();
    assert!(!request_id.is_empty());

    let lines = lines_of(&request_id, Duration::from_secs(5));
    let requests: Vec<&Value> = lines.iter().filter(|l| l["level"] == "INFO" && l["message"] == "request").collect();
    assert_eq!(requests.len(), 1, "one request line for {request_id}: {lines:#?}");
    let line = requests[0];
    assert_eq!((line["method"].as_str(), line["route"].as_str()), (Some("GET"), Some("/v2/apps/{app_id}")), "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["latency_ms"].is_u64(), "{line}");
    assert_eq!((line["account"].as_str(), line["app_id"].as_str()), (Some(account.as_str()), Some(app.as_str())));
    assert!(line["timestamp"].is_string(), "{line}");
}

#[tokio::test]
async fn a_refused_request_is_logged_with_its_status_too() {
    let response = reqwest::Client::new()
        .get(format!("{}/v2/apps", stack_env("ROOMREC_HTTP_URL")))
        .basic_auth("nobody", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let request_id = response.headers()["apigw-requestid"].to_str().unwrap().to_owned();
    let lines = lines_of(&request_id, Duration::from_secs(5));
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 1, "{lines:#?}");
    assert_eq!((requests[0]["level"].as_str(), requests[0]["status"].as_u64()), (Some("INFO"), Some(401)));
    assert!(requests[0].get("account").is_none(), "no account was authenticated: {}", requests[0]);
}
