use std::time::{Duration, Instant};

use roomrec_adapters::SqsJobQueue;
use roomrec_domain::callback::EventType;
use roomrec_domain::ids::{AppId, JobId};
use roomrec_domain::ports::{JobMessage, JobQueue};
use roomrec_tests::{aws, publish, stack_env};
use serde_json::json;

use crate::support::{crc32, decodes, download, duration, final_events, objects, probe, stored_crc32, Setup};

#[tokio::test]
async fn an_rtmp_publish_is_recorded_to_hls_and_mp4_in_s3_while_it_runs() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish(&setup.publish_url("room1", "alice").await, 40);
    let job = setup.start_job("room1", "alice", 30).await;
    let running = setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    assert_eq!(running["stream_name"], format!("s_{job}_room1_alice"));

    // Segments reach S3 while recording, not at the end.
    let deadline = Instant::now() + Duration::from_secs(30);
    while objects(&setup.bucket, &setup.prefix).await.iter().filter(|(k, _)| k.ends_with(".ts")).count() < 3 {
        assert!(Instant::now() < deadline, "no segments uploaded while recording");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recorded_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    let wall = recorded_from.elapsed().as_secs_f64();
    publisher.kill().await.ok();
    assert_eq!(stopped["stop_reason"], "TENANT_STOP");

    let dir = std::env::temp_dir().join(format!("roomrec-test-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    let stored = objects(&setup.bucket, &setup.prefix).await;
    let playlist_key = stored.iter().find(|(k, _)| k.ends_with(".m3u8")).expect("a playlist").0.clone();
    let playlist = std::fs::read_to_string(download(&setup.bucket, &playlist_key, &dir).await).unwrap();
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    let durations: Vec<f64> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse().unwrap())
        .collect();
    assert!(durations.len() >= 5, "{playlist}");
    for d in &durations[..durations.len() - 1] {
        assert!((1.9..=3.1).contains(d), "segment of {d} s with a 2 s slice: {playlist}");
    }
    let hls_total: f64 = durations.iter().sum();
    for uri in playlist.lines().filter(|l| l.ends_with(".ts")) {
        let key = format!("{}/{uri}", playlist_key.rsplit_once('/').unwrap().0);
        let path = download(&setup.bucket, &key, &dir).await;
        assert!(decodes(&path), "segment {uri} does not decode");
        // Payloads go unsigned (SHA-256 of every byte is the uploader's biggest cost); the
        // signed CRC32 header is what S3 checks the bytes against instead.
        let stored = stored_crc32(&setup.bucket, &key).await;
        assert_eq!(stored, Some(crc32(&std::fs::read(&path).unwrap())), "segment {uri} carries its CRC32");
    }

    let (mp4_key, mp4_size) = stored.iter().find(|(k, _)| k.ends_with(".mp4")).expect("an MP4").clone();
    let mp4 = download(&setup.bucket, &mp4_key, &dir).await;
    let probed = probe(&mp4);
    assert!(decodes(&mp4), "the MP4 does not decode");
    let codecs: Vec<&str> =
        probed["streams"].as_array().unwrap().iter().map(|s| s["codec_name"].as_str().unwrap()).collect();
    assert!(codecs.contains(&"h264") && codecs.contains(&"aac"), "{probed}");
    let mp4_seconds = duration(&probed);
    assert!(mp4_seconds > wall * 0.9, "MP4 of {mp4_seconds} s for at least {wall} s recorded");
    assert!((hls_total - mp4_seconds).abs() < mp4_seconds * 0.1, "HLS {hls_total} s vs MP4 {mp4_seconds} s");

    // The outbox tells the same story, in order, with the seed's fields.
    let events = final_events(&job).await;
    let kinds: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds.first(), Some(&EventType::RecordNewFileStart), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&EventType::CloudRecordOver), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == EventType::RecordFileComplete).count(), 2, "{kinds:?}");
    assert!(events.iter().enumerate().all(|(i, e)| e.sequence == i as u64 + 1), "sequences 1..n");
    let mp4_done = events
        .iter()
        .find(|e| e.event_type == EventType::RecordFileComplete && e.file.as_ref().unwrap().obs_object == mp4_key)
        .expect("a completion event for the MP4");
    let facts = mp4_done.file.as_ref().unwrap();
    assert_eq!(facts.file_size, Some(mp4_size), "file_size is the S3 object's size");
    assert_eq!((facts.width, facts.height), (640, 360));
    assert_eq!(facts.obs_bucket, setup.bucket);
    assert!(facts.download_url.as_ref().unwrap().ends_with(&mp4_key));
    let body = mp4_done.callback_body();
    for field in [
        "event_type",
        "stream_name",
        "record_format",
        "download_url",
        "file_size",
        "record_duration",
        "start_time",
        "end_time",
        "width",
        "height",
        "obs_location",
        "obs_bucket",
        "obs_object",
        "app_id",
        "job_id",
        "room_id",
        "detail_message",
    ] {
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }
    let files = setup.job(&job).await["record_files"].as_array().unwrap().len();
    assert_eq!(files, 2, "the job lists both files");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_source_that_never_appears_ends_in_exceed_max_idle_time() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let job = setup.start_job("empty-room", "ghost", 5).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["stop_reason"], "EXCEED_MAX_IDLE_TIME");
    let kinds: Vec<EventType> = final_events(&job).await.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds, [EventType::CloudRecordOver]);
    assert!(objects(&setup.bucket, &setup.prefix).await.is_empty());
}

#[tokio::test]
async fn a_job_whose_rule_was_deleted_fails_with_internal_error_and_a_failure_event() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let job = setup.start_job("room1", "bob", 30).await;
    let deleted = setup.api.delete(&format!("/v2/apps/{}/record-rules/{}", setup.app, setup.rule)).await;
    assert_eq!(deleted.status, 204);
    // The participant appears only now: the worker reads the rule when recording starts.
    let stream = json!({ "url": format!("rtmp://127.0.0.1:{}/live/nobody", stack_env("ROOMREC_RTMP_PORT")) });
    let joined = setup.api.put(&format!("/v2/apps/{}/rooms/room1/streams/bob", setup.app), &stream).await;
    assert_eq!(joined.status, 201, "{:?}", joined.body);
    let failed = setup.wait_for_state(&job, "FAILED", Duration::from_secs(30)).await;
    assert_eq!(failed["stop_reason"], "INTERNAL_ERROR");
    let events = final_events(&job).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event_type, EventType::CloudRecordFailed);
    assert!(events[0].detail_message.starts_with("RULE_NOT_FOUND: "), "{}", events[0].detail_message);
}

#[tokio::test]
async fn a_recording_into_a_missing_bucket_fails_instead_of_pretending() {
    let setup = Setup::new(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let body = json!({ "obs_addr": { "bucket": "no-such-bucket-roomrec", "location": "us-east-1", "object": "x/" } });
    let reply = setup.api.put(&format!("/v2/apps/{}/record-rules/{}", setup.app, setup.rule), &body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let mut publisher = publish(&setup.publish_url("room1", "carol").await, 30);
    let job = setup.start_job("room1", "carol", 30).await;
    let failed = setup.wait_for_state(&job, "FAILED", Duration::from_secs(40)).await;
    publisher.kill().await.ok();
    assert_eq!(failed["stop_reason"], "INTERNAL_ERROR");
    let events = final_events(&job).await;
    let kinds: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    assert_eq!(kinds.last(), Some(&EventType::CloudRecordFailed), "{kinds:?}");
    // The tenant gets a stable code and a short message; S3's error stays in the worker's log.
    let detail = &events.last().unwrap().detail_message;
    let code = detail.split_once(": ").map(|(code, _)| code).unwrap_or_default();
    assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{detail}");
    assert!(!detail.contains("NoSuchBucket") && !detail.contains("service error"), "{detail}");
}

#[tokio::test]
async fn a_duplicate_delivery_of_a_running_job_does_not_start_a_second_recorder() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish(&setup.publish_url("room1", "erin").await, 30);
    let job = setup.start_job("room1", "erin", 30).await;
    let running = setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    // SQS delivers at least once: the same message again, while this worker records the job.
    let queue = SqsJobQueue::new(aws_sdk_sqs::Client::new(&aws().await), stack_env("ROOMREC_JOBS_QUEUE_URL"));
    let message = JobMessage::wake(AppId::parse(&setup.app).unwrap(), JobId::parse(&job).unwrap());
    queue.enqueue(&message).await.unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();
    assert_eq!(stopped["start_time"], running["start_time"], "the job was not started again");

    let starts = final_events(&job).await.iter().filter(|e| e.event_type == EventType::RecordNewFileStart).count();
    assert_eq!(starts, 2, "one HLS and one MP4 file, from one recorder");
    let stored = objects(&setup.bucket, &setup.prefix).await;
    assert_eq!(stored.iter().filter(|(k, _)| k.ends_with(".mp4")).count(), 1, "{stored:?}");
    assert_eq!(stored.iter().filter(|(k, _)| k.ends_with(".m3u8")).count(), 1, "{stored:?}");
}
