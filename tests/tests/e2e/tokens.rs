//! SparkRTC's authentication: a token from IAM's `POST /v3/auth/tokens` (password method, the
//! key id as user name and the secret as password) sent as `X-Auth-Token` — by hand as seed
//! 002 does, and by Huawei Cloud's own IAM SDK for Node.js.

use reqwest::StatusCode;
use roomrec_domain::ids::KeyId;
use roomrec_domain::ports::CredentialStore;
use roomrec_tests::{seed_rule, stack_env, store, Api};
use serde_json::{json, Value};

/// A plain client of the gateway, sending only what a test says.
fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn tokens_url() -> String {
    format!("{}/v3/auth/tokens", stack_env("ROOMREC_HTTP_URL"))
}

#[tokio::test]
async fn seed_002_flow_runs_with_an_x_auth_token_from_v3_auth_tokens() {
    let api = Api::new_account().await;
    let token = api.obtain_token().await.unwrap();
    let api = api.with_token(&token);

    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let callback = json!({ "url": "http://mydomain.com/callback", "auth_key": "8923ab8c2dcef4538923ab8c2dcef453" });
    api.set_callback(&app, &callback).await.unwrap();
    let job = json!({
        "room_id": "room001", "user_id": "user001", "is_record_audio": true, "video_type": "CAMERASTREAM",
        "resolution": "1280*720", "resolution_policy": "DOWNWARD", "max_idle_time": 30,
        "record_param": { "record_rule_id": rule }
    });
    let reply = api.post(&format!("/v2/apps/{app}/individual-stream-jobs"), &job).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let job_id = reply.body["job_id"].as_str().unwrap().to_owned();
    let got = api.get(&format!("/v2/apps/{app}/individual-stream-jobs/{job_id}")).await;
    assert_eq!((got.status, got.body["room_id"].as_str()), (StatusCode::OK, Some("room001")));
    let listed = api.get("/v2/apps").await;
    assert_eq!(listed.body["apps"][0]["app_id"], app.as_str(), "the token's account sees its app");

    let stranger = Api::new_account().await;
    let theirs = stranger.with_token(&stranger.obtain_token().await.unwrap());
    assert_eq!(theirs.get(&format!("/v2/apps/{app}")).await.status, StatusCode::NOT_FOUND, "another account's token");
}

#[tokio::test]
async fn the_token_route_answers_like_iam_and_ignores_an_sdk_hmac_authorization_header() {
    let api = Api::new_account().await;
    let response = http()
        .post(tokens_url())
        .header("authorization", "SDK-HMAC-SHA256 Access=AKNOTOURS, SignedHeaders=host;x-sdk-date, Signature=00ff")
        .header("x-sdk-date", "20260101T000000Z")
        .json(&api.token_request())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let token = response.headers()["x-subject-token"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token"]["methods"], json!(["password"]));
    let time = |field: &str| chrono::DateTime::parse_from_rfc3339(body["token"][field].as_str().unwrap()).unwrap();
    assert_eq!((time("expires_at") - time("issued_at")).num_hours(), 24, "{body}");
    assert_eq!(body["token"]["user"]["name"], api.credential().0);
    assert_eq!(api.with_token(&token).get("/v2/apps").await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_credentials_get_401_and_a_malformed_body_400_naming_the_field() {
    let api = Api::new_account().await;
    let post = |body: Value| async move { http().post(tokens_url()).json(&body).send().await.unwrap() };
    let wrong = api.with_credentials(api.credential().0, &"0".repeat(64)).token_request();
    let response = post(wrong).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error_code"], "UNAUTHORIZED", "{error}");

    let mut no_password = api.token_request();
    no_password["auth"]["identity"]["password"]["user"].as_object_mut().unwrap().remove("password");
    let mut token_method = api.token_request();
    token_method["auth"]["identity"]["methods"] = json!(["token"]);
    for (body, field) in [
        (no_password, "auth.identity.password.user.password"),
        (token_method, "auth.identity.methods"),
        (json!({ "identity": {} }), "auth"),
    ] {
        let response = post(body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let error: Value = response.json().await.unwrap();
        assert!(error["error_msg"].as_str().unwrap().starts_with(&format!("{field}:")), "{field}: {error}");
    }
}

#[tokio::test]
async fn a_token_stops_working_once_its_credential_is_removed_and_a_forged_one_never_works() {
    let api = Api::new_account().await;
    let token = api.obtain_token().await.unwrap();
    let with_token = api.with_token(&token);
    assert_eq!(with_token.get("/v2/apps").await.status, StatusCode::OK);

    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    for bad in [forged.as_str(), "not-a-token"] {
        let reply = api.with_token(bad).get("/v2/apps").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(reply.body["error_code"], "UNAUTHORIZED");
    }

    store().await.delete_credential(&KeyId::parse(api.credential().0).unwrap()).await.unwrap();
    assert_eq!(with_token.get("/v2/apps").await.status, StatusCode::UNAUTHORIZED, "credential removed");
}

#[tokio::test]
async fn huawei_clouds_iam_sdk_for_node_gets_a_token_that_authenticates_api_calls() {
    let api = Api::new_account().await;
    let app = api.create_app("sdk").await.unwrap();
    let (key_id, secret) = api.credential();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/iam-sdk/token.js");
    let out = tokio::process::Command::new("node")
        .arg(script)
        .env("ROOMREC_HTTP_URL", stack_env("ROOMREC_HTTP_URL"))
        .env("KEY_ID", key_id)
        .env("SECRET", secret)
        .output()
        .await
        .expect("node runs (infra/local/install.sh installs it and the SDK)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK got no token: {stderr}");
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["methods"], json!(["password"]));
    let reply = api.with_token(got["token"].as_str().unwrap()).get(&format!("/v2/apps/{app}")).await;
    assert_eq!((reply.status, reply.body["app_id"].as_str()), (StatusCode::OK, Some(app.as_str())));
}
