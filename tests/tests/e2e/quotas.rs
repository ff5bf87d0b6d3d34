//! Per-account quotas and deleting an app, through the gateway with no worker: every job
//! created here stays INIT and counts as active until it is stopped.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::StatusCode;
use roomrec_domain::ids::{AccountId, AppId, RoomId};
use roomrec_domain::ports::{CallbackStore, JobStore, RoomStore, RuleStore};
use roomrec_testkit::api::{individual_job, Jobs};
use roomrec_tests::{deps, json_log_lines, seed_rule, stack_env, store, unique, Api, Reply};
use serde_json::{json, Value};

/// A new account's name and a client signed in as it.
async fn account() -> (String, Api) {
    let name = unique("quota");
    let account = AccountId::try_from(name.as_str()).unwrap();
    let api = Api::issue(&deps().await.access, stack_env("ROOMREC_HTTP_URL"), account).await.unwrap();
    (name, api)
}

/// An app of `api`'s account with the seed rule and `user` publishing in `room`.
async fn app_with_participant(api: &Api, room: &str, user: &str) -> (String, String) {
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let path = format!("/v2/apps/{app}/rooms/{room}/streams/{user}");
    let joined = api.put(&path, &json!({ "url": format!("rtmp://media.example.com/live/{user}") })).await;
    assert!(joined.status.is_success(), "{:?}", joined.body);
    (app, rule)
}

/// `roomrec-admin set-quotas --account NAME ARGS…`, as an operator runs it; the limits it
/// printed.
async fn set_quotas(account: &str, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(format!("{}/../target/debug/roomrec-admin", env!("CARGO_MANIFEST_DIR")))
        .args(["set-quotas", "--account", account])
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "roomrec-admin set-quotas failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap()
}

fn assert_quota(reply: &Reply, message: &str) {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", reply.body);
    assert_eq!(reply.body["error_code"], "QUOTA_EXCEEDED", "{:?}", reply.body);
    assert_eq!(reply.error_msg(), message);
}

/// Takes the messages of `jobs` off the jobs queue. This stack has no worker, so nothing
/// else would, and a test that looks for its own job's message (jobs.rs) would wade through
/// them. Other tests' messages are held only while this reads, then released.
async fn unqueue(jobs: &HashSet<String>) {
    let sqs = aws_sdk_sqs::Client::new(&roomrec_tests::aws().await);
    let queue = stack_env("ROOMREC_JOBS_QUEUE_URL");
    let (mut left, mut others) = (jobs.len(), Vec::new());
    while left > 0 {
        let out =
            sqs.receive_message().queue_url(&queue).max_number_of_messages(10).visibility_timeout(30).send().await;
        let messages = out.unwrap().messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let body: Value = serde_json::from_str(message.body().unwrap_or_default()).unwrap_or_default();
            let receipt = message.receipt_handle().unwrap_or_default().to_owned();
            if body["job_id"].as_str().is_some_and(|job| jobs.contains(job)) {
                sqs.delete_message().queue_url(&queue).receipt_handle(receipt).send().await.unwrap();
                left -= 1;
            } else {
                others.push(receipt);
            }
        }
    }
    for receipt in others {
        let _ = sqs
            .change_message_visibility()
            .queue_url(&queue)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
}

#[tokio::test]
async fn the_51st_active_job_is_refused_naming_the_quota_until_one_stops_or_an_operator_raises_it() {
    let (name, api) = account().await;
    let (app, rule) = app_with_participant(&api, "room001", "user001").await;
    let body = individual_job(&rule, "room001", "user001", 30);
    let mut created = Vec::new();
    for _ in 0..5 {
        let batch: Vec<_> = (0..10)
            .map(|_| {
                let (api, app, body) = (api.clone(), app.clone(), body.clone());
                tokio::spawn(async move { api.create_job(&app, Jobs::Individual, &body).await.unwrap() })
            })
            .collect();
        for job in batch {
            created.push(job.await.unwrap());
        }
    }
    let path = format!("/v2/apps/{app}/individual-stream-jobs");
    assert_quota(&api.post(&path, &body).await, "active_jobs limit 50 reached");
    let mix = json!({ "mix_param": { "room_id": "room001", "encode_template": "640x360_15_500" },
                      "record_param": { "record_rule_id": rule } });
    assert_quota(&api.post(&format!("/v2/apps/{app}/mix-stream-jobs"), &mix).await, "active_jobs limit 50 reached");
    let held = store().await.count_account_jobs(&AccountId::try_from(name.as_str()).unwrap()).await.unwrap();
    assert_eq!(held, 50, "a refused job is not created");

    // Another account is not held back by this one.
    let (_, other) = account().await;
    let (other_app, other_rule) = app_with_participant(&other, "room001", "user001").await;
    other
        .create_job(&other_app, Jobs::Individual, &individual_job(&other_rule, "room001", "user001", 30))
        .await
        .unwrap();

    api.stop_job(&app, Jobs::Individual, &created[0]).await.unwrap();
    created.push(api.create_job(&app, Jobs::Individual, &body).await.unwrap());
    assert_quota(&api.post(&path, &body).await, "active_jobs limit 50 reached");

    let limits = set_quotas(&name, &["--active-jobs", "51"]).await;
    assert_eq!(limits, json!({ "active_jobs": 51, "mix_participants": 25, "waiting_jobs": 20 }));
    created.push(api.create_job(&app, Jobs::Individual, &body).await.unwrap());
    assert_quota(&api.post(&path, &body).await, "active_jobs limit 51 reached");

    unqueue(&created.into_iter().collect()).await;
}

#[tokio::test]
async fn an_operator_bounds_mix_participants_and_jobs_waiting_for_a_source() {
    let (name, api) = account().await;
    let (app, rule) = app_with_participant(&api, "room001", "user001").await;
    let limits = set_quotas(&name, &["--mix-participants", "17", "--waiting-jobs", "1"]).await;
    assert_eq!(limits, json!({ "active_jobs": 50, "mix_participants": 17, "waiting_jobs": 1 }));
    let mix = |layout: &str| {
        json!({ "mix_param": { "room_id": "room001", "encode_template": "640x360_15_500", "layout_template": layout },
                "record_param": { "record_rule_id": rule } })
    };
    let mixes = format!("/v2/apps/{app}/mix-stream-jobs");
    let refused = api.post(&mixes, &mix("nine_grids_view")).await;
    assert_quota(&refused, "mix_participants limit 17 exceeded: nine_grids_view pulls up to 25 participants");
    let mut created = vec![api.create_job(&app, Jobs::Mix, &mix("screen_share_left")).await.unwrap()];

    // user001 publishes in room001; nobody is in room002.
    let individual = format!("/v2/apps/{app}/individual-stream-jobs");
    created
        .push(api.create_job(&app, Jobs::Individual, &individual_job(&rule, "room002", "absent1", 30)).await.unwrap());
    let refused = api.post(&individual, &individual_job(&rule, "room002", "absent2", 30)).await;
    assert_quota(&refused, "waiting_jobs limit 1 reached");
    created
        .push(api.create_job(&app, Jobs::Individual, &individual_job(&rule, "room001", "user001", 30)).await.unwrap());

    unqueue(&created.into_iter().collect()).await;
}

#[tokio::test]
async fn a_join_past_the_quota_is_not_recorded_automatically_and_says_why_in_the_log() {
    let (name, api) = account().await;
    set_quotas(&name, &["--active-jobs", "1"]).await;
    let app = api.create_app("rtctest").await.unwrap();
    let mut rule = seed_rule();
    rule["auto_record"] = json!(true);
    api.create_rule(&app, &rule).await.unwrap();
    for user in ["first", "second"] {
        let path = format!("/v2/apps/{app}/rooms/autoq/streams/{user}");
        let joined = api.put(&path, &json!({ "url": format!("rtmp://media.example.com/live/{user}") })).await;
        assert_eq!(joined.status, StatusCode::CREATED, "the join itself succeeds: {:?}", joined.body);
    }
    let jobs = api.get(&format!("/v2/apps/{app}/individual-stream-jobs?room_id=autoq")).await.body;
    let users: Vec<&str> = jobs["jobs"].as_array().unwrap().iter().map(|j| j["user_id"].as_str().unwrap()).collect();
    assert_eq!(users, ["first"]);
    let logged = json_log_lines(
        "gateway",
        &["QUOTA_EXCEEDED", &app],
        |line| line["user_id"] == "second",
        Duration::from_secs(5),
    );
    assert_eq!(logged.len(), 1, "one warning for the join that was not recorded");
    assert_eq!(logged[0]["quota"], "active_jobs", "{}", logged[0]);
    let created = jobs["jobs"].as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap().to_owned());
    unqueue(&created.collect()).await;
}

#[tokio::test]
async fn an_app_is_not_deleted_while_a_job_records_and_then_goes_with_its_rules_callback_and_rooms() {
    let api = Api::new_account().await;
    let (app, rule) = app_with_participant(&api, "room001", "user001").await;
    let (kept, _) = app_with_participant(&api, "room001", "user001").await;
    let callback = json!({ "url": "http://mydomain.com/callback", "auth_key": "8923ab8c2dcef4538923ab8c2dcef453" });
    api.set_callback(&app, &callback).await.unwrap();
    let job = api.create_job(&app, Jobs::Individual, &individual_job(&rule, "room001", "user001", 30)).await.unwrap();

    let refused = api.delete(&format!("/v2/apps/{app}")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert!(refused.error_msg().starts_with("app_id: 1 recording job"), "{}", refused.error_msg());
    assert!(refused.error_msg().contains(&job), "the message names the job: {}", refused.error_msg());
    assert_eq!(api.get(&format!("/v2/apps/{app}/record-rules/{rule}")).await.status, StatusCode::OK);

    api.stop_job(&app, Jobs::Individual, &job).await.unwrap();
    assert_eq!(api.delete(&format!("/v2/apps/{app}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("/v2/apps/{app}")).await.status, StatusCode::NOT_FOUND);
    let (store, app_id, room) = (store().await, AppId::parse(&app).unwrap(), RoomId::try_from("room001").unwrap());
    assert!(store.list_rules(&app_id).await.unwrap().is_empty(), "its rules are gone");
    assert!(store.get_callback(&app_id).await.unwrap().is_none(), "its callback is gone");
    assert!(store.list_streams(&app_id, &room).await.unwrap().is_empty(), "its streams are gone");
    assert!(store.get_room(&app_id, &room).await.unwrap().is_none(), "its room is gone");
    assert_eq!(api.roster_len(&kept, "room001").await.unwrap(), 1, "another app keeps its room");
    unqueue(&HashSet::from([job])).await;
}
