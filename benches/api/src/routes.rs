//! The benchmarked routes and the fixture they act on, created through the local gateway.

use anyhow::Result;
use reqwest::Method;
use roomrec_testkit::api::{seed_rule, Api, Jobs};
use serde_json::{json, Value};

/// Room and user of the fixture's stream and job.
pub const ROOM: &str = "room001";
/// See [`ROOM`].
pub const USER: &str = "user001";

/// One benchmarked route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    CreateApp,
    GetApp,
    CreateRule,
    GetRule,
    PutCallback,
    PutStream,
    CreateJob,
    GetJob,
}

impl Route {
    /// Every benchmarked route, in the order the table lists them.
    pub const ALL: [Route; 8] = [
        Route::CreateApp,
        Route::GetApp,
        Route::CreateRule,
        Route::GetRule,
        Route::PutCallback,
        Route::PutStream,
        Route::CreateJob,
        Route::GetJob,
    ];

    /// The route as template.yaml names it.
    pub fn label(self) -> &'static str {
        match self {
            Route::CreateApp => "POST /v2/apps",
            Route::GetApp => "GET /v2/apps/{app_id}",
            Route::CreateRule => "POST /v2/apps/{app_id}/record-rules",
            Route::GetRule => "GET /v2/apps/{app_id}/record-rules/{rule_id}",
            Route::PutCallback => "PUT /v2/apps/{app_id}/record-callback",
            Route::PutStream => "PUT /v2/apps/{app_id}/rooms/{room_id}/streams/{user_id}",
            Route::CreateJob => "POST /v2/apps/{app_id}/individual-stream-jobs",
            Route::GetJob => "GET /v2/apps/{app_id}/individual-stream-jobs/{job_id}",
        }
    }
}

/// The ids the routes act on, created through the gateway before anything is timed.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub key_id: String,
    pub app_id: String,
    pub rule_id: String,
    pub job_id: String,
}

/// The individual-job body of the seeds (tests/tests/e2e/jobs.rs `seed_individual_job`).
fn job_body(rule_id: &str) -> Value {
    json!({
        "room_id": ROOM, "user_id": USER, "is_record_audio": true, "video_type": "CAMERASTREAM",
        "resolution": "1280*720", "resolution_policy": "DOWNWARD", "max_idle_time": 30,
        "record_param": { "record_rule_id": rule_id }
    })
}

/// Creates, through `api`, the app, rule, callback, stream and job the routes read and write.
pub async fn fixture(api: &Api) -> Result<Fixture> {
    let app_id = api.create_app("bench").await?;
    let rule_id = api.create_rule(&app_id, &seed_rule()).await?;
    let mut fixture = Fixture { key_id: api.credential().0.to_owned(), app_id, rule_id, job_id: String::new() };
    for route in [Route::PutCallback, Route::PutStream] {
        let (method, path, body) = request(route, &fixture);
        api.call(method, &path, body.as_ref()).await?;
    }
    fixture.job_id = api.create_job(&fixture.app_id, Jobs::Individual, &job_body(&fixture.rule_id)).await?;
    Ok(fixture)
}

/// Method, path and body of one request to `route`.
pub fn request(route: Route, f: &Fixture) -> (Method, String, Option<Value>) {
    let app = &f.app_id;
    match route {
        Route::CreateApp => (Method::POST, "/v2/apps".to_owned(), Some(json!({ "app_name": "bench" }))),
        Route::GetApp => (Method::GET, format!("/v2/apps/{app}"), None),
        Route::CreateRule => (Method::POST, format!("/v2/apps/{app}/record-rules"), Some(seed_rule())),
        Route::GetRule => (Method::GET, format!("/v2/apps/{app}/record-rules/{}", f.rule_id), None),
        Route::PutCallback => (
            Method::PUT,
            format!("/v2/apps/{app}/record-callback"),
            Some(json!({ "url": "http://mydomain.com/callback", "auth_key": "8923ab8c2dcef4538923ab8c2dcef453" })),
        ),
        Route::PutStream => (
            Method::PUT,
            format!("/v2/apps/{app}/rooms/{ROOM}/streams/{USER}"),
            Some(json!({ "url": "rtmp://media.example.com/live/x" })),
        ),
        Route::CreateJob => {
            (Method::POST, format!("/v2/apps/{app}/individual-stream-jobs"), Some(job_body(&f.rule_id)))
        }
        Route::GetJob => (Method::GET, format!("/v2/apps/{app}/individual-stream-jobs/{}", f.job_id), None),
    }
}
