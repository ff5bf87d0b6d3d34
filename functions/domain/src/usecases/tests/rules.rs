//! One rule per app (seed 000): a POST creates the app's rule or updates it in place.

use futures::executor::block_on;

use super::*;
use crate::ids::RuleId;
use crate::ports::RuleStore;
use crate::rule::{RecordRule, DEFAULT_RECORD_PREFIX};

const HLS_RULE: &str = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1"},"record_formats":["HLS"]}"#;
const MP4_RULE: &str = r#"{"obs_addr":{"bucket":"other","location":"eu-west-2"},"record_formats":["MP4"],"mp4_config":{"record_cycle":600}}"#;

/// A rule of `app` stored as it was before one rule per app: straight into the store.
async fn stored_rule(w: &World, app: &OwnedApp, request: &str, seed: u64) -> RecordRule {
    w.clock.advance(Duration::from_secs(1));
    let rule = RecordRule::create(app.id().clone(), body(request), &SeqRandom::new(seed), w.clock.timestamp()).unwrap();
    w.store.put_rule(&rule).await.unwrap();
    rule
}

#[tokio::test]
async fn a_second_post_of_a_rule_updates_the_first_in_place() {
    let w = world();
    let (app, rule_id) = w.app_with_rule().await;
    let first = w.rules.get(&app, &rule_id).await.unwrap();
    w.clock.advance(Duration::from_secs(5));
    let saved = w.rules.create_or_update(&app, body(MP4_RULE)).await.unwrap();
    assert!(!saved.created, "the app had a rule: 200, not 201");
    assert_eq!(saved.rule.rule_id, first.rule_id);
    assert_eq!(saved.rule.create_time, first.create_time);
    assert!(saved.rule.update_time > first.update_time);
    let listed = w.rules.list(&app).await.unwrap();
    assert_eq!(listed, vec![saved.rule.clone()], "still one rule, with the new values");
    assert_eq!((listed[0].obs_addr.bucket.as_str(), listed[0].mp4_config.record_cycle), ("other", 600));
}

#[tokio::test]
async fn a_post_that_updates_says_the_whole_rule_and_keeps_auto_record_unless_it_sets_it() {
    let w = world();
    let (app, rule_id) = w.app_with_rule().await;
    let custom = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1"},"record_formats":["HLS"],"auto_record":true,
        "hls_config":{"record_slice_duration":4,"record_prefix":"x/{job_id}"}}"#;
    w.rules.create_or_update(&app, body(custom)).await.unwrap();
    let rule = w.rules.create_or_update(&app, body(HLS_RULE)).await.unwrap().rule;
    assert_eq!(rule.rule_id.as_str(), rule_id);
    assert_eq!(
        (rule.hls_config.record_slice_duration, rule.hls_config.record_prefix.as_str()),
        (10, DEFAULT_RECORD_PREFIX)
    );
    assert!(rule.auto_record, "the body said nothing about auto_record");
    let off = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1"},"record_formats":["HLS"],"auto_record":false}"#;
    assert!(!w.rules.create_or_update(&app, body(off)).await.unwrap().rule.auto_record);
    // Like a create, it needs the required fields.
    let partial = w.rules.create_or_update(&app, body(r#"{"record_formats":["MP4"]}"#)).await;
    assert!(matches!(partial, Err(UseCaseError::Invalid(i)) if i.field == "obs_addr"));
}

#[tokio::test]
async fn the_first_post_creates_the_rule() {
    let w = world();
    let app = w.apps.create(&account("alice"), body(r#"{"app_name":"a"}"#)).await.unwrap();
    let app = w.access.app(&account("alice"), app.app_id.as_str()).await.unwrap();
    let saved = w.rules.create_or_update(&app, body(HLS_RULE)).await.unwrap();
    assert!(saved.created);
    assert_eq!(w.rules.list(&app).await.unwrap(), vec![saved.rule]);
}

#[tokio::test]
async fn two_racing_creates_end_with_one_rule_the_loser_updating_the_winners() {
    let w = world();
    let app = w.apps.create(&account("alice"), body(r#"{"app_name":"a"}"#)).await.unwrap();
    let app = w.access.app(&account("alice"), app.app_id.as_str()).await.unwrap();
    // Between this call's read (no rule) and its create, another create wins.
    let winner =
        RecordRule::create(app.id().clone(), body(HLS_RULE), &SeqRandom::new(99), w.clock.timestamp()).unwrap();
    let raced = winner.clone();
    w.store.race_next_update(move |store| assert!(block_on(store.create_rule(&raced)).unwrap()));
    let saved = w.rules.create_or_update(&app, body(MP4_RULE)).await.unwrap();
    assert!(!saved.created);
    assert_eq!(saved.rule.rule_id, winner.rule_id, "the winner's rule, updated");
    let listed = w.rules.list(&app).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].record_formats, saved.rule.record_formats);
}

#[tokio::test]
async fn a_post_racing_the_rules_delete_creates_a_new_rule() {
    let w = world();
    let (app, rule_id) = w.app_with_rule().await;
    let (id, rule) = (app.id().clone(), RuleId::parse(&rule_id).unwrap());
    w.store.race_next_update(move |store| assert!(block_on(store.delete_rule(&id, &rule)).unwrap()));
    let saved = w.rules.create_or_update(&app, body(MP4_RULE)).await.unwrap();
    assert!(saved.created, "the rule it would have updated is gone");
    assert_ne!(saved.rule.rule_id.as_str(), rule_id);
    assert_eq!(w.rules.list(&app).await.unwrap(), vec![saved.rule]);
}

#[tokio::test]
async fn an_app_with_several_rules_from_before_keeps_them_and_a_post_updates_the_oldest() {
    let w = world();
    let app = w.apps.create(&account("alice"), body(r#"{"app_name":"a"}"#)).await.unwrap();
    let app = w.access.app(&account("alice"), app.app_id.as_str()).await.unwrap();
    let oldest = stored_rule(&w, &app, HLS_RULE, 98).await;
    let newer = stored_rule(&w, &app, HLS_RULE, 99).await;
    let saved = w.rules.create_or_update(&app, body(MP4_RULE)).await.unwrap();
    assert_eq!((saved.created, &saved.rule.rule_id), (false, &oldest.rule_id));
    assert_eq!(w.rules.get(&app, newer.rule_id.as_str()).await.unwrap(), newer, "the other stays as it was");
    // Jobs may still name either; only one of them may record automatically.
    w.join(&app, "user001").await;
    w.individual(&app, newer.rule_id.as_str()).await;
    w.rules.update(&app, oldest.rule_id.as_str(), body(r#"{"auto_record":true}"#)).await.unwrap();
    let second = w.rules.update(&app, newer.rule_id.as_str(), body(r#"{"auto_record":true}"#)).await;
    assert!(matches!(second, Err(UseCaseError::Conflict(m)) if m.starts_with("auto_record")));
    // Once the others are deleted, the app has its one rule.
    w.rules.delete(&app, newer.rule_id.as_str()).await.unwrap();
    assert_eq!(w.rules.list(&app).await.unwrap().len(), 1);
}

#[tokio::test]
async fn rules_are_read_updated_and_deleted_by_id() {
    let w = world();
    let (app, rule_id) = w.app_with_rule().await;
    let updated = w.rules.update(&app, &rule_id, body(r#"{"auto_record":true}"#)).await.unwrap();
    assert!(updated.auto_record);
    assert_eq!(w.rules.get(&app, &rule_id).await.unwrap(), updated);
    w.rules.delete(&app, &rule_id).await.unwrap();
    assert_eq!(not_found_field(w.rules.get(&app, &rule_id).await), "rule_id");
    assert!(w.rules.create_or_update(&app, body(HLS_RULE)).await.unwrap().created, "a new one once it is gone");
}
