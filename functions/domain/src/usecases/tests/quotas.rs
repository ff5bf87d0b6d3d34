//! Quotas, app deletion and the conditional updates that keep a deleted item deleted.

use futures::executor::block_on;

use super::*;
use crate::ports::{AppStore, CallbackStore, QuotaStore, RoomStore};
use crate::quota::QuotaSettings;

fn quota_refusal(result: Result<impl std::fmt::Debug, UseCaseError>) -> String {
    match result {
        Err(UseCaseError::QuotaExceeded(refused)) => refused.to_string(),
        other => panic!("expected a quota refusal, got {other:?}"),
    }
}

fn mix_with_layout(rule: &str, layout: &str) -> String {
    format!(
        r#"{{"mix_param":{{"room_id":"room001","encode_template":"640x360_15_500","layout_template":"{layout}"}},"record_param":{{"record_rule_id":"{rule}"}}}}"#
    )
}

fn individual_for(rule: &str, who: &str) -> String {
    format!(r#"{{"room_id":"room001","user_id":"{who}","record_param":{{"record_rule_id":"{rule}"}}}}"#)
}

impl World {
    async fn set_quotas(&self, who: &str, quotas: QuotaSettings) {
        self.store.put_quotas(&account(who), &quotas).await.unwrap();
    }
}

// ---- quotas ----

#[tokio::test]
async fn the_51st_active_job_is_refused_naming_the_quota_until_one_ends() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.join(&app, "user001").await;
    let mut jobs = Vec::new();
    for _ in 0..50 {
        jobs.push(w.individual(&app, &rule).await);
    }
    let refused = w.jobs.create_individual(&app, body(&individual_body(&rule))).await;
    assert_eq!(quota_refusal(refused), "active_jobs limit 50 reached");
    let refused = w.jobs.create_mix(&app, body(&mix_body(&rule))).await;
    assert_eq!(quota_refusal(refused), "active_jobs limit 50 reached");
    assert_eq!(w.store.job_count(), 50, "a refused job is not stored");
    assert_eq!(w.queue.messages().len(), 50, "nor queued");

    w.jobs.stop(&app, JobKind::Individual, jobs[0].job_id.as_str()).await.unwrap();
    w.individual(&app, &rule).await;
}

#[tokio::test]
async fn each_account_has_its_own_quota_and_an_operator_can_raise_it() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.join(&app, "user001").await;
    w.set_quotas("alice", QuotaSettings { active_jobs: Some(2), ..QuotaSettings::default() }).await;
    w.individual(&app, &rule).await;
    w.individual(&app, &rule).await;
    assert_eq!(
        quota_refusal(w.jobs.create_individual(&app, body(&individual_body(&rule))).await),
        "active_jobs limit 2 reached"
    );

    let bobs = w.apps.create(&account("bob"), body(r#"{"app_name":"b"}"#)).await.unwrap();
    let bobs = w.access.app(&account("bob"), bobs.app_id.as_str()).await.unwrap();
    let rule_body = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1"},"record_formats":["HLS"]}"#;
    let bobs_rule = w.rules.create_or_update(&bobs, body(rule_body)).await.unwrap().rule.rule_id.to_string();
    w.join(&bobs, "user001").await;
    w.jobs.create_individual(&bobs, body(&individual_body(&bobs_rule))).await.unwrap();

    w.set_quotas("alice", QuotaSettings { active_jobs: Some(3), ..QuotaSettings::default() }).await;
    w.individual(&app, &rule).await;
}

#[tokio::test]
async fn a_mix_whose_layout_pulls_more_participants_than_allowed_is_refused_created_or_updated() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.jobs.create_mix(&app, body(&mix_with_layout(&rule, "nine_grids_view"))).await.unwrap();
    w.set_quotas("alice", QuotaSettings { mix_participants: Some(17), ..QuotaSettings::default() }).await;
    let refused = w.jobs.create_mix(&app, body(&mix_with_layout(&rule, "nine_grids_view"))).await;
    assert_eq!(
        quota_refusal(refused),
        "mix_participants limit 17 exceeded: nine_grids_view pulls up to 25 participants"
    );
    let mix = w.jobs.create_mix(&app, body(&mix_with_layout(&rule, "screen_share_left"))).await.unwrap();
    let update = r#"{"mix_param":{"layout_template":"nine_grids_view"}}"#;
    let refused = w.jobs.update_mix(&app, mix.job_id.as_str(), body(update)).await;
    assert!(quota_refusal(refused).starts_with("mix_participants limit 17 exceeded"));
    let stored = w.jobs.get(&app, JobKind::Mix, mix.job_id.as_str()).await.unwrap();
    assert_eq!(stored, mix, "a refused update changes nothing");

    let refused = w.jocloud.start_record(&app, {
        let reservation = w.jocloud.apply_record(&app, body("{}")).await.unwrap();
        body(&format!(r#"{{"resid":"{}","roomid":"room001","record_rule_id":"{rule}"}}"#, reservation.resid))
    });
    assert!(quota_refusal(refused.await).starts_with("mix_participants limit 17 exceeded"), "a Jocloud start too");
}

#[tokio::test]
async fn a_jocloud_source_recording_past_the_quota_starts_nobody_rather_than_part_of_the_room() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.join(&app, "u1").await;
    w.join(&app, "u2").await;
    w.set_quotas("alice", QuotaSettings { active_jobs: Some(1), ..QuotaSettings::default() }).await;
    let reservation = w.jocloud.apply_record(&app, body("{}")).await.unwrap();
    let request =
        format!(r#"{{"resid":"{}","roomid":"room001","record_rule_id":"{rule}","streamtype":2}}"#, reservation.resid);
    let refused = w.jocloud.start_record(&app, body(&request)).await;
    assert_eq!(quota_refusal(refused), "active_jobs limit 1 reached");
    let filter = JobFilter { kind: JobKind::Individual, room_id: Some(room()), state: None };
    let jobs = w.jobs.list(&app, &filter, &first_page(20)).await.unwrap().jobs;
    assert_eq!(jobs.len(), 1, "the first participant's job was created before the quota refused");
    assert_eq!(jobs[0].state, JobState::Stopped, "and stopped again");
    w.join(&app, "u3").await;
    assert_eq!(
        w.jobs.list(&app, &filter, &first_page(20)).await.unwrap().jobs.len(),
        1,
        "a later join is not recorded either"
    );
}

#[tokio::test]
async fn jobs_waiting_for_absent_participants_are_bounded_but_jobs_with_a_source_are_not() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.set_quotas("alice", QuotaSettings { waiting_jobs: Some(2), ..QuotaSettings::default() }).await;
    w.jobs.create_individual(&app, body(&individual_for(&rule, "absent1"))).await.unwrap();
    w.jobs.create_mix(&app, body(&mix_body(&rule))).await.unwrap();
    let refused = w.jobs.create_individual(&app, body(&individual_for(&rule, "absent2"))).await;
    assert_eq!(quota_refusal(refused), "waiting_jobs limit 2 reached");

    // Someone joins: the mix has a source now, and so does a job for them.
    w.join(&app, "present").await;
    w.jobs.create_individual(&app, body(&individual_for(&rule, "present"))).await.unwrap();
    w.jobs.create_individual(&app, body(&individual_for(&rule, "absent2"))).await.unwrap();
    let refused = w.jobs.create_individual(&app, body(&individual_for(&rule, "absent3"))).await;
    assert_eq!(quota_refusal(refused), "waiting_jobs limit 2 reached");
}

#[tokio::test]
async fn a_join_past_the_quota_records_nothing_but_the_participant_is_in_the_room() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.rules.update(&app, &rule, body(r#"{"auto_record":true}"#)).await.unwrap();
    w.set_quotas("alice", QuotaSettings { active_jobs: Some(1), ..QuotaSettings::default() }).await;
    w.clock.advance(Duration::from_secs(1));
    assert!(w.join(&app, "u1").await);
    assert!(w.join(&app, "u2").await, "the join itself succeeds");
    let filter = JobFilter { kind: JobKind::Individual, room_id: Some(room()), state: None };
    let jobs = w.jobs.list(&app, &filter, &first_page(20)).await.unwrap().jobs;
    assert_eq!(jobs.iter().map(|j| j.user_id().unwrap().as_str()).collect::<Vec<_>>(), ["u1"]);
    assert_eq!(w.rooms.list_streams(&app, room()).await.unwrap().len(), 2);
}

// ---- deleting an app ----

#[tokio::test]
async fn an_app_with_a_job_that_has_not_ended_is_not_deleted() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    let refused = w.apps.delete(app.clone()).await;
    assert!(
        matches!(&refused, Err(UseCaseError::Conflict(m)) if m.starts_with("app_id: 1 recording job")),
        "{refused:?}"
    );
    assert!(w.access.app(&account("alice"), app.id().as_str()).await.is_ok());
    assert_eq!(w.rules.list(&app).await.unwrap().len(), 1, "nothing of it is removed");
    w.jobs.stop(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    w.apps.delete(app).await.unwrap();
}

#[tokio::test]
async fn deleting_an_app_removes_its_rules_callback_and_rooms_and_nothing_of_other_apps() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let (other, _) = w.app_with_rule().await;
    for app in [&app, &other] {
        w.callbacks.put(app, body(CALLBACK)).await.unwrap();
        w.join(app, "u1").await;
    }
    w.apps.delete(app.clone()).await.unwrap();
    assert_eq!(not_found_field(w.access.app(&account("alice"), app.id().as_str()).await), "app_id");
    assert!(w.store.list_rules(app.id()).await.unwrap().is_empty());
    assert!(w.store.get_callback(app.id()).await.unwrap().is_none());
    assert!(w.store.list_streams(app.id(), &room()).await.unwrap().is_empty());
    assert!(w.store.get_room(app.id(), &room()).await.unwrap().is_none());

    assert_eq!(w.rules.list(&other).await.unwrap().len(), 1);
    assert!(w.callbacks.get(&other).await.is_ok());
    assert_eq!(w.rooms.list_streams(&other, room()).await.unwrap().len(), 1);
}

// ---- updates racing deletes ----

#[tokio::test]
async fn an_app_update_racing_its_delete_is_not_found_and_does_not_bring_it_back() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let (owner, id) = (app.account().clone(), app.id().clone());
    w.store.race_next_update(move |store| assert!(block_on(store.delete_app(&owner, &id)).unwrap()));
    let raced = w.apps.update(app.clone(), body(r#"{"app_name":"renamed"}"#)).await;
    assert_eq!(not_found_field(raced), "app_id");
    assert!(w.store.find_app(app.id()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_rule_update_racing_its_delete_is_not_found_and_does_not_bring_it_back() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let (id, rule_id) = (app.id().clone(), crate::ids::RuleId::parse(&rule).unwrap());
    w.store.race_next_update(move |store| assert!(block_on(store.delete_rule(&id, &rule_id)).unwrap()));
    let raced = w.rules.update(&app, &rule, body(r#"{"auto_record":true}"#)).await;
    assert_eq!(not_found_field(raced), "rule_id");
    assert!(w.rules.list(&app).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_callback_update_racing_its_delete_is_not_found_and_does_not_bring_it_back() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    w.callbacks.put(&app, body(CALLBACK)).await.unwrap();
    let id = app.id().clone();
    w.store.race_next_update(move |store| assert!(block_on(store.delete_callback(&id)).unwrap()));
    let raced = w.callbacks.put(&app, body(CALLBACK)).await;
    assert_eq!(not_found_field(raced), "record-callback");
    assert!(w.store.get_callback(app.id()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_stream_update_racing_the_participants_leave_is_not_found_and_does_not_bring_it_back() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    w.join(&app, "u1").await;
    let id = app.id().clone();
    w.store.race_next_update(move |store| {
        assert!(block_on(store.delete_stream(&id, &room(), &user("u1"), CAMERA)).unwrap())
    });
    let update = w.rooms.put_stream(&app, room(), user("u1"), body(r#"{"url":"rtmp://media.example.com/live/y"}"#));
    assert_eq!(not_found_field(update.await), "user_id");
    assert!(w.rooms.list_streams(&app, room()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_callback_update_racing_the_apps_delete_does_not_bring_the_callback_back() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    w.callbacks.put(&app, body(CALLBACK)).await.unwrap();
    let apps = w.apps.clone();
    let doomed = app.clone();
    w.store.race_next_update(move |_| block_on(apps.delete(doomed)).unwrap());
    assert_eq!(not_found_field(w.callbacks.put(&app, body(CALLBACK)).await), "record-callback");
    assert!(w.store.get_callback(app.id()).await.unwrap().is_none());
    assert!(w.store.find_app(app.id()).await.unwrap().is_none());
}
