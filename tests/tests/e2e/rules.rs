use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;
use roomrec_tests::{aws, seed_rule, stack_env, Api};
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

    // It is really in DynamoDB, under the app.
    let dynamo = aws_sdk_dynamodb::Client::new(&aws().await);
    let item = dynamo
        .get_item()
        .table_name(stack_env("ROOMREC_RULES_TABLE"))
        .key("app_id", AttributeValue::S(app.clone()))
        .key("rule_id", AttributeValue::S(rule["rule_id"].as_str().unwrap().to_owned()))
        .send()
        .await
        .unwrap();
    assert!(item.item.is_some(), "rule item missing in DynamoDB");
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
