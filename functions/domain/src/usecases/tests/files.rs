use super::*;
use crate::download::DownloadLifetime;
use crate::job::RecordFile;
use crate::ports::{Blobs, IfStored};
use crate::rule::{RecordFormat, RoleArn};
use crate::testing::open_upload;

const TENANT_ROLE: &str = "arn:aws:iam::123456789012:role/recorder";

fn file(bucket: &str, key: &str) -> RecordFile {
    RecordFile {
        record_format: if key.ends_with(".m3u8") { RecordFormat::Hls } else { RecordFormat::Mp4 },
        obs_bucket: bucket.into(),
        obs_object: key.into(),
        file_size: 10,
        record_duration: 1.0,
        start_time: Timestamp::zero(),
        end_time: Timestamp::zero(),
        download_url: None,
        timeline_object: None,
        timeline_url: None,
        quality: None,
    }
}

impl World {
    /// An individual job of `app` under `rule` that a worker has finished `files` of.
    async fn job_with_files(&self, app: &OwnedApp, rule: &str, files: Vec<RecordFile>) -> Job {
        let job = self.individual(app, rule).await;
        let mut record = self.store.job(&job.app_id, &job.job_id).unwrap();
        record.job.record_files = Some(files);
        self.store.put_job_record(record);
        job
    }

    /// An app of `alice` whose rule records into her own bucket `tenant-b` through her role.
    async fn app_with_role_rule(&self) -> (OwnedApp, String) {
        let app = self.apps.create(&account("alice"), body(r#"{"app_name":"own"}"#)).await.unwrap();
        let owned = self.access.app(&account("alice"), app.app_id.as_str()).await.unwrap();
        let rule = format!(
            r#"{{"obs_addr":{{"bucket":"tenant-b","location":"eu-west-1","role_arn":"{TENANT_ROLE}"}},"record_formats":["HLS"]}}"#
        );
        let rule = self.rules.create_or_update(&owned, body(&rule)).await.unwrap();
        (owned, rule.rule.rule_id.to_string())
    }
}

#[tokio::test]
async fn a_file_in_the_deployments_bucket_is_signed_as_the_deployment_for_the_configured_lifetime() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let key = format!("{}/rec/a.mp4", app.id());
    let job = w.job_with_files(&app, &rule, vec![file("b12", &key)]).await;
    let files = w.files.clone().with_lifetime(DownloadLifetime::try_from(90).unwrap());

    let shown = files.get(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();

    let url = shown.record_files.unwrap()[0].download_url.clone();
    assert_eq!(url, Some(format!("mem://b12/{key}?expires=90&signer=worker")));
    let stored = w.store.job(&job.app_id, &job.job_id).unwrap();
    assert!(stored.job.record_files.unwrap().iter().all(|f| f.download_url.is_none()), "URLs are never stored");
}

#[tokio::test]
async fn a_file_in_the_tenants_bucket_is_signed_with_the_tenants_role_and_the_account_as_external_id() {
    let w = world();
    let (app, rule) = w.app_with_role_rule().await;
    let job = w.job_with_files(&app, &rule, vec![file("tenant-b", "rec/a.m3u8")]).await;

    let refused = w.files.get(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    assert_eq!(refused.record_files.unwrap()[0].download_url, None, "an untrusting role signs nothing");

    w.storage.trust(RoleArn::try_from(TENANT_ROLE.to_owned()).unwrap(), "alice");
    let shown = w.files.get(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    let url = shown.record_files.unwrap()[0].download_url.clone().unwrap();
    assert!(url.ends_with(&format!("signer={TENANT_ROLE}")), "{url}");
    assert!(
        w.storage.asked().iter().all(|a| matches!(a, crate::storage::Access::Role { .. })),
        "never as the deployment"
    );
}

#[tokio::test]
async fn a_key_outside_the_apps_prefix_in_the_deployments_bucket_gets_no_url() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.job_with_files(&app, &rule, vec![file("b12", "other-app/rec/a.mp4")]).await;
    let shown = w.files.get(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    assert_eq!(shown.record_files.unwrap()[0].download_url, None);
}

#[tokio::test]
async fn a_running_jobs_view_names_the_files_it_records_now() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    let key = format!("{}/rec/live.m3u8", app.id());
    let mut record = w.store.job(&job.app_id, &job.job_id).unwrap();
    record.open_uploads.push(open_upload(RecordFormat::Hls, &key, 1));
    w.store.put_job_record(record);

    let shown = w.files.get(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();

    let live = shown.recording_files.unwrap();
    assert_eq!((live[0].record_format, live[0].obs_object.as_str()), (RecordFormat::Hls, key.as_str()));
    let json = serde_json::to_value(w.jobs.get(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap());
    assert!(json.unwrap().get("recording_files").is_none(), "only the files view adds them");
}

const PLAYLIST: &str =
    "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\nlive_000001.ts\n#EXTINF:2.000,\nlive_000002.ts\n";

#[tokio::test]
async fn a_live_playlist_is_served_with_every_segment_presigned() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    let key = format!("{}/rec/live.m3u8", app.id());
    let mut record = w.store.job(&job.app_id, &job.job_id).unwrap();
    record.open_uploads.push(open_upload(RecordFormat::Hls, &key, 1));
    w.store.put_job_record(record.clone());
    let err = w.files.playback(&app, JobKind::Individual, job.job_id.as_str(), &key).await.unwrap_err();
    assert!(matches!(err, UseCaseError::NotFound { .. }), "nothing stored yet: {err}");
    record.open_uploads[0].bytes = 1000;
    w.store.put_job_record(record);
    w.storage.blobs.put("b12", &key, PLAYLIST.into(), "application/vnd.apple.mpegurl", IfStored::Any).await.unwrap();

    let played = w.files.playback(&app, JobKind::Individual, job.job_id.as_str(), &key).await.unwrap();

    let uris: Vec<&str> = played.lines().filter(|l| !l.starts_with('#')).collect();
    let root = app.id();
    assert_eq!(
        uris,
        [
            format!("mem://b12/{root}/rec/live_000001.ts?expires=3600&signer=worker"),
            format!("mem://b12/{root}/rec/live_000002.ts?expires=3600&signer=worker"),
        ]
    );
    assert!(played.starts_with("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\n"), "{played}");
}

#[tokio::test]
async fn a_playlist_that_is_not_one_of_the_jobs_hls_files_or_of_another_app_is_not_found() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let hls = format!("{}/rec/a.m3u8", app.id());
    let mp4 = format!("{}/rec/a.mp4", app.id());
    let job = w.job_with_files(&app, &rule, vec![file("b12", &hls), file("b12", &mp4)]).await;
    w.storage.blobs.put("b12", &hls, PLAYLIST.into(), "application/vnd.apple.mpegurl", IfStored::Any).await.unwrap();
    let id = job.job_id.as_str();
    assert!(w.files.playback(&app, JobKind::Individual, id, &hls).await.is_ok());

    for (kind, object) in [(JobKind::Individual, mp4.as_str()), (JobKind::Individual, "x.m3u8"), (JobKind::Mix, &hls)] {
        let err = w.files.playback(&app, kind, id, object).await.unwrap_err();
        assert!(matches!(err, UseCaseError::NotFound { .. }), "{object}: {err}");
    }
    let (other, _) = w.app_with_rule().await;
    let err = w.files.playback(&other, JobKind::Individual, id, &hls).await.unwrap_err();
    assert!(matches!(err, UseCaseError::NotFound { .. }), "another app's caller: {err}");
}

impl World {
    /// The callback deliverer over this world, presigning completed files as `files` would.
    fn signing_event_source(&self, notifier: Arc<ScriptedNotifier>) -> MemEventSource {
        let queue = Arc::new(MemDeliveryQueue::default());
        let deliverer = Deliverer::new(DelivererPorts {
            events: self.events.clone(),
            callbacks: self.store.clone(),
            notifier,
            queue: queue.clone(),
            clock: self.clock.clone(),
            random: Arc::new(SeqRandom::new(13)),
            metrics: Arc::new(crate::testing::MemMetrics::default()),
        })
        .with_downloads(crate::download::EventDownloads {
            jobs: self.store.clone(),
            rules: self.store.clone(),
            apps: self.store.clone(),
            presigner: Arc::new(MemPresigner { provider: self.storage.clone() }),
            lifetime: DownloadLifetime::try_from(600).unwrap(),
        });
        MemEventSource::new(self.clock.clone(), self.events.clone(), queue, deliverer)
    }

    /// The `download_url` a callback receives for a completed file at `bucket`/`key` of `job`.
    async fn delivered_url(&self, app: &OwnedApp, job: &Job, bucket: &str, key: &str) -> serde_json::Value {
        self.delivered(app, job, bucket, key).await["download_url"].clone()
    }

    /// The body a callback receives for a completed file at `bucket`/`key` of `job`, whose
    /// timeline sidecar is stored beside it.
    async fn delivered(&self, app: &OwnedApp, job: &Job, bucket: &str, key: &str) -> serde_json::Value {
        self.callbacks.put(app, body(CALLBACK)).await.unwrap();
        let mut complete = event(job, 1);
        complete.event_type = crate::callback::EventType::RecordFileComplete;
        complete.file = Some(crate::event::FileFacts {
            download_url: Some(format!("https://{bucket}.s3.eu-west-1.amazonaws.com/{key}")),
            file_size: Some(10),
            record_duration: Some(1),
            start_time: Timestamp::zero(),
            end_time: Some(Timestamp::zero()),
            width: 640,
            height: 360,
            obs_location: "eu-west-1".into(),
            obs_bucket: bucket.into(),
            obs_object: key.into(),
            timeline_object: Some(format!("{key}.timeline.json")),
            quality: None,
        });
        self.events.append(&complete).await.unwrap();
        self.events.publish(&complete).await.unwrap();
        let notifier = Arc::new(ScriptedNotifier::default());
        self.signing_event_source(notifier.clone()).run_until(self.clock.now()).await;
        let stored = self.events.get(&job.job_id, 1).await.unwrap().unwrap();
        assert_eq!(stored.event.file.unwrap().download_url, complete.file.unwrap().download_url, "stored as recorded");
        notifier.posted()[0].body.clone()
    }
}

#[tokio::test]
async fn a_file_complete_callback_carries_a_url_presigned_when_it_is_sent() {
    let w = world();
    let (app, rule) = w.app_with_rule().await;
    let job = w.individual(&app, &rule).await;
    let key = format!("{}/rec/a.mp4", app.id());
    let body = w.delivered(&app, &job, "b12", &key).await;
    assert_eq!(body["download_url"], format!("mem://b12/{key}?expires=600&signer=worker"));
    assert_eq!(body["timeline_url"], format!("mem://b12/{key}.timeline.json?expires=600&signer=worker"));

    let listed = w.job_events.list(&app, JobKind::Individual, job.job_id.as_str()).await.unwrap();
    let listed = serde_json::to_value(&listed[0]).unwrap();
    assert_eq!(listed["download_url"], format!("mem://b12/{key}?expires=3600&signer=worker"), "the listing signs too");
}

#[tokio::test]
async fn a_file_complete_callback_of_a_tenants_bucket_is_signed_by_the_tenants_role_or_keeps_its_address() {
    let w = world();
    let (app, rule) = w.app_with_role_rule().await;
    let job = w.individual(&app, &rule).await;
    let url = w.delivered_url(&app, &job, "tenant-b", "rec/a.mp4").await;
    assert_eq!(url, "https://tenant-b.s3.eu-west-1.amazonaws.com/rec/a.mp4", "the role refuses: the plain address");

    let w = world();
    w.storage.trust(RoleArn::try_from(TENANT_ROLE.to_owned()).unwrap(), "alice");
    let (app, rule) = w.app_with_role_rule().await;
    let job = w.individual(&app, &rule).await;
    let url = w.delivered_url(&app, &job, "tenant-b", "rec/a.mp4").await;
    assert_eq!(url, format!("mem://tenant-b/rec/a.mp4?expires=600&signer={TENANT_ROLE}"));
}
