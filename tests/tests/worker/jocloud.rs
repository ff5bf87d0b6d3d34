use std::time::{Duration, Instant};

use roomrec_tests::{publish_colour, Reply};
use serde_json::{json, Value};

use crate::support::{decodes, download, frames, near, objects, pixel, Setup};

const ALICE: [u8; 3] = [0xE0, 0x30, 0x30];
const BOB: [u8; 3] = [0x30, 0xC0, 0x30];

/// Whether `seen` (one letter a frame) has a `G` run, later an `A`, later a `B`, and nothing
/// but `B` (or unknown frames) after the first `B`.
fn in_order(seen: &str) -> bool {
    let (Some(g), Some(b)) = (seen.find('G'), seen.rfind('B')) else { return false };
    let Some(a) = seen[g..].find('A').map(|a| g + a) else { return false };
    let Some(first_b) = seen[a..].find('B').map(|b| a + b) else { return false };
    b >= first_b && !seen[first_b..].contains(['G', 'A'])
}

async fn verb(setup: &Setup, verb: &str, body: &Value) -> Reply {
    setup.api.post(&format!("/v2/apps/{}/jocloud/{verb}", setup.app), body).await
}

/// applyrecord then startrecord in `room` with `fields`; the recording as started.
async fn start(setup: &Setup, room: &str, fields: Value) -> Value {
    let applied = verb(setup, "applyrecord", &json!({ "roomid": room })).await;
    assert_eq!(applied.status, 200, "{:?}", applied.body);
    let mut body = json!({ "resid": applied.body["resid"], "roomid": room, "record_rule_id": setup.rule });
    body.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    let started = verb(setup, "startrecord", &body).await;
    assert_eq!(started.status, 200, "{:?}", started.body);
    started.body
}

async fn query(setup: &Setup, recordid: &str) -> Value {
    let reply = verb(setup, "queryrecord", &json!({ "recordid": recordid })).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

/// Polls `queryrecord` until `done` holds, for at most `within`.
async fn query_until(setup: &Setup, recordid: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let recording = query(setup, recordid).await;
        if done(&recording) {
            return recording;
        }
        assert!(Instant::now() < deadline, "the recording never got there: {recording}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn job_states(recording: &Value) -> Vec<String> {
    recording["jobs"].as_array().unwrap().iter().map(|j| j["state"].as_str().unwrap().to_owned()).collect()
}

async fn wait_for_roster(setup: &Setup, room: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while setup.api.get(&format!("/v2/apps/{}/rooms/{room}/streams", setup.app)).await.body["streams"]
        .as_array()
        .map_or(0, Vec::len)
        < count
    {
        assert!(Instant::now() < deadline, "the publishers never joined {room}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Downloads the playlist at `key` and its segments into `dir`; returns the local playlist.
async fn fetch_playlist(setup: &Setup, key: &str, dir: &std::path::Path) -> (std::path::PathBuf, Vec<String>) {
    let path = download(&setup.bucket, key, dir).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "{key}: {text}");
    let folder = key.rsplit_once('/').unwrap().0;
    let segments: Vec<String> = text.lines().filter(|l| l.ends_with(".ts")).map(str::to_owned).collect();
    for uri in &segments {
        download(&setup.bucket, &format!("{folder}/{uri}"), dir).await;
    }
    (path, segments)
}

#[tokio::test]
async fn a_jocloud_source_recording_puts_each_participant_in_s3_under_jocloud_names() {
    // The rule lists MP4 too: a Jocloud recording is HLS, one playlist per participant.
    let setup = Setup::new(&["HLS", "MP4"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let room = "jsource";
    // Small pictures: the other worker tests share the machine's two cores.
    let mut alice = publish_colour(&setup.publish_url(room, "alice").await, 40, "0xE03030", 440);
    let mut bob = publish_colour(&setup.publish_url(room, "bob").await, 40, "0x30C030", 660);
    wait_for_roster(&setup, room, 2).await;
    let started = start(&setup, room, json!({ "streamtype": 2 })).await;
    let recordid = started["recordid"].as_str().unwrap().to_owned();
    assert_eq!(started["jobs"].as_array().unwrap().len(), 2, "{started}");

    // carol joins while it records: she gets her own job in the same recording.
    let mut carol = publish_colour(&setup.publish_url(room, "carol").await, 30, "0x3030E0", 880);
    query_until(&setup, &recordid, Duration::from_secs(30), |r| job_states(r) == ["RUNNING"; 3]).await;
    let prefix = format!("{}/rid_{recordid}_{room}", setup.prefix);
    let deadline = Instant::now() + Duration::from_secs(40);
    for user in ["alice", "bob", "carol"] {
        let segment = format!("{prefix}__uid_s_{user}__uid_e_000002.ts");
        while !objects(&setup.bucket, &segment).await.iter().any(|(k, _)| *k == segment) {
            assert!(Instant::now() < deadline, "no segments of {user} uploaded while recording");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    let stopped = verb(&setup, "stoprecord", &json!({ "recordid": recordid })).await;
    assert_eq!((stopped.status.as_u16(), stopped.body["state"].as_str()), (200, Some("STOPPED")), "{:?}", stopped.body);
    let done = query_until(&setup, &recordid, Duration::from_secs(40), |r| job_states(r) == ["STOPPED"; 3]).await;
    for publisher in [&mut alice, &mut bob, &mut carol] {
        publisher.kill().await.ok();
    }

    let stored = objects(&setup.bucket, &setup.prefix).await;
    assert!(stored.iter().all(|(k, _)| !k.ends_with(".mp4")), "HLS only: {stored:?}");
    let playlists: Vec<&String> = stored.iter().map(|(k, _)| k).filter(|k| k.ends_with(".m3u8")).collect();
    assert_eq!(playlists.len(), 3, "{stored:?}");
    let dir = std::env::temp_dir().join(format!("roomrec-test-{recordid}"));
    std::fs::create_dir_all(&dir).unwrap();
    for user in ["alice", "bob", "carol"] {
        let key = format!("{prefix}__uid_s_{user}__uid_e.m3u8");
        assert!(playlists.contains(&&key), "{key} not among {playlists:?}");
        let (_, segments) = fetch_playlist(&setup, &key, &dir).await;
        assert!(segments.len() >= 3, "{user}: {segments:?}");
        for uri in &segments {
            assert!(uri.starts_with(&format!("rid_{recordid}_{room}__uid_s_{user}__uid_e_")), "{uri}");
            assert!(decodes(&dir.join(uri)), "{uri} does not decode");
        }
    }
    std::fs::remove_dir_all(&dir).ok();

    // queryrecord lists the same files, each with where to download it.
    let files = done["files"].as_array().unwrap();
    assert_eq!(files.len(), 3, "{done}");
    for file in files {
        let key = file["key"].as_str().unwrap();
        assert!(playlists.contains(&&key.to_owned()), "{key}");
        // Presigned: it fetches the playlist with no credentials.
        let url = file["download_url"].as_str().unwrap();
        assert!(url.split('?').next().unwrap().ends_with(key), "{file}");
        let fetched = reqwest::get(url).await.unwrap();
        assert_eq!(fetched.status().as_u16(), 200, "{url}");
        assert!(fetched.text().await.unwrap().starts_with("#EXTM3U"), "{url}");
        assert!(file["size"].as_u64().unwrap() > 0 && file["duration"].as_f64().unwrap() > 2.0, "{file}");
    }
}

#[tokio::test]
async fn a_jocloud_mixed_recording_is_one_playlist_named_rid_recordid_roomid_across_layout_updates() {
    let setup = Setup::new(&["HLS"], json!({ "record_slice_duration": 2 }), json!({})).await;
    let room = "jmix";
    // The grid places people in join order: alice first.
    let mut alice = publish_colour(&setup.publish_url(room, "alice").await, 60, "0xE03030", 440);
    wait_for_roster(&setup, room, 1).await;
    let mut bob = publish_colour(&setup.publish_url(room, "bob").await, 60, "0x30C030", 660);
    wait_for_roster(&setup, room, 2).await;
    let started = start(
        &setup,
        room,
        json!({ "streamtype": 1, "encode_template": "640x360_15_500", "layout_template": "nine_grids_view" }),
    )
    .await;
    let recordid = started["recordid"].as_str().unwrap().to_owned();
    query_until(&setup, &recordid, Duration::from_secs(20), |r| job_states(r) == ["RUNNING"]).await;
    tokio::time::sleep(Duration::from_secs(10)).await;

    // Updated twice between start and stop: alice in the large pane, then bob.
    for user in ["alice", "bob"] {
        let panes = json!([{ "id": 1, "user_id": user }]);
        let body = json!({ "recordid": recordid, "layout_template": "screen_share_left", "layout_panes": panes });
        let updated = verb(&setup, "updatemixrecord", &body).await;
        assert_eq!(updated.status, 200, "{:?}", updated.body);
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    let stopped = verb(&setup, "stoprecord", &json!({ "recordid": recordid })).await;
    assert_eq!(stopped.status, 200, "{:?}", stopped.body);
    query_until(&setup, &recordid, Duration::from_secs(30), |r| job_states(r) == ["STOPPED"]).await;
    alice.kill().await.ok();
    bob.kill().await.ok();

    let stored = objects(&setup.bucket, &setup.prefix).await;
    let playlists: Vec<&String> = stored.iter().map(|(k, _)| k).filter(|k| k.ends_with(".m3u8")).collect();
    let key = format!("{}/rid_{recordid}_{room}.m3u8", setup.prefix);
    assert_eq!(playlists, [&key], "one playlist for the whole recording");
    let dir = std::env::temp_dir().join(format!("roomrec-test-{recordid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (playlist, segments) = fetch_playlist(&setup, &key, &dir).await;
    assert!(segments.iter().all(|uri| uri.starts_with(&format!("rid_{recordid}_{room}_"))), "{segments:?}");

    // In the one file, in this order: the grid (alice left, bob right), alice in the large
    // pane, bob in the large pane. (When each shows depends on the machine's load: a mix
    // shows a participant once their stream is open.)
    let pictures = frames(&playlist, 1.0, 640, 360);
    let at = |f: &Vec<u8>, x, y| pixel(f, 640, x, y);
    let grid = |f: &&Vec<u8>| near(at(f, 160, 180), ALICE) && near(at(f, 480, 180), BOB);
    // The large pane covers both x = 160 and x = 400; in the grid those are two panes.
    let large = |colour| move |f: &&Vec<u8>| near(at(f, 160, 180), colour) && near(at(f, 400, 180), colour);
    let seen: String = pictures
        .iter()
        .map(|f| match (grid(&f), large(ALICE)(&f), large(BOB)(&f)) {
            (true, _, _) => 'G',
            (_, true, _) => 'A',
            (_, _, true) => 'B',
            _ => '.',
        })
        .collect();
    assert!(in_order(&seen), "grid, then alice large, then bob large, one frame a second: {seen}");
    std::fs::remove_dir_all(&dir).ok();
}
