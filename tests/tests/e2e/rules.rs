use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;
use roomrec_adapters::OsRandom;
use roomrec_domain::ids::AppId;
use roomrec_domain::ports::RuleStore;
use roomrec_domain::rule::RecordRule;
use roomrec_domain::time::Timestamp;
use roomrec_tests::{aws, seed_rule, stack_env, store, Api};
use serde_json::json;

#[tokio::test]
async fn seed_rule_body_returns_the_seed_response_fields_with_defaults() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let reply = api.post(&format!("/v2/apps/{app}/record-rules"), &seed_rule()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    let rule = &reply.body;
    for field in
        ["app_id", "rule_id", "create_time", "update_time", "hls_config", "mp4_config", "obs_addr", "record_formats"]
    {
        assert!(rule.get(field).is_some(), "{field} missing from {rule}");
    }
    assert_eq!(rule["app_id"], app.as_str());
    assert_eq!(rule["rule_id"].as_str().unwrap().len(), 32);
    assert_eq!(rule["mp4_config"]["record_cycle"], 7200);
    assert_eq!(rule["mp4_config"]["record_max_duration_to_merge_file"], 0);
    assert_eq!(
        rule["mp4_config"]["record_prefix"],
        "Record/{publish_domain}/{app}/{record_type}/{record_format}/{stream}_{file_start_time}/{stream}_{file_start_time}"
    );
    assert_eq!(rule["hls_config"]["record_cycle"], 0);
    assert_eq!(rule["hls_config"]["record_max_duration_to_merge_file"], 0);
    assert_eq!(rule["obs_addr"], seed_rule()["obs_addr"]);
    assert_eq!(rule["record_formats"], json!(["MP4"]));
    assert!(rule["create_time"].as_str().unwrap().ends_with('Z'));

    // It is really in DynamoDB: the app's one rule item.
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let item = dynamo
        .get_item()
        .table_name(stack_env("ROOMREC_RULES_TABLE"))
        .key("app_id", AttributeValue::S(app.clone()))
        .key("rule_id", AttributeValue::S("#rule".into()))
        .send()
        .await
        .unwrap();
    let item = item.item.expect("rule item missing in DynamoDB");
    assert_eq!(item["app_rule_id"].as_s().unwrap(), rule["rule_id"].as_str().unwrap());
}

#[tokio::test]
async fn rules_can_be_listed_updated_and_deleted() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let rule = api.create_rule(&app, &seed_rule()).await.unwrap();
    let path = format!("/v2/apps/{app}/record-rules/{rule}");
    let updated = api
        .put(&path, &json!({ "record_formats": ["HLS", "MP4"], "hls_config": { "record_cycle": 600, "record_slice_duration": 4 } }))
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["hls_config"]["record_slice_duration"], 4);
    assert_eq!(updated.body["mp4_config"]["record_cycle"], 7200, "untouched fields keep their values");

    let list = api.get(&format!("/v2/apps/{app}/record-rules")).await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["record_rules"][0]["record_formats"], json!(["HLS", "MP4"]));

    assert_eq!(api.delete(&path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&path).await.status, StatusCode::NOT_FOUND);
}

/// A rule of `app` written straight into DynamoDB, as rules were stored before one rule per app.
pub(crate) async fn rule_from_before(app: &str, secs: i64) -> RecordRule {
    let created = Timestamp::from(chrono::DateTime::from_timestamp(secs, 0).unwrap());
    let rule = RecordRule::create(
        AppId::parse(app).unwrap(),
        serde_json::from_value(seed_rule()).unwrap(),
        &OsRandom,
        created,
    )
    .unwrap();
    store().await.put_rule(&rule).await.unwrap();
    rule
}

#[tokio::test]
async fn a_second_post_of_a_rule_updates_the_first_in_place() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let first = api.post(&format!("/v2/apps/{app}/record-rules"), &seed_rule()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let mut body = seed_rule();
    body["record_formats"] = json!(["HLS", "MP4"]);
    body["hls_config"] = json!({ "record_slice_duration": 4 });
    body["mp4_config"] = json!({ "record_cycle": 600 });
    let second = api.post(&format!("/v2/apps/{app}/record-rules"), &body).await;
    assert_eq!(second.status, StatusCode::OK, "the app has its rule: updated, not created: {:?}", second.body);
    let rule_id = first.body["rule_id"].as_str().unwrap();
    assert_eq!(second.body["rule_id"], rule_id);
    assert_eq!(second.body["create_time"], first.body["create_time"]);

    let rule = api.get(&format!("/v2/apps/{app}/record-rules/{rule_id}")).await.body;
    assert_eq!(rule["record_formats"], json!(["HLS", "MP4"]));
    assert_eq!(
        (rule["hls_config"]["record_slice_duration"].as_u64(), rule["mp4_config"]["record_cycle"].as_u64()),
        (Some(4), Some(600))
    );
    let list = api.get(&format!("/v2/apps/{app}/record-rules")).await.body;
    assert_eq!(list["total"], 1, "{list}");

    // Deleted, the next POST creates the app's rule again.
    assert_eq!(api.delete(&format!("/v2/apps/{app}/record-rules/{rule_id}")).await.status, StatusCode::NO_CONTENT);
    let again = api.post(&format!("/v2/apps/{app}/record-rules"), &seed_rule()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_ne!(again.body["rule_id"], rule_id);
}

#[tokio::test]
async fn concurrent_first_posts_of_a_rule_end_with_one_rule() {
    let api = Api::new_account().await;
    for _ in 0..3 {
        let app = api.create_app("rtctest").await.unwrap();
        let path = format!("/v2/apps/{app}/record-rules");
        let body = seed_rule();
        let posts = tokio::join!(
            api.post(&path, &body),
            api.post(&path, &body),
            api.post(&path, &body),
            api.post(&path, &body)
        );
        let replies = [posts.0, posts.1, posts.2, posts.3];
        let statuses: Vec<StatusCode> = replies.iter().map(|r| r.status).collect();
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 3, "{statuses:?}");
        let ids: HashSet<&str> = replies.iter().map(|r| r.body["rule_id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 1, "every POST answered the same rule: {ids:?}");
        let list = api.get(&path).await.body;
        assert_eq!(list["total"], 1, "{list}");
        assert_eq!(list["record_rules"][0]["rule_id"].as_str(), ids.into_iter().next());
    }
}

#[tokio::test]
async fn an_app_with_rules_from_before_keeps_them_and_a_post_updates_the_oldest() {
    let api = Api::new_account().await;
    let app = api.create_app("rtctest").await.unwrap();
    let oldest = rule_from_before(&app, 1_700_000_000).await;
    let newer = rule_from_before(&app, 1_700_000_100).await;
    let mut body = seed_rule();
    body["mp4_config"] = json!({ "record_cycle": 900 });
    let post = api.post(&format!("/v2/apps/{app}/record-rules"), &body).await;
    assert_eq!(post.status, StatusCode::OK, "{:?}", post.body);
    assert_eq!(post.body["rule_id"], oldest.rule_id.as_str());
    let list = api.get(&format!("/v2/apps/{app}/record-rules")).await.body;
    assert_eq!(list["total"], 2, "{list}");
    let kept = api.get(&format!("/v2/apps/{app}/record-rules/{}", newer.rule_id)).await;
    assert_eq!(kept.status, StatusCode::OK);
    assert_eq!(kept.body["mp4_config"]["record_cycle"], 7200, "the other rule is untouched");
    let updated = api.get(&format!("/v2/apps/{app}/record-rules/{}", oldest.rule_id)).await.body;
    assert_eq!(updated["mp4_config"]["record_cycle"], 900);
}
