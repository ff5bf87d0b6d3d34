use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;
use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::job::JobState;
use roomrec_domain::ports::JobStore;
use roomrec_tests::{aws, seed_rule, stack_env, store, Api};
use serde_json::{json, Value};

fn seed_individual_job(rule: &str) -> Value {
    json!({
        "room_id": "room001", "user_id": "user001", "is_record_audio": true, "video_type": "CAMERASTREAM",
        "resolution": "1280*720", "resolution_policy": "DOWNWARD", "max_idle_time": 30,
        "record_param": { "record_rule_id": rule }
    })
}

fn seed_mix_job(rule: &str) -> Value {
    json!({
        "mix_param": { "room_id": "room001", "encode_template": "1920x1080_30_4620", "max_idle_time": 30, "layout_template": "nine_grids_view" },
        "record_param": { "record_rule_id": rule }
    })
}

/// Waits for the job's message on the jobs queue, leaving it there for others.
async fn queued_message_for(job_id: &str) -> Value {
    let sqs = aws_sdk_sqs::Client::new(&aws().await);
    let queue = stack_env("ROOMREC_JOBS_QUEUE_URL");
    for _ in 0..50 {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        for message in out.messages.unwrap_or_default() {
            let body: Value = serde_json::from_str(message.body().unwrap_or_default()).unwrap();
            if body["job_id"] == job_id {
                return body;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no message for job {job_id} on the jobs queue");
}

async fn job_item(app: &str, job_id: &str) -> std::collections::HashMap<String, AttributeValue> {
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let out = dynamo
        .get_item()
        .table_name(stack_env("ROOMREC_JOBS_TABLE"))
        .key("app_id", AttributeValue::S(app.to_owned()))
        .key("job_id", AttributeValue::S(job_id.to_owned()))
        .send()
        .await
        .unwrap();
    out.item.expect("job item in DynamoDB")
}

#[tokio::test]
async fn seed_individual_job_starts_in_init_stored_and_queued() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let reply = api.post(&format!("/v2/apps/{app}/individual-stream-jobs"), &seed_individual_job(&rule)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let job = &reply.body;
    let seed_fields = [
        "app_id",
        "create_time",
        "is_record_audio",
        "job_id",
        "job_unique_id",
        "max_idle_time",
        "push_param",
        "record_files",
        "record_param",
        "resolution_policy",
        "resolution",
        "room_id",
        "start_time",
        "state",
        "stop_time",
        "stream_name",
        "update_time",
        "user_id",
        "video_type",
    ];
    for field in seed_fields {
        assert!(job.get(field).is_some(), "{field} missing from {job}");
    }
    let job_id = job["job_id"].as_str().unwrap();
    assert_eq!(job_id.len(), 32);
    assert_eq!(job["job_unique_id"].as_str().unwrap().len(), 16);
    assert_eq!(job["state"], "INIT");
    assert_eq!(job["stream_name"], format!("s_{job_id}_room001_user001"));
    assert_eq!(job["resolution"], "1280*720");
    assert_eq!(job["push_param"], json!({ "rtmp_urls": null }));
    assert_eq!(job["record_files"], Value::Null);
    assert_eq!(job["stop_time"], "0001-01-01T00:00:00Z");

    let item = job_item(&app, job_id).await;
    assert_eq!(item["state"], AttributeValue::S("INIT".into()));
    assert_eq!(item["version"], AttributeValue::N("1".into()));
    let message = queued_message_for(job_id).await;
    assert_eq!(message["app_id"], app.as_str());
}

#[tokio::test]
async fn seed_mix_job_echoes_mix_param_and_is_named_m_job_room() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let reply = api.post(&format!("/v2/apps/{app}/mix-stream-jobs"), &seed_mix_job(&rule)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let job = &reply.body;
    let job_id = job["job_id"].as_str().unwrap();
    assert_eq!(job["stream_name"], format!("m_{job_id}_room001"));
    assert_eq!(job["mix_param"]["encode_template"], "1920x1080_30_4620");
    assert_eq!(job["mix_param"]["layout_template"], "nine_grids_view");
    assert_eq!(job["mix_param"]["max_idle_time"], 30);
    assert_eq!(job["room_id"], "room001");
    assert_eq!(job["state"], "INIT");
    queued_message_for(job_id).await;
}

#[tokio::test]
async fn stopping_an_unclaimed_job_stops_it_at_once_and_again_changes_nothing() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let job = api.post(&format!("/v2/apps/{app}/individual-stream-jobs"), &seed_individual_job(&rule)).await.body;
    let stop = format!("/v2/apps/{app}/individual-stream-jobs/{}/stop", job["job_id"].as_str().unwrap());
    let first = api.post(&stop, &json!({})).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["state"], "STOPPED");
    assert_eq!(first.body["stop_reason"], "TENANT_STOP");
    assert_ne!(first.body["stop_time"], "0001-01-01T00:00:00Z");
    let second = api.post(&stop, &json!({})).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, first.body);
}

#[tokio::test]
async fn stopping_a_running_job_leaves_it_stopping_for_its_worker() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let job = api.post(&format!("/v2/apps/{app}/individual-stream-jobs"), &seed_individual_job(&rule)).await.body;
    let job_id = job["job_id"].as_str().unwrap();

    // Claim it the way a worker does: a conditional write on the stored version.
    let store = store().await;
    let mut claimed =
        store.get_job(&AppId::parse(&app).unwrap(), &JobId::parse(job_id).unwrap()).await.unwrap().unwrap();
    claimed.job.state = JobState::Running;
    store.save_job(&claimed).await.unwrap();

    let stop = format!("/v2/apps/{app}/individual-stream-jobs/{job_id}/stop");
    let reply = api.post(&stop, &json!({})).await;
    assert_eq!(reply.body["state"], "STOPPING", "{:?}", reply.body);
    assert_eq!(api.post(&stop, &json!({})).await.body["state"], "STOPPING");
    assert_eq!(job_item(&app, job_id).await["version"], AttributeValue::N("3".into()));
}

#[tokio::test]
async fn jobs_list_filters_by_room_and_state_and_pages() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let jobs_path = format!("/v2/apps/{app}/individual-stream-jobs");
    for (room, user) in [("ra", "u1"), ("ra", "u2"), ("rb", "u1")] {
        let body = json!({ "room_id": room, "user_id": user, "record_param": { "record_rule_id": rule } });
        assert_eq!(api.post(&jobs_path, &body).await.status, StatusCode::CREATED);
    }
    let mix = api.post(&format!("/v2/apps/{app}/mix-stream-jobs"), &seed_mix_job(&rule)).await;
    assert_eq!(mix.status, StatusCode::CREATED);

    let count = |body: &Value| body["jobs"].as_array().map(Vec::len);
    assert_eq!(count(&api.get(&jobs_path).await.body), Some(3), "mix jobs are listed apart");
    let in_ra = api.get(&format!("{jobs_path}?room_id=ra")).await.body;
    assert_eq!(count(&in_ra), Some(2));
    let first = in_ra["jobs"][0]["job_id"].as_str().unwrap();
    api.post(&format!("{jobs_path}/{first}/stop"), &json!({})).await;
    let stopped = api.get(&format!("{jobs_path}?state=STOPPED")).await.body;
    assert_eq!(count(&stopped), Some(1));
    assert_eq!(stopped["jobs"][0]["job_id"], first);
    assert_eq!(stopped.get("next_token"), None, "no more pages");
    let page = api.get(&format!("{jobs_path}?limit=2&offset=2")).await.body;
    assert_eq!(count(&page), Some(1));
    assert_eq!(count(&api.get(&format!("/v2/apps/{app}/mix-stream-jobs")).await.body), Some(1));

    // Page by page through next_token: every job once, newest first.
    let mut seen: Vec<String> = Vec::new();
    let mut next = String::new();
    loop {
        let page = api.get(&format!("{jobs_path}?limit=1{next}")).await.body;
        seen.extend(page["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap().to_owned()));
        match page["next_token"].as_str() {
            Some(token) => next = format!("&next_token={token}"),
            None => break,
        }
    }
    let all = api.get(&jobs_path).await.body;
    let expected: Vec<String> =
        all["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!((seen.len(), seen), (3, expected));
    let forged = api.get(&format!("{jobs_path}?next_token=nonsense")).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(forged.error_msg().starts_with("next_token:"), "{:?}", forged.body);
}

#[tokio::test]
async fn a_mix_layout_can_change_while_the_job_lives_and_not_after() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let job = api.post(&format!("/v2/apps/{app}/mix-stream-jobs"), &seed_mix_job(&rule)).await.body;
    let path = format!("/v2/apps/{app}/mix-stream-jobs/{}", job["job_id"].as_str().unwrap());
    let update = json!({ "mix_param": {
        "layout_template": "screen_share_left",
        "layout_panes": [{ "id": 1, "user_id": "teacher", "video_type": "SUBSTREAM" }, { "id": 2, "user_id": "student" }],
        "background_color": "#102030",
        "background_image": "s3://images/bg.png",
        "max_idle_time": 60
    }});
    let reply = api.put(&path, &update).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let read = api.get(&path).await.body;
    assert_eq!(read["mix_param"]["layout_template"], "screen_share_left");
    assert_eq!(read["mix_param"]["layout_panes"][0]["user_id"], "teacher");
    assert_eq!(read["mix_param"]["max_idle_time"], 60);
    assert_eq!(read["mix_param"]["encode_template"], "1920x1080_30_4620", "the encode template stays");
    assert_eq!(
        (read["mix_param"]["background_color"].as_str(), read["mix_param"]["background_image"].as_str()),
        (Some("#102030"), Some("s3://images/bg.png"))
    );

    // null clears a background; a field left out stays.
    let clear = json!({ "mix_param": { "background_image": null } });
    assert_eq!(api.put(&path, &clear).await.status, StatusCode::OK);
    let read = api.get(&path).await.body;
    assert!(read["mix_param"].get("background_image").is_none(), "{read}");
    assert_eq!(read["mix_param"]["background_color"], "#102030");
    let clear = json!({ "mix_param": { "background_color": null } });
    assert_eq!(api.put(&path, &clear).await.status, StatusCode::OK);
    assert!(api.get(&path).await.body["mix_param"].get("background_color").is_none());

    api.post(&format!("{path}/stop"), &json!({})).await;
    let late = api.put(&path, &update).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{:?}", late.body);
}

#[tokio::test]
async fn a_job_of_the_other_kind_or_an_unknown_rule_is_not_found() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let mix = api.post(&format!("/v2/apps/{app}/mix-stream-jobs"), &seed_mix_job(&rule)).await.body;
    let mix_id = mix["job_id"].as_str().unwrap();
    assert_eq!(api.get(&format!("/v2/apps/{app}/individual-stream-jobs/{mix_id}")).await.status, StatusCode::NOT_FOUND);

    let unknown_rule = api
        .post(
            &format!("/v2/apps/{app}/individual-stream-jobs"),
            &seed_individual_job("0123456789abcdef0123456789abcdef"),
        )
        .await;
    assert_eq!(unknown_rule.status, StatusCode::NOT_FOUND);
    assert!(unknown_rule.error_msg().starts_with("record_param.record_rule_id"), "{}", unknown_rule.error_msg());
    let other_apps_rule = {
        let other_app = api.create_app("rtctest").await.unwrap();
        api.create_rule(&other_app, &seed_rule()).await.unwrap()
    };
    let foreign =
        api.post(&format!("/v2/apps/{app}/individual-stream-jobs"), &seed_individual_job(&other_apps_rule)).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "a rule of another app is not this app's");
}
