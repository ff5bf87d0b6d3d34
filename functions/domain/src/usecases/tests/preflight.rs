//! Preflight against the in-memory ports: the probe object, the signed test event, the roster.

use super::*;
use crate::ports::PreflightStore;
use crate::preflight::{AudioFacts, ProbeFailure, StreamFacts, VideoFacts};
use crate::preflight::{CheckStatus, PreflightRequest, PreflightView};
use crate::storage::RoleArn;
use crate::testing::{MemBlobsProvider, MemPreflights};
use crate::webhook::AttemptResult;

const DEPLOYMENT_BUCKET: &str = "b12";
const ROLE: &str = "arn:aws:iam::123456789012:role/tenant-writer";

impl World {
    fn preflight(&self, blobs: Arc<MemBlobsProvider>) -> Preflight {
        self.preflight_posting(blobs, self.notifier.clone())
    }

    fn preflight_posting(&self, blobs: Arc<MemBlobsProvider>, notifier: Arc<ScriptedNotifier>) -> Preflight {
        self.preflight_with(blobs, notifier, Arc::default())
    }

    fn preflight_with(
        &self,
        blobs: Arc<MemBlobsProvider>,
        notifier: Arc<ScriptedNotifier>,
        preflights: Arc<MemPreflights>,
    ) -> Preflight {
        Preflight::new(PreflightPorts {
            rules: self.store.clone(),
            callbacks: self.store.clone(),
            rooms: self.store.clone(),
            blobs,
            notifier,
            preflights: preflights.clone(),
            probes: preflights,
            clock: self.clock.clone(),
            random: Arc::new(SeqRandom::new(17)),
            deployment_bucket: Some(DEPLOYMENT_BUCKET.into()),
        })
        .with_probe_wait(Duration::from_secs(1))
    }

    /// The preflight with `preflights` as its store and probe queue.
    fn preflight_probing(&self, preflights: Arc<MemPreflights>) -> Preflight {
        self.preflight_with(Arc::default(), self.notifier.clone(), preflights)
    }

    async fn with_callback(&self, app: &OwnedApp) {
        self.callbacks.put(app, body(CALLBACK)).await.unwrap();
    }

    /// The app's rule rewritten to `obs_addr`.
    async fn rule_storage(&self, app: &OwnedApp, obs_addr: &str) -> String {
        let json = format!(r#"{{"obs_addr":{obs_addr},"record_formats":["HLS"]}}"#);
        self.rules.create_or_update(app, body(&json)).await.unwrap().rule.rule_id.to_string()
    }
}

fn check<'v>(view: &'v PreflightView, name: &str) -> &'v crate::preflight::Check {
    view.checks.iter().find(|c| c.name == name).unwrap()
}

fn request(rule: Option<&str>, room: Option<&str>) -> PreflightRequest {
    PreflightRequest { record_rule_id: rule.map(str::to_owned), room_id: room.map(|r| RoomId::try_from(r).unwrap()) }
}

#[tokio::test]
async fn a_good_rule_and_callback_pass_and_the_probe_object_is_gone_after() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    w.with_callback(&app).await;
    let blobs = Arc::new(MemBlobsProvider::default());
    let view = w.preflight(blobs.clone()).run(&app, request(Some(&rule), None)).await.unwrap();

    assert_eq!(check(&view, "bucket").status, CheckStatus::Ok, "{view:?}");
    assert_eq!(check(&view, "callback").status, CheckStatus::Ok, "{view:?}");
    assert_eq!(check(&view, "streams").status, CheckStatus::Skipped);
    let probe = format!("{}/roomrec-preflight-{}", app.id(), view.preflight_id);
    assert_eq!(blobs.blobs.object(DEPLOYMENT_BUCKET, &probe), None, "the probe is deleted");
    assert_eq!(blobs.blobs.writes(), 1, "the probe was written");
}

#[tokio::test]
async fn the_test_event_is_a_preflight_signed_like_a_delivery() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    w.with_callback(&app).await;
    w.preflight(Arc::default()).run(&app, PreflightRequest::default()).await.unwrap();

    let posted = w.notifier.posted();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].body["event_type"], "PREFLIGHT");
    assert_eq!(posted[0].body["app_id"], app.id().as_str());
    let h = &posted[0].headers;
    let body = serde_json::to_vec(&posted[0].body).unwrap();
    let again = crate::webhook::sign(b"8923ab8c2dcef4538923ab8c2dcef453", &h.id, h.timestamp, &h.rtc_rand, &body);
    assert_eq!((&again.signature, &again.rtc_signature), (&h.signature, &h.rtc_signature));
}

#[tokio::test]
async fn another_bucket_without_a_role_fails_with_the_code_a_job_would_fail_with() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let rule = w.rule_storage(&app, r#"{"bucket":"someone-elses","location":"eu-west-1"}"#).await;
    let blobs = Arc::new(MemBlobsProvider::default());
    let view = w.preflight(blobs.clone()).run(&app, request(Some(&rule), None)).await.unwrap();

    let bucket = check(&view, "bucket");
    assert_eq!((bucket.status, bucket.reason_code()), (CheckStatus::Failed, Some("STORAGE_ROLE_REQUIRED")));
    assert!(blobs.asked().is_empty(), "no storage was reached");
}

#[tokio::test]
async fn a_role_is_assumed_with_the_account_as_external_id_and_a_refusal_is_access_denied() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let obs = format!(r#"{{"bucket":"tenant-bucket","location":"eu-west-1","role_arn":"{ROLE}"}}"#);
    let rule = w.rule_storage(&app, &obs).await;
    let blobs = Arc::new(MemBlobsProvider::default());

    let refused = w.preflight(blobs.clone()).run(&app, request(Some(&rule), None)).await.unwrap();
    let bucket = check(&refused, "bucket");
    assert_eq!((bucket.status, bucket.reason_code()), (CheckStatus::Failed, Some("STORAGE_ACCESS_DENIED")));

    blobs.trust(RoleArn::try_from(ROLE.to_owned()).unwrap(), "alice");
    let trusted = w.preflight(blobs.clone()).run(&app, request(Some(&rule), None)).await.unwrap();
    assert_eq!(check(&trusted, "bucket").status, CheckStatus::Ok, "{trusted:?}");
    assert_eq!(blobs.blobs.writes(), 1, "the probe was written once, as the role");
    let probe = format!("roomrec-preflight-{}", trusted.preflight_id);
    assert_eq!(blobs.blobs.object("tenant-bucket", &probe), None, "and deleted");
}

#[tokio::test]
async fn a_callback_answering_500_fails_and_an_app_without_one_is_skipped() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let skipped = w.preflight(Arc::default()).run(&app, PreflightRequest::default()).await.unwrap();
    assert_eq!(check(&skipped, "callback").reason_code(), Some("NO_RECORD_CALLBACK"));

    w.with_callback(&app).await;
    let notifier = ScriptedNotifier::answering(vec![AttemptResult::Answered { status: 500, retry_after: None }]);
    let preflight = w.preflight_posting(Arc::default(), Arc::new(notifier));
    let view = preflight.run(&app, PreflightRequest::default()).await.unwrap();
    let callback = check(&view, "callback");
    assert_eq!(
        (callback.status, callback.reason_code(), callback.http_status),
        (CheckStatus::Failed, Some("CALLBACK_STATUS"), Some(500))
    );
}

#[tokio::test]
async fn an_unknown_rule_is_a_404_naming_record_rule_id() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let preflight = w.preflight(Arc::default());
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(not_found_field(preflight.run(&app, request(Some(unknown), None)).await), "record_rule_id");
    assert_eq!(not_found_field(preflight.run(&app, request(Some("nonsense"), None)).await), "record_rule_id");
}

#[tokio::test]
async fn an_empty_room_fails_its_check_and_a_room_with_streams_lists_them() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let preflight = w.preflight(Arc::default());
    let empty = preflight.run(&app, request(None, Some("room001"))).await.unwrap();
    let streams = check(&empty, "streams");
    assert_eq!((streams.status, streams.reason_code()), (CheckStatus::Failed, Some("ROOM_EMPTY")));

    w.join(&app, "u1").await;
    let busy = preflight.run(&app, request(None, Some("room001"))).await.unwrap();
    let streams = check(&busy, "streams");
    assert_eq!(streams.status, CheckStatus::Pending, "nobody probed: {busy:?}");
    let listed = streams.streams.clone().unwrap();
    assert_eq!(listed.iter().map(|s| s.user_id.as_str()).collect::<Vec<_>>(), ["u1"]);
}

fn h264_aac(stream: StreamFacts) -> StreamFacts {
    let video = VideoFacts { codec: "h264".into(), width: 320, height: 240, fps: 25.0 };
    let audio = AudioFacts { codec: "aac".into(), sample_rate: 44100, channels: 1 };
    stream.probed_ok(Some(video), Some(audio))
}

#[tokio::test(start_paused = true)]
async fn a_room_probed_before_the_answer_is_ok_with_each_streams_codecs() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    w.join(&app, "u1").await;
    let preflights = Arc::new(MemPreflights::probing(h264_aac));
    let view = w.preflight_probing(preflights.clone()).run(&app, request(None, Some("room001"))).await.unwrap();

    let streams = check(&view, "streams");
    assert_eq!((streams.status, streams.reason_code()), (CheckStatus::Ok, None), "{view:?}");
    let probed = &streams.streams.as_ref().unwrap()[0];
    assert_eq!(probed.video.as_ref().map(|v| (v.codec.as_str(), v.width, v.height)), Some(("h264", 320, 240)));
    assert_eq!(probed.audio.as_ref().map(|a| a.codec.as_str()), Some("aac"));
    let sent = preflights.sent();
    assert_eq!(sent.len(), 1, "one probe message");
    assert_eq!((sent[0].app_id.clone(), sent[0].preflight_id.as_str()), (app.id().clone(), view.preflight_id.as_str()));
}

#[tokio::test(start_paused = true)]
async fn a_probe_after_the_answer_turns_pending_into_failed_when_read_by_id() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    w.join(&app, "u1").await;
    let preflights = Arc::new(MemPreflights::default());
    let preflight = w.preflight_probing(preflights.clone());
    let started = tokio::time::Instant::now();
    let view = preflight.run(&app, request(None, Some("room001"))).await.unwrap();
    assert_eq!(check(&view, "streams").status, CheckStatus::Pending);
    assert!(started.elapsed() >= Duration::from_secs(1), "the answer waited for the probe");
    let pending = preflight.get(&app, &view.preflight_id).await.unwrap();
    assert_eq!(check(&pending, "streams").status, CheckStatus::Pending);

    // The worker's part: each stream failed, written into the preflight's item.
    let id = crate::preflight::PreflightId::parse(&view.preflight_id).unwrap();
    let record = preflights.get_preflight(app.id(), &id).await.unwrap().unwrap();
    let failed = record.streams().iter().cloned().map(|s| s.probed_failed(ProbeFailure::Unreachable, None, None));
    let failed = record.clone().probed(failed.collect());
    assert!(preflights.update_preflight(&failed).await.unwrap());

    let answered = preflight.get(&app, &view.preflight_id).await.unwrap();
    let streams = check(&answered, "streams");
    assert_eq!((streams.status, streams.reason_code()), (CheckStatus::Failed, Some("STREAM_FAILED")));
    let stream = &streams.streams.as_ref().unwrap()[0];
    assert_eq!((stream.status, stream.reason.as_deref()), (Some(CheckStatus::Failed), Some("STREAM_UNREACHABLE")));
    assert_eq!(check(&answered, "bucket"), check(&view, "bucket"), "the other checks are kept as answered");
}

#[tokio::test]
async fn a_preflight_of_another_app_or_an_unknown_id_is_a_404_naming_preflight_id() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    let preflight = w.preflight(Arc::default());
    let view = preflight.run(&app, PreflightRequest::default()).await.unwrap();
    assert_eq!(preflight.get(&app, &view.preflight_id).await.unwrap(), view, "kept as answered");

    let bob = account("bob");
    let theirs = w.apps.create(&bob, body(r#"{"app_name":"other"}"#)).await.unwrap();
    let other = w.access.app(&bob, theirs.app_id.as_str()).await.unwrap();
    assert_eq!(not_found_field(preflight.get(&other, &view.preflight_id).await), "preflight_id");
    assert_eq!(not_found_field(preflight.get(&app, "0123456789abcdef0123456789abcdef").await), "preflight_id");
    assert_eq!(not_found_field(preflight.get(&app, "../x").await), "preflight_id");
}

#[tokio::test]
async fn a_callback_url_the_guard_refuses_fails_as_refused_and_timeouts_say_so() {
    let w = world();
    let (app, _) = w.app_with_rule().await;
    w.with_callback(&app).await;
    let answers = vec![
        AttemptResult::Refused("resolves to 169.254.169.254".into()),
        AttemptResult::TimedOut,
        AttemptResult::Unreachable("tcp connect error".into()),
    ];
    let preflight = w.preflight_posting(Arc::default(), Arc::new(ScriptedNotifier::answering(answers)));
    for expected in ["CALLBACK_REFUSED", "CALLBACK_TIMEOUT", "CALLBACK_UNREACHABLE"] {
        let view = preflight.run(&app, PreflightRequest::default()).await.unwrap();
        let callback = check(&view, "callback");
        assert_eq!((callback.status, callback.reason_code()), (CheckStatus::Failed, Some(expected)));
        assert!(!callback.message.as_deref().unwrap().contains("169.254"), "no address in the answer");
    }
}
