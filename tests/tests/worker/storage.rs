//! Storage the tenant owns: in the deployment's bucket every key is under the app, whatever the
//! rule says; a bucket of the tenant's own is written only as the tenant's role, assumed with
//! the account's id as ExternalId (the role is made in moto as a tenant would, by
//! infra/local/tenant_role.py).

use std::collections::BTreeMap;
use std::time::Duration;

use roomrec_adapters::{Config, DynamoStore};
use roomrec_domain::callback::EventType;
use roomrec_domain::ids::KeyId;
use roomrec_domain::ports::CredentialStore;
use roomrec_tests::{aws, publish, stack_env, unique, Api};
use serde_json::{json, Value};

use crate::support::{final_events, objects, s3, Setup};

/// The account id `api` signs in as: the ExternalId its roles must require.
pub async fn account_of(api: &Api) -> String {
    let config = Config::from_env().unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws().await), config.tables);
    let key = KeyId::parse(api.credential().0).unwrap();
    store.get_credential(&key).await.unwrap().unwrap().account_id.to_string()
}

/// A new bucket of "the tenant's", made with the operator's credentials.
pub async fn tenant_bucket() -> String {
    let bucket = unique("tenant");
    s3().await.create_bucket().bucket(&bucket).send().await.unwrap();
    bucket
}

/// A role in moto that trusts the worker's role with `external_id` and may write `bucket`.
pub fn tenant_role(bucket: &str, external_id: &str) -> String {
    let script = format!("{}/infra/local/tenant_role.py", env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests"));
    let python = format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR").trim_end_matches("/tests"));
    let out = std::process::Command::new(python).args([&script, &unique("tenant"), bucket, external_id]).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Records a few seconds of `user` in `room` with `setup`'s rule, until STOPPED.
pub async fn record(setup: &Setup, room: &str, user: &str) -> String {
    let mut publisher = publish(&setup.publish_url(room, user).await, 30);
    let job = setup.start_job(room, user, 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();
    job
}

/// The ETags of every object under `prefix` in `bucket`, by key.
async fn etags(bucket: &str, prefix: &str) -> BTreeMap<String, String> {
    let listed = s3().await.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
    listed.contents().iter().map(|o| (o.key().unwrap().to_owned(), o.e_tag().unwrap().to_owned())).collect()
}

/// A rule writing under `object` of the deployment's bucket.
fn shared_obs_addr(object: &str) -> Value {
    json!({ "bucket": stack_env("ROOMREC_RECORDINGS_BUCKET"), "location": "us-east-1", "object": object })
}

#[tokio::test]
async fn two_accounts_writing_the_same_object_and_prefix_cannot_overwrite_each_other() {
    let object = format!("{}/", unique("shared"));
    let mp4 = json!({ "record_prefix": "fixed/{job_id}" });
    let a =
        Setup::for_account(Api::new_account().await, &["MP4"], shared_obs_addr(&object), json!({}), mp4.clone()).await;
    let a_job = record(&a, "room1", "alice").await;
    let a_files = etags(&a.bucket, &format!("{}/", a.app)).await;
    let a_key = format!("{}/{object}fixed/{a_job}.mp4", a.app);
    assert!(a_files.contains_key(&a_key), "A's file is under A's app: {a_files:?}");
    let reported = final_events(&a_job).await;
    let complete = reported.iter().find(|e| e.event_type == EventType::RecordFileComplete).unwrap();
    let facts = complete.file.as_ref().unwrap();
    assert_eq!(facts.obs_object, a_key, "obs_object names the real key");
    assert!(facts.download_url.as_ref().unwrap().ends_with(&format!("/{}/{a_key}", a.bucket)));

    // B aims its rule at A's folder: the same bucket, A's app id and object in front.
    let aimed = format!("{}/{object}", a.app);
    let b = Setup::for_account(Api::new_account().await, &["MP4"], shared_obs_addr(&aimed), json!({}), mp4).await;
    let b_job = record(&b, "room1", "alice").await;
    assert_eq!(etags(&a.bucket, &format!("{}/", a.app)).await, a_files, "B changed or added none of A's objects");
    let b_files = objects(&b.bucket, &format!("{}/", b.app)).await;
    let b_key = format!("{}/{aimed}fixed/{b_job}.mp4", b.app);
    assert!(b_files.iter().any(|(k, _)| *k == b_key), "B's file is under B's app: {b_files:?}");
    let outside = objects(&a.bucket, &object).await;
    assert!(outside.is_empty(), "nothing is written where the rule's object alone points: {outside:?}");
}

#[tokio::test]
async fn a_rule_naming_another_bucket_without_a_role_fails_its_jobs_and_writes_nothing_there() {
    let bucket = tenant_bucket().await;
    let obs_addr = json!({ "bucket": bucket, "location": "us-east-1", "object": "rec/" });
    // Accepted when saved, as the seed bodies name buckets of their own.
    let setup = Setup::for_account(Api::new_account().await, &["HLS", "MP4"], obs_addr, json!({}), json!({})).await;
    let mut publisher = publish(&setup.publish_url("room1", "dave").await, 20);
    let job = setup.start_job("room1", "dave", 30).await;
    let failed = setup.wait_for_state(&job, "FAILED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();
    assert_eq!(failed["stop_reason"], "INTERNAL_ERROR");
    let events = final_events(&job).await;
    assert_eq!(events.len(), 1, "no file started: {events:?}");
    assert_eq!(events[0].event_type, EventType::CloudRecordFailed);
    let detail = &events[0].detail_message;
    assert!(detail.starts_with("STORAGE_ROLE_REQUIRED: ") && detail.contains("obs_addr.role_arn"), "{detail}");
    assert!(objects(&bucket, "").await.is_empty(), "nothing written in the tenant's bucket");
}

#[tokio::test]
async fn a_rule_with_a_role_records_into_the_tenants_bucket_as_that_role() {
    let api = Api::new_account().await;
    let bucket = tenant_bucket().await;
    let role = tenant_role(&bucket, &account_of(&api).await);
    let obs_addr = json!({ "bucket": bucket, "location": "us-east-1", "object": "rec/", "role_arn": role });
    let mp4 = json!({ "record_prefix": "{room_id}/{job_id}" });
    let setup = Setup::for_account(api, &["MP4"], obs_addr, json!({}), mp4).await;
    let rule = setup.api.get(&format!("/v2/apps/{}/record-rules/{}", setup.app, setup.rule)).await.body;
    assert_eq!(rule["obs_addr"]["role_arn"], role.as_str(), "the role is echoed: {rule}");

    let job = record(&setup, "room1", "erin").await;
    let key = format!("rec/room1/{job}.mp4");
    let stored = objects(&bucket, "").await;
    assert!(stored.iter().any(|(k, size)| *k == key && *size > 0), "the MP4 is in the tenant's bucket: {stored:?}");
    let events = final_events(&job).await;
    let complete = events.iter().find(|e| e.event_type == EventType::RecordFileComplete).expect("a file completed");
    assert_eq!(complete.file.as_ref().unwrap().obs_bucket, bucket);
    assert_eq!(complete.file.as_ref().unwrap().obs_object, key);
    let over = events.last().unwrap();
    assert_eq!(over.event_type, EventType::CloudRecordOver, "{events:?}");
}

#[tokio::test]
async fn a_role_that_requires_another_external_id_fails_the_job_with_a_stable_detail() {
    let api = Api::new_account().await;
    let bucket = tenant_bucket().await;
    // A role made for another roomrec account: the confused deputy the ExternalId stops.
    let role = tenant_role(&bucket, "someone-else");
    let obs_addr = json!({ "bucket": bucket, "location": "us-east-1", "object": "rec/", "role_arn": role });
    let setup = Setup::for_account(api, &["MP4"], obs_addr, json!({}), json!({})).await;
    let job = setup.start_job("room1", "frank", 30).await;
    setup.wait_for_state(&job, "FAILED", Duration::from_secs(30)).await;
    let events = final_events(&job).await;
    assert_eq!(events.last().unwrap().event_type, EventType::CloudRecordFailed);
    let detail = &events.last().unwrap().detail_message;
    assert!(detail.starts_with("STORAGE_ACCESS_DENIED: "), "{detail}");
    assert!(!detail.contains("arn:") && !detail.contains("AssumeRole"), "no AWS text: {detail}");
    assert!(objects(&bucket, "").await.is_empty());
}

#[tokio::test]
async fn a_role_arn_that_is_not_an_iam_role_is_refused_naming_the_field() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let obs_addr = json!({ "bucket": "b12", "location": "us-east-1", "role_arn": "arn:aws:s3:::b12" });
    let body = json!({ "obs_addr": obs_addr, "record_formats": ["MP4"] });
    let reply = api.post(&format!("/v2/apps/{app}/record-rules"), &body).await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);
    assert!(reply.body["error_msg"].as_str().unwrap().starts_with("obs_addr.role_arn: "), "{:?}", reply.body);
}

#[tokio::test]
async fn a_role_whose_bucket_does_not_exist_fails_the_recording_with_a_stable_detail() {
    let api = Api::new_account().await;
    let bucket = unique("missing");
    let role = tenant_role(&bucket, &account_of(&api).await);
    let obs_addr = json!({ "bucket": bucket, "location": "us-east-1", "object": "rec/", "role_arn": role });
    let setup = Setup::for_account(api, &["HLS"], obs_addr, json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish(&setup.publish_url("room1", "gina").await, 40);
    let job = setup.start_job("room1", "gina", 30).await;
    setup.wait_for_state(&job, "FAILED", Duration::from_secs(60)).await;
    publisher.kill().await.ok();
    let events = final_events(&job).await;
    let last = events.last().unwrap();
    assert_eq!(last.event_type, EventType::CloudRecordFailed, "{events:?}");
    assert!(last.detail_message.starts_with("STORAGE_REJECTED: "), "{}", last.detail_message);
    assert!(!last.detail_message.contains("NoSuchBucket"), "no AWS text: {}", last.detail_message);
}
