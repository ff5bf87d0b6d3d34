//! Fetching recordings with no access to the bucket: presigned `download_url`s in the job's
//! view and in callbacks, and a live playlist whose segments are presigned, checked by a plain HTTP client with
//! no credentials against moto (which infra/local/moto_iam.py makes check query signatures
//! and expiry as S3 does).

use std::time::{Duration, Instant};

use roomrec_adapters::S3Presigner;
use roomrec_domain::ports::Presigner;
use roomrec_domain::storage::Access;
use roomrec_testkit::receiver::Receiver;
use roomrec_tests::{aws, publish, stack_env, Api};
use serde_json::{json, Value};

use crate::storage::{account_of, record, tenant_bucket, tenant_role};
use crate::support::{decodes, probe, Setup};

/// GETs `url` with no credentials: its status and body.
async fn fetch(url: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

/// Polls the job's view until it names an HLS file it records now with bytes stored.
async fn live_playlist(setup: &Setup, job: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let view = setup.job(job).await;
        let live = view["recording_files"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["record_format"] == "HLS" && f["file_size"].as_u64().unwrap_or_default() > 0);
        if let Some(file) = live {
            return file["obs_object"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the running job never named a live HLS file: {view}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The job's playback path for `object` (keys here need no escaping: letters, digits, `/_.-`).
fn playback_path(setup: &Setup, job: &str, object: &str) -> String {
    format!("/v2/apps/{}/{}/{job}/playback.m3u8?object={object}", setup.app, setup.jobs.collection())
}

/// The URIs of a playlist's segments.
fn segment_urls(playlist: &str) -> Vec<&str> {
    playlist.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

#[tokio::test]
async fn a_running_jobs_playlist_plays_from_presigned_segments_for_its_owner_only() {
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let mut publisher = publish(&setup.publish_url("room1", "alice").await, 40);
    let job = setup.start_job("room1", "alice", 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    let playlist_key = live_playlist(&setup, &job).await;

    // Through the API's own HTTP client: the content type a player expects.
    let (key_id, secret) = setup.api.credential();
    let response = reqwest::Client::new()
        .get(format!("{}{}", stack_env("ROOMREC_HTTP_URL"), playback_path(&setup, &job, &playlist_key)))
        .basic_auth(key_id, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/vnd.apple.mpegurl");
    let playlist = response.text().await.unwrap();
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    assert!(!playlist.contains("#EXT-X-ENDLIST"), "a live playlist: {playlist}");
    let urls = segment_urls(&playlist);
    assert!(!urls.is_empty(), "{playlist}");
    let dir = std::env::temp_dir().join(format!("roomrec-test-{job}"));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, url) in urls.iter().enumerate() {
        assert!(url.contains("X-Amz-Signature="), "{url}");
        let (status, bytes) = fetch(url).await;
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&bytes));
        let path = dir.join(format!("{i}.ts"));
        std::fs::write(&path, bytes).unwrap();
        assert!(decodes(&path), "segment {i} does not decode");
    }

    // Nobody else's: another account, or an object that is not one of the job's playlists.
    let stranger = Api::new_account().await;
    assert_eq!(stranger.get(&playback_path(&setup, &job, &playlist_key)).await.status, 404);
    let mp4 = playlist_key.replace(".m3u8", ".mp4");
    for object in [mp4.as_str(), "elsewhere/x.m3u8"] {
        let reply = setup.api.get(&playback_path(&setup, &job, object)).await;
        assert_eq!(reply.status, 404, "{object}: {:?}", reply.body);
    }
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();

    // Finished, the same playlist ends and still plays.
    let ended = setup.api.get(&playback_path(&setup, &job, &playlist_key)).await;
    let ended = ended.body.as_str().unwrap().to_owned();
    assert!(ended.contains("#EXT-X-ENDLIST"), "{ended}");
    let last = segment_urls(&ended).last().unwrap().to_string();
    assert_eq!(fetch(&last).await.0, 200);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_finished_jobs_download_url_fetches_a_playable_mp4_and_a_tampered_one_is_refused() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let mut publisher = publish(&setup.publish_url("room1", "bob").await, 40);
    let job = setup.start_job("room1", "bob", 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    setup.stop(&job).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();

    let file: &Value = &stopped["record_files"][0];
    let url = file["download_url"].as_str().unwrap_or_else(|| panic!("no download_url in {stopped}"));
    assert!(url.contains("X-Amz-Expires=3600"), "the deployment's default lifetime: {url}");
    let (status, bytes) = fetch(url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(bytes.len() as u64, file["file_size"].as_u64().unwrap());
    let path = std::env::temp_dir().join(format!("roomrec-test-{job}.mp4"));
    std::fs::write(&path, &bytes).unwrap();
    let probed = probe(&path);
    let codecs: Vec<&str> =
        probed["streams"].as_array().unwrap().iter().map(|s| s["codec_name"].as_str().unwrap()).collect();
    assert!(codecs.contains(&"h264") && codecs.contains(&"aac"), "{probed}");
    assert!(decodes(&path), "the downloaded MP4 does not decode");
    std::fs::remove_file(&path).ok();

    // A URL changed in any way is refused: another object, a longer life, no signature.
    let object = file["obs_object"].as_str().unwrap();
    let neighbour = url.replacen(&format!("{}?", object.rsplit('/').next().unwrap()), "other.mp4?", 1);
    let longer = url.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200");
    let unsigned = url.split('?').next().unwrap().to_owned();
    for tampered in [neighbour, longer, unsigned] {
        assert_ne!(tampered, url);
        assert_eq!(fetch(&tampered).await.0, 403, "{tampered}");
    }
}

#[tokio::test]
async fn a_presigned_url_is_refused_once_its_lifetime_has_passed() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let key = format!("{}/probe.txt", setup.prefix);
    crate::support::s3()
        .await
        .put_object()
        .bucket(&setup.bucket)
        .key(&key)
        .body(b"hello".to_vec().into())
        .send()
        .await
        .unwrap();
    let presigner = S3Presigner::new(&aws().await);
    let sign = |seconds| presigner.presign_get(&Access::Worker, &setup.bucket, &key, Duration::from_secs(seconds));
    let lasting = sign(3600).await.unwrap();
    let brief = sign(1).await.unwrap();
    assert_eq!(fetch(&brief).await, (200, b"hello".to_vec()), "fresh, it works");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(fetch(&brief).await.0, 403, "expired, it is refused");
    assert_eq!(fetch(&lasting).await.0, 200, "a URL still in its lifetime works");
}

#[tokio::test]
async fn a_file_complete_callback_carries_a_download_url_that_fetches_the_file() {
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let callback = json!({
        "url": receiver.url(),
        "auth_key": "8923ab8c2dcef4538923ab8c2dcef453",
        "notify_event_subscription": ["RECORD_FILE_COMPLETE"],
    });
    setup.api.set_callback(&setup.app, &callback).await.unwrap();
    let mut publisher = publish(&setup.publish_url("room1", "carol").await, 40);
    let job = setup.start_job("room1", "carol", 30).await;
    setup.wait_for_state(&job, "RUNNING", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    setup.stop(&job).await;
    setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    publisher.kill().await.ok();

    let got = receiver.wait_for(1, Duration::from_secs(30)).await.unwrap();
    let body = got[0].json();
    assert_eq!(body["event_type"], "RECORD_FILE_COMPLETE");
    let url = body["download_url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=3600"), "{url}");
    let (status, bytes) = fetch(url).await;
    assert_eq!(status, 200, "{url}");
    assert_eq!(bytes.len() as u64, body["file_size"].as_u64().unwrap());
    let path = std::env::temp_dir().join(format!("roomrec-test-{job}-callback.mp4"));
    std::fs::write(&path, &bytes).unwrap();
    assert!(decodes(&path), "the file the callback names does not decode");
    std::fs::remove_file(&path).ok();
    // Its timeline sidecar is presigned beside it.
    let timeline_url = body["timeline_url"].as_str().expect("a timeline_url beside the download_url");
    let (status, timeline) = fetch(timeline_url).await;
    assert_eq!(status, 200, "{timeline_url}");
    let timeline: serde_json::Value = serde_json::from_slice(&timeline).unwrap();
    assert_eq!(timeline["object"], body["obs_object"], "{timeline}");

    // The job's events listing shows the event with a URL signed when listed.
    let listed = setup.api.get(&format!("/v2/apps/{}/individual-stream-jobs/{job}/events", setup.app)).await.body;
    let complete = listed["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "RECORD_FILE_COMPLETE");
    let listed_url = complete.unwrap()["download_url"].as_str().unwrap();
    assert!(listed_url.contains("X-Amz-Signature="), "{listed_url}");
    assert_eq!(fetch(listed_url).await.0, 200, "{listed_url}");
}

#[tokio::test]
async fn a_file_in_the_tenants_bucket_is_presigned_by_the_tenants_role_and_fetches() {
    let api = Api::new_account().await;
    let bucket = tenant_bucket().await;
    let role = tenant_role(&bucket, &account_of(&api).await);
    let obs_addr = json!({ "bucket": bucket, "location": "us-east-1", "object": "rec/", "role_arn": role });
    let setup = Setup::for_account(api, &["MP4"], obs_addr, json!({}), json!({})).await;
    let job = record(&setup, "room1", "hank").await;

    let view = setup.job(&job).await;
    let file = &view["record_files"][0];
    let url = file["download_url"].as_str().unwrap_or_else(|| panic!("no download_url in {view}"));
    assert!(url.contains(&format!("/{bucket}/")), "{url}");
    let (status, bytes) = fetch(url).await;
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&bytes));
    assert_eq!(bytes.len() as u64, file["file_size"].as_u64().unwrap());
    // Signed as a session of the tenant's role, never with the API function's own credentials
    // (which may read the deployment's bucket only, so could not have made a URL that works).
    let roles: Value =
        serde_json::from_str(&std::fs::read_to_string(stack_env("ROOMREC_ROLES_FILE")).unwrap()).unwrap();
    let own_key = roles["individual-jobs-api"]["AWS_ACCESS_KEY_ID"].as_str().unwrap();
    let signer = url.split("X-Amz-Credential=").nth(1).unwrap().split('/').next().unwrap();
    assert_ne!(signer, own_key, "{url}");
}
