//! Preflight against the in-memory ports: the probe object, the signed test event, the roster.

use super::*;
use crate::preflight::{CheckStatus, PreflightRequest, PreflightView};
use crate::storage::RoleArn;
use crate::testing::MemBlobsProvider;
use crate::webhook::AttemptResult;

const DEPLOYMENT_BUCKET: &str = "b12";
const ROLE: &str = "arn:aws:iam::123456789012:role/tenant-writer";

impl World {
    fn preflight(&self, blobs: Arc<MemBlobsProvider>) -> Preflight {
        self.preflight_posting(blobs, self.notifier.clone())
    }

    fn preflight_posting(&self, blobs: Arc<MemBlobsProvider>, notifier: Arc<ScriptedNotifier>) -> Preflight {
        Preflight::new(PreflightPorts {
            rules: self.store.clone(),
            callbacks: self.store.clone(),
            rooms: self.store.clone(),
            blobs,
            notifier,
            clock: self.clock.clone(),
            random: Arc::new(SeqRandom::new(17)),
            deployment_bucket: Some(DEPLOYMENT_BUCKET.into()),
        })
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
    assert_eq!((bucket.status, bucket.reason), (CheckStatus::Failed, Some("STORAGE_ROLE_REQUIRED")));
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
    assert_eq!((bucket.status, bucket.reason), (CheckStatus::Failed, Some("STORAGE_ACCESS_DENIED")));

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
    assert_eq!(check(&skipped, "callback").reason, Some("NO_RECORD_CALLBACK"));

    w.with_callback(&app).await;
    let notifier = ScriptedNotifier::answering(vec![AttemptResult::Answered { status: 500, retry_after: None }]);
    let preflight = w.preflight_posting(Arc::default(), Arc::new(notifier));
    let view = preflight.run(&app, PreflightRequest::default()).await.unwrap();
    let callback = check(&view, "callback");
    assert_eq!(
        (callback.status, callback.reason, callback.http_status),
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
    assert_eq!((streams.status, streams.reason), (CheckStatus::Failed, Some("ROOM_EMPTY")));

    w.join(&app, "u1").await;
    let busy = preflight.run(&app, request(None, Some("room001"))).await.unwrap();
    let streams = check(&busy, "streams");
    assert_eq!((streams.status, streams.reason), (CheckStatus::Skipped, Some("STREAMS_NOT_PROBED")));
    let listed = streams.streams.clone().unwrap();
    assert_eq!(listed.iter().map(|s| s.user_id.as_str()).collect::<Vec<_>>(), ["u1"]);
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
        assert_eq!((callback.status, callback.reason), (CheckStatus::Failed, Some(expected)));
        assert!(!callback.message.as_deref().unwrap().contains("169.254"), "no address in the answer");
    }
}
