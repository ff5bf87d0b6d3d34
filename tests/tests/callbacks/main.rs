//! End-to-end tests of callback delivery: events written into the real outbox and events
//! queue (moto), delivered by a real `roomrec-deliverer` process (started by
//! infra/local/test.sh, running the Lambda's handler) to a real HTTP receiver on loopback.
//! A receiver that is down for a minute, and private addresses refused, need deliverers and a
//! gateway with other settings: tests/tests/callback_processes. Run them with `make test`.
#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

#[allow(dead_code)] // some helpers serve the callback_processes tests only
mod support;

use std::time::Duration;

use roomrec_adapters::SystemClock;
use roomrec_domain::callback::EventType;
use roomrec_domain::clock::Clock;
use roomrec_domain::delivery::ORPHAN_AFTER;
use roomrec_domain::event::{DeliveryStatus, FileFacts};
use roomrec_testkit::receiver::{Answer, Receiver};
use support::{dead_lettered, verify, verify_rtc, Setup};

const SETTLE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn delivered_callbacks_carry_the_event_and_verify_as_standard_webhooks_and_as_sparkrtc_callbacks() {
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["CLOUD_RECORD_OVER", "RECORD_FILE_COMPLETE"]).await;
    let event = setup.emit(EventType::CloudRecordOver).await;

    let got = receiver.wait_for(1, SETTLE).await.unwrap();
    verify(&got[0]).expect("an independent Standard Webhooks implementation accepts the signature");
    verify_rtc(&got[0]).expect("a SparkRTC receiver (Python's hmac) accepts X-Rtc-Signature");
    assert_eq!(got[0].headers["x-rtc-timestamp"], got[0].headers["webhook-timestamp"]);
    assert_eq!(got[0].path, "/callback");
    assert_eq!(got[0].headers["webhook-id"], event.event_id.as_str());
    assert_eq!(got[0].headers["content-type"], "application/json");
    let body = got[0].json();
    assert_eq!(body["event_type"], "CLOUD_RECORD_OVER");
    assert_eq!(body["sequence"], 1);
    assert_eq!(body["job_id"], setup.job.as_str());
    assert_eq!(body["app_id"], setup.app.as_str());

    let stored = setup.wait_settled(&event, SETTLE).await;
    assert_eq!(stored.delivery_status, DeliveryStatus::Delivered);
    assert_eq!(stored.attempts.len(), 1);
    assert_eq!(stored.attempts[0].status, Some(200));
}

#[tokio::test]
async fn a_503_is_retried_and_both_attempts_are_logged() {
    let receiver = Receiver::start(vec![503.into()], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["RECORD_FILE_COMPLETE"]).await;
    let event = setup.emit(EventType::RecordFileComplete).await;

    let got = receiver.wait_for(2, SETTLE).await.unwrap();
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    verify(&got[1]).unwrap();
    verify_rtc(&got[1]).unwrap();
    assert_ne!(got[0].headers["x-rtc-rand"], got[1].headers["x-rtc-rand"], "each attempt has its own nonce");
    let stored = setup.wait_settled(&event, SETTLE).await;
    assert_eq!(stored.delivery_status, DeliveryStatus::Delivered);
    let statuses: Vec<_> = stored.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(503), Some(200)]);
    assert_eq!(stored.attempts[0].error.as_deref(), Some("HTTP 503"));
}

#[tokio::test]
async fn a_400_is_not_retried_and_the_event_is_dead_lettered() {
    let receiver = Receiver::start(vec![400.into()], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["CLOUD_RECORD_OVER"]).await;
    let event = setup.emit(EventType::CloudRecordOver).await;

    let stored = setup.wait_settled(&event, SETTLE).await;
    assert_eq!(stored.delivery_status, DeliveryStatus::Failed);
    assert_eq!(stored.attempts.len(), 1);
    assert_eq!(stored.attempts[0].status, Some(400));
    assert!(dead_lettered(&event.event_id, Duration::from_secs(10)).await, "event not in the dead-letter queue");
    // Past the first retry's time: still one request.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let elsewhere = Receiver::start(vec![], 200).await.unwrap();
    let redirect = Answer { status: 302, headers: vec![("location".into(), elsewhere.url())] };
    let receiver = Receiver::start(vec![redirect], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["CLOUD_RECORD_OVER"]).await;
    let event = setup.emit(EventType::CloudRecordOver).await;

    let stored = setup.wait_settled(&event, SETTLE).await;
    assert_eq!(stored.delivery_status, DeliveryStatus::Failed);
    assert_eq!(stored.attempts.len(), 1);
    assert_eq!(stored.attempts[0].status, Some(302));
    assert_eq!(receiver.received().len(), 1);
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn unsubscribed_event_types_are_not_sent() {
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["RECORD_FILE_COMPLETE"]).await;
    let skipped = setup.emit(EventType::CloudRecordOver).await;
    let sent = setup.emit(EventType::RecordFileComplete).await;

    assert_eq!(setup.wait_settled(&sent, SETTLE).await.delivery_status, DeliveryStatus::Delivered);
    let stored = setup.wait_settled(&skipped, SETTLE).await;
    assert_eq!(stored.delivery_status, DeliveryStatus::Skipped);
    assert!(stored.attempts.is_empty());
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["sequence"], sent.sequence);
}

#[tokio::test]
async fn events_published_out_of_order_arrive_in_sequence_order() {
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE"]).await;
    let mut events = Vec::new();
    for _ in 0..5 {
        events.push(setup.record(EventType::RecordNewFileStart).await);
    }
    for index in [4, 2, 0, 3, 1] {
        setup.publish(&events[index]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let got = receiver.wait_for(5, Duration::from_secs(60)).await.unwrap();
    let sequences: Vec<_> = got.iter().map(|r| r.json()["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    for event in &events {
        assert_eq!(setup.wait_settled(event, SETTLE).await.delivery_status, DeliveryStatus::Delivered);
    }
}

/// The stack's deliverer runs as its role (moto enforces IAM), so this fails if the role may
/// not send to the events queue, as it could not before the role was given that.
#[tokio::test]
async fn the_deliverer_queues_an_event_whose_message_was_lost_again_on_the_events_queue() {
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["RECORD_NEW_FILE_START", "CLOUD_RECORD_OVER"]).await;
    // In the outbox, but its message never reached the queue (the worker's publish failed).
    let lost = setup.record(EventType::RecordNewFileStart).await;
    tokio::time::sleep(ORPHAN_AFTER + Duration::from_secs(1)).await;
    let next = setup.emit(EventType::CloudRecordOver).await;

    let got = receiver.wait_for(2, SETTLE).await.unwrap();
    let ids: Vec<_> = got.iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [lost.event_id.clone(), next.event_id.clone()], "the lost event first, then the next");
    for event in [&lost, &next] {
        assert_eq!(setup.wait_settled(event, SETTLE).await.delivery_status, DeliveryStatus::Delivered);
    }
}

#[tokio::test]
async fn file_events_carry_seed_001s_fields_and_the_listing_shows_each_as_its_callback_body() {
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let subscribed = ["RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE"];
    let setup = Setup::new(&receiver.url(), &subscribed).await.with_stored_job().await;
    let facts = FileFacts {
        download_url: Some("https://b12.s3.amazonaws.com/rec/x.mp4".into()),
        file_size: Some(2048),
        record_duration: Some(65),
        start_time: SystemClock.timestamp(),
        end_time: Some(SystemClock.timestamp()),
        width: 1280,
        height: 720,
        obs_location: "us-east-1".into(),
        obs_bucket: "b12".into(),
        obs_object: "rec/x.mp4".into(),
        timeline_object: None,
    };
    // The worker records a start with what it knows of the file; the receiver gets none of it.
    for event_type in [EventType::RecordNewFileStart, EventType::RecordFileComplete] {
        let event = setup.record_file(event_type, Some(facts.clone())).await;
        setup.publish(&event).await;
    }
    let got = receiver.wait_for(2, SETTLE).await.unwrap();
    let (start, complete) = (got[0].json(), got[1].json());
    assert_eq!(
        (start["event_type"].as_str(), complete["event_type"].as_str()),
        (Some("RECORD_NEW_FILE_START"), Some("RECORD_FILE_COMPLETE"))
    );
    for field in [
        "download_url",
        "record_duration",
        "start_time",
        "end_time",
        "width",
        "height",
        "obs_location",
        "obs_bucket",
        "obs_object",
    ] {
        assert!(start.get(field).is_none(), "seed 001 keeps {field} for RECORD_FILE_COMPLETE: {start}");
        assert!(complete.get(field).is_some(), "{field} missing: {complete}");
    }
    assert_eq!((start["record_format"].as_str(), start["stream_name"].as_str()), (Some("MP4"), Some("room1_user1")));
    assert_eq!(complete["obs_object"], "rec/x.mp4");

    // The listing shows each event as the receiver got it, its delivery beside it.
    let events = format!("/v2/apps/{}/individual-stream-jobs/{}/events", setup.app, setup.job.as_str());
    let deadline = tokio::time::Instant::now() + SETTLE;
    let listed = loop {
        let listed = setup.api.get(&events).await.body;
        if listed["events"].as_array().unwrap().iter().all(|e| e["delivery_status"] == "DELIVERED") {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered: {listed}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (listed, received) in listed["events"].as_array().unwrap().iter().zip([start, complete]) {
        let mut event = listed.as_object().unwrap().clone();
        for delivery in ["delivery_status", "attempts", "next_attempt_at"] {
            event.remove(delivery);
        }
        assert_eq!(serde_json::Value::Object(event), received);
    }
}

#[tokio::test]
async fn the_api_lists_a_jobs_events_with_their_delivery_and_redelivers_one() {
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["CLOUD_RECORD_OVER"]).await.with_stored_job().await;
    let event = setup.emit(EventType::CloudRecordOver).await;
    setup.wait_settled(&event, SETTLE).await;
    let events = format!("/v2/apps/{}/individual-stream-jobs/{}/events", setup.app, setup.job.as_str());

    let reply = setup.api.get(&events).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let listed = &reply.body["events"][0];
    assert_eq!((listed["sequence"].as_u64(), listed["delivery_status"].as_str()), (Some(1), Some("DELIVERED")));
    assert_eq!(listed["attempts"][0]["status"], 200);

    let reply = setup.api.post(&format!("{events}/{}/redeliver", event.event_id), &serde_json::json!({})).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    let got = receiver.wait_for(2, SETTLE).await.unwrap();
    verify(&got[1]).unwrap();
    verify_rtc(&got[1]).expect("a redelivery carries the SparkRTC signature too");
    let deadline = tokio::time::Instant::now() + SETTLE;
    while setup.stored(&event).await.attempts.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the redelivery was not logged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(setup.wait_settled(&event, SETTLE).await.delivery_status, DeliveryStatus::Delivered);
    let mix = format!("/v2/apps/{}/mix-stream-jobs/{}/events", setup.app, setup.job.as_str());
    assert_eq!(setup.api.get(&mix).await.status, 404, "an individual job is not a mix job");
}
