//! Every kind of bad input gets a 4xx whose message starts with the field at fault, and leaves
//! what was stored untouched.

use reqwest::{Method, StatusCode};
use roomrec_tests::{seed_rule, Api};
use serde_json::json;

struct Case {
    what: &'static str,
    method: Method,
    /// `{app}`, `{rule}` and `{job}` are replaced by real ids.
    path: &'static str,
    body: Option<String>,
    status: u16,
    field: &'static str,
}

fn case(
    what: &'static str,
    method: Method,
    path: &'static str,
    body: serde_json::Value,
    status: u16,
    field: &'static str,
) -> Case {
    Case { what, method, path, body: Some(body.to_string()), status, field }
}

fn cases() -> Vec<Case> {
    let rules = "/v2/apps/{app}/record-rules";
    let jobs = "/v2/apps/{app}/individual-stream-jobs";
    let mix = "/v2/apps/{app}/mix-stream-jobs";
    let callback = "/v2/apps/{app}/record-callback";
    let stream = "/v2/apps/{app}/rooms/room1/streams/u1";
    let rule_ref = json!({ "record_rule_id": "{rule}" });
    let job = |extra: serde_json::Value| {
        let mut body = json!({ "room_id": "r1", "user_id": "u1", "record_param": rule_ref });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let mix_job = |extra: serde_json::Value| {
        let mut param = json!({ "room_id": "r1", "encode_template": "1280x720_30_1500" });
        param.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({ "mix_param": param, "record_param": rule_ref })
    };
    let panes: Vec<_> = (1..=26).map(|i| json!({ "id": i, "user_id": format!("u{i}") })).collect();
    let images_65: Vec<_> =
        (0..65).map(|i| json!({ "user_id": format!("u{i}"), "image": "s3://b12/bg.png" })).collect();
    let obs = |extra: serde_json::Value| {
        let mut obs_addr = json!({ "bucket": "b12", "location": "eu-west-1" });
        obs_addr.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({ "obs_addr": obs_addr, "record_formats": ["MP4"] })
    };
    let prefix = |format: &str, prefix: &str| json!({ "obs_addr": { "bucket": "b12", "location": "eu-west-1" }, "record_formats": ["MP4"], format: { "record_prefix": prefix } });
    let key = "k".repeat(1000);
    let zeros = "0".repeat(500_000);
    let big_images: Vec<_> =
        (0..600).map(|i| json!({ "user_id": format!("u{i}"), "image": format!("s3://b12/{key}") })).collect();
    vec![
        Case {
            what: "malformed JSON",
            method: Method::POST,
            path: "/v2/apps",
            body: Some("{\"app_name\": ".into()),
            status: 400,
            field: "body",
        },
        Case { what: "empty body", method: Method::POST, path: "/v2/apps", body: None, status: 400, field: "body" },
        case("missing app_name", Method::POST, "/v2/apps", json!({}), 400, "app_name"),
        case("app_name of the wrong type", Method::POST, "/v2/apps", json!({ "app_name": 7 }), 400, "app_name"),
        case("unknown app field", Method::POST, "/v2/apps", json!({ "app_name": "a", "colour": "red" }), 400, "colour"),
        case(
            "stream template with a foreign variable",
            Method::POST,
            "/v2/apps",
            json!({ "app_name": "a", "stream_url_template": "rtmp://h/{stream}" }),
            400,
            "stream_url_template",
        ),
        case(
            "HLS record_cycle below 60",
            Method::POST,
            rules,
            json!({ "obs_addr": { "bucket": "b12", "location": "eu-west-1" }, "record_formats": ["HLS"], "hls_config": { "record_cycle": 30 } }),
            400,
            "hls_config.record_cycle",
        ),
        case(
            "HLS slice of 1 s",
            Method::POST,
            rules,
            json!({ "obs_addr": { "bucket": "b12", "location": "eu-west-1" }, "record_formats": ["HLS"], "hls_config": { "record_slice_duration": 1 } }),
            400,
            "hls_config.record_slice_duration",
        ),
        case(
            "MP4 record_cycle over 3 h",
            Method::POST,
            rules,
            json!({ "obs_addr": { "bucket": "b12", "location": "eu-west-1" }, "record_formats": ["MP4"], "mp4_config": { "record_cycle": 10801 } }),
            400,
            "mp4_config.record_cycle",
        ),
        case(
            "negative record_cycle",
            Method::POST,
            rules,
            json!({ "obs_addr": { "bucket": "b12", "location": "eu-west-1" }, "record_formats": ["MP4"], "mp4_config": { "record_cycle": -5 } }),
            400,
            "mp4_config.record_cycle",
        ),
        case(
            "unknown record format",
            Method::POST,
            rules,
            json!({ "obs_addr": { "bucket": "b12", "location": "eu-west-1" }, "record_formats": ["FLV"] }),
            400,
            "record_formats[0]",
        ),
        case(
            "bad bucket name",
            Method::POST,
            rules,
            json!({ "obs_addr": { "bucket": "a b", "location": "eu-west-1" }, "record_formats": ["MP4"] }),
            400,
            "obs_addr.bucket",
        ),
        case(
            "record_prefix with an unknown variable",
            Method::POST,
            rules,
            json!({ "obs_addr": { "bucket": "b12", "location": "eu-west-1" }, "record_formats": ["MP4"], "mp4_config": { "record_prefix": "x/{secret}" } }),
            400,
            "mp4_config.record_prefix",
        ),
        case("missing obs_addr", Method::POST, rules, json!({ "record_formats": ["MP4"] }), 400, "obs_addr"),
        case(
            "auth_key shorter than 32",
            Method::PUT,
            callback,
            json!({ "url": "https://a.example.com/cb", "auth_key": "short" }),
            400,
            "auth_key",
        ),
        case(
            "auth_key longer than 64",
            Method::PUT,
            callback,
            json!({ "url": "https://a.example.com/cb", "auth_key": "k".repeat(65) }),
            400,
            "auth_key",
        ),
        case(
            "callback over ftp",
            Method::PUT,
            callback,
            json!({ "url": "ftp://a.example.com/cb", "auth_key": "k".repeat(32) }),
            400,
            "url",
        ),
        case(
            "unknown callback event",
            Method::PUT,
            callback,
            json!({ "url": "https://a.example.com/cb", "auth_key": "k".repeat(32), "notify_event_subscription": ["EVERYTHING"] }),
            400,
            "notify_event_subscription[0]",
        ),
        case("file:// stream URL", Method::PUT, stream, json!({ "url": "file:///etc/passwd" }), 400, "url"),
        case("concat: stream URL", Method::PUT, stream, json!({ "url": "concat:/a|/b" }), 400, "url"),
        case(
            "stream with neither audio nor video",
            Method::PUT,
            stream,
            json!({ "url": "rtmp://h/a", "has_audio": false, "has_video": false }),
            400,
            "has_video",
        ),
        case(
            "room id with a dot",
            Method::PUT,
            "/v2/apps/{app}/rooms/room.1/streams/u1",
            json!({ "url": "rtmp://h/a" }),
            400,
            "room_id",
        ),
        case("resolution that is not W*H", Method::POST, jobs, job(json!({ "resolution": "huge" })), 400, "resolution"),
        case("max_idle_time below 5", Method::POST, jobs, job(json!({ "max_idle_time": 1 })), 400, "max_idle_time"),
        case("unknown video_type", Method::POST, jobs, job(json!({ "video_type": "HOLOGRAM" })), 400, "video_type"),
        case(
            "unknown resolution_policy",
            Method::POST,
            jobs,
            job(json!({ "resolution": "640*360", "resolution_policy": "SIDEWAYS" })),
            400,
            "resolution_policy",
        ),
        case(
            "missing record_param",
            Method::POST,
            jobs,
            json!({ "room_id": "r1", "user_id": "u1" }),
            400,
            "record_param",
        ),
        case(
            "missing user_id",
            Method::POST,
            jobs,
            json!({ "room_id": "r1", "record_param": rule_ref }),
            400,
            "user_id",
        ),
        case(
            "bad encode_template",
            Method::POST,
            mix,
            mix_job(json!({ "encode_template": "1920x1080@30" })),
            400,
            "mix_param.encode_template",
        ),
        case(
            "unknown layout",
            Method::POST,
            mix,
            mix_job(json!({ "layout_template": "picture_in_picture" })),
            400,
            "mix_param.layout_template",
        ),
        case("26 panes", Method::POST, mix, mix_job(json!({ "layout_panes": panes })), 400, "mix_param.layout_panes"),
        // Oversized bodies: a job or a rule is one DynamoDB item (400 KB at most), which refused
        // these with a 500 until they were bounded; past 128 KiB a body is refused as a whole.
        case(
            "600 user background images of 1000-byte keys (a 600 KB job)",
            Method::POST,
            mix,
            mix_job(json!({ "user_background_images": big_images })),
            413,
            "body",
        ),
        case(
            "a resolution padded with 500 KB of zeros",
            Method::POST,
            jobs,
            job(json!({ "resolution": format!("{zeros}1280*720") })),
            413,
            "body",
        ),
        case(
            "an encode template padded with 500 KB of zeros",
            Method::POST,
            mix,
            mix_job(json!({ "encode_template": format!("{zeros}640x360_15_500") })),
            413,
            "body",
        ),
        case(
            "a 500 KB project_id",
            Method::POST,
            rules,
            obs(json!({ "project_id": "p".repeat(500_000) })),
            413,
            "body",
        ),
        // Every bound, one past it.
        case(
            "app_name of 129 characters",
            Method::POST,
            "/v2/apps",
            json!({ "app_name": "a".repeat(129) }),
            400,
            "app_name",
        ),
        case(
            "project_id of 65 characters",
            Method::POST,
            rules,
            obs(json!({ "project_id": "p".repeat(65) })),
            400,
            "obs_addr.project_id",
        ),
        case(
            "object of 257 bytes",
            Method::POST,
            rules,
            obs(json!({ "object": "o".repeat(257) })),
            400,
            "obs_addr.object",
        ),
        case(
            "record_prefix of 513 characters",
            Method::POST,
            rules,
            prefix("mp4_config", &format!("{{job_id}}{}", "p".repeat(505))),
            400,
            "mp4_config.record_prefix",
        ),
        case("user_id of 65 characters", Method::POST, jobs, job(json!({ "user_id": "u".repeat(65) })), 400, "user_id"),
        case(
            "65 user background images",
            Method::POST,
            mix,
            mix_job(json!({ "user_background_images": images_65 })),
            400,
            "mix_param.user_background_images",
        ),
        case(
            "stream URL of 2049 characters",
            Method::PUT,
            stream,
            json!({ "url": format!("rtmp://h/{}", "a".repeat(2040)) }),
            400,
            "url",
        ),
        // Keys: unique per job, within S3's 1,024 bytes, no control characters.
        case(
            "record_prefix without {job_id} or {stream}",
            Method::POST,
            rules,
            prefix("mp4_config", "recordings/{room_id}/{user_id}"),
            400,
            "mp4_config.record_prefix",
        ),
        case(
            "record_prefix whose longest key passes 1024 bytes",
            Method::POST,
            rules,
            json!({ "obs_addr": { "bucket": "b12", "location": "eu-west-1", "object": "o".repeat(256) }, "record_formats": ["HLS"] }),
            400,
            "hls_config.record_prefix",
        ),
        case(
            "record_prefix with an escape character",
            Method::POST,
            rules,
            prefix("hls_config", "{job_id}\u{1b}[2J"),
            400,
            "hls_config.record_prefix",
        ),
        case("object with a NUL", Method::POST, rules, obs(json!({ "object": "rec\u{0}/" })), 400, "obs_addr.object"),
        case(
            "project_id with a newline",
            Method::POST,
            rules,
            obs(json!({ "project_id": "p\n1" })),
            400,
            "obs_addr.project_id",
        ),
        case("app_name with a bell", Method::POST, "/v2/apps", json!({ "app_name": "a\u{7}b" }), 400, "app_name"),
        case(
            "pane id 0",
            Method::POST,
            mix,
            mix_job(json!({ "layout_panes": [{ "id": 0, "user_id": "u1" }] })),
            400,
            "mix_param.layout_panes[0].id",
        ),
        case(
            "background image that is not s3://",
            Method::POST,
            mix,
            mix_job(json!({ "background_image": "http://169.254.169.254/latest" })),
            400,
            "mix_param.background_image",
        ),
        case(
            "background colour that is not #RRGGBB",
            Method::POST,
            mix,
            mix_job(json!({ "background_color": "blue" })),
            400,
            "mix_param.background_color",
        ),
        case(
            "mix max_idle_time over 12 h",
            Method::POST,
            mix,
            mix_job(json!({ "max_idle_time": 43201 })),
            400,
            "mix_param.max_idle_time",
        ),
        Case {
            what: "unknown state filter",
            method: Method::GET,
            path: "/v2/apps/{app}/individual-stream-jobs?state=DONE",
            body: None,
            status: 400,
            field: "state",
        },
        Case {
            what: "page too large",
            method: Method::GET,
            path: "/v2/apps/{app}/individual-stream-jobs?limit=1000",
            body: None,
            status: 400,
            field: "limit",
        },
        Case {
            what: "unknown app",
            method: Method::GET,
            path: "/v2/apps/0123456789abcdef01234567",
            body: None,
            status: 404,
            field: "app_id",
        },
        Case {
            what: "malformed app id",
            method: Method::GET,
            path: "/v2/apps/not-an-id/record-rules",
            body: None,
            status: 404,
            field: "app_id",
        },
        Case {
            what: "unknown rule",
            method: Method::GET,
            path: "/v2/apps/{app}/record-rules/0123456789abcdef0123456789abcdef",
            body: None,
            status: 404,
            field: "rule_id",
        },
        Case {
            what: "unknown job",
            method: Method::GET,
            path: "/v2/apps/{app}/mix-stream-jobs/0123456789abcdef0123456789abcdef",
            body: None,
            status: 404,
            field: "job_id",
        },
        Case {
            what: "stop of an unknown job",
            method: Method::POST,
            path: "/v2/apps/{app}/individual-stream-jobs/0123456789abcdef0123456789abcdef/stop",
            body: None,
            status: 404,
            field: "job_id",
        },
    ]
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_a_4xx_naming_its_field() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let before = api.get(&format!("/v2/apps/{app}/record-rules/{rule}")).await.body;
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for case in &cases {
        let path = case.path.replace("{app}", &app).replace("{rule}", &rule);
        let body = case.body.as_ref().map(|b| b.replace("{rule}", &rule));
        let reply = api.raw(case.method.clone(), &path, body).await;
        let code_ok = reply.body["error_code"].as_str().is_some_and(|c| !c.is_empty());
        let names_field = reply.error_msg().starts_with(&format!("{}:", case.field));
        if reply.status.as_u16() != case.status || !code_ok || !names_field {
            failures.push(format!("{}: got {} {}", case.what, reply.status, reply.body));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!(api.get(&format!("/v2/apps/{app}/record-rules/{rule}")).await.body, before, "bad input changed nothing");
    let listed = api.get(&format!("/v2/apps/{app}/individual-stream-jobs")).await.body;
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(0), "no job was created");
}

#[tokio::test]
async fn an_update_with_a_bad_value_keeps_the_stored_rule() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let path = format!("/v2/apps/{app}/record-rules/{rule}");
    let reply =
        api.put(&path, &json!({ "mp4_config": { "record_cycle": 600 }, "hls_config": { "record_cycle": 5 } })).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(api.get(&path).await.body["mp4_config"]["record_cycle"], 7200);
}

/// A client of the gateway with one pooled connection, as a browser or SDK keeps one alive.
fn one_connection() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().pool_max_idle_per_host(1).build().unwrap()
}

#[tokio::test]
async fn a_body_not_declared_json_answers_415_naming_the_header_and_changes_nothing() {
    let api = Api::new_account().await;
    let (key_id, secret) = api.credential();
    let base = roomrec_tests::stack_env("ROOMREC_HTTP_URL");
    let http = one_connection();
    // What a cross-site form can send: text/plain, urlencoded, multipart; and no type at all.
    for content_type in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data"), None]
    {
        let mut request =
            http.post(format!("{base}/v2/apps")).basic_auth(key_id, Some(secret)).body(r#"{"app_name":"forged"}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error_code"], "UNSUPPORTED_MEDIA_TYPE");
        assert!(body["error_msg"].as_str().unwrap().starts_with("content-type:"), "{body}");
        assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    }
    assert_eq!(api.get("/v2/apps").await.body["total"], 0, "no app was created");
}

#[tokio::test]
async fn a_413_closes_its_connection_cleanly_and_the_next_request_is_answered() {
    let api = Api::new_account().await;
    let (key_id, secret) = api.credential();
    let base = roomrec_tests::stack_env("ROOMREC_HTTP_URL");
    let http = one_connection();
    let list = || http.get(format!("{base}/v2/apps")).basic_auth(key_id, Some(secret)).send();
    assert_eq!(list().await.unwrap().status(), StatusCode::OK, "the connection is open");

    // Past the functions' 128 KiB: the function answers, the body was read, the connection stays.
    let over = format!(r#"{{"app_name":"{}"}}"#, "a".repeat(128 * 1024));
    let post = |body: String| {
        http.post(format!("{base}/v2/apps"))
            .basic_auth(key_id, Some(secret))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = post(over).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], "PAYLOAD_TOO_LARGE", "{body}");
    assert!(body["error_msg"].as_str().unwrap().starts_with("body:"), "{body}");
    assert_eq!(list().await.unwrap().status(), StatusCode::OK);

    // Past what reaches a function (Lambda's 6 MB): the gateway answers before reading it all,
    // so it drains the rest and closes the connection; the client's next request is answered.
    let response = post("x".repeat(7 * 1024 * 1024)).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers().get("connection").map(|v| v.as_bytes()), Some(&b"close"[..]));
    response.bytes().await.unwrap();
    for _ in 0..3 {
        assert_eq!(list().await.unwrap().status(), StatusCode::OK, "the next request is answered");
    }
}
