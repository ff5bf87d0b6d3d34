//! The response schemas of `api/openapi.json` against what the domain types really serialise
//! to, for the values schemathesis cannot reach through the API without a worker: files,
//! events with their delivery logs, stopped and Jocloud jobs. A field renamed, added or made
//! optional in Rust fails here until the document says the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use roomrec_domain::callback::{AuthKey, CallbackView, EventType, RecordCallback};
use roomrec_domain::event::{Attempt, DeliveryStatus, FileFacts, RecordEvent, StoredEvent};
use roomrec_domain::ids::{AppId, JobId, RecordId, ResId, RoomId, RuleId, UserId};
use roomrec_domain::job::{Job, JobSpec, JobState, JocloudTag, RecordFile, StopReason};
use roomrec_domain::jocloud::{RecordType, Recording, RecordingState, RecordingView, StreamType};
use roomrec_domain::publish::{PublishBase, PublishSecret, PublishUrl, PublishUrlRequest};
use roomrec_domain::quality::{Gaps, InputChange, QualityReport};
use roomrec_domain::room::{RoomStream, Roster, VideoType};
use roomrec_domain::rule::{RecordFormat, RecordRule};
use roomrec_domain::testing::{now, random};
use roomrec_domain::url::StreamUrl;
use serde_json::{json, Value};

/// Keywords the checker below understands; `pattern` and lengths are not checked here
/// (schemathesis checks them on every answer it gets).
const KNOWN: &[&str] = &[
    "$ref",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "minimum",
    "maximum",
    "description",
    "examples",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "default",
];

fn spec() -> Value {
    serde_json::from_str(apps_api::OPENAPI_JSON).unwrap()
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("unknown type {other}"),
    }
}

/// Every way `value` breaks `schema`, each with the JSON path it happens at.
fn violations(spec: &Value, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let rules = schema.as_object().expect("a schema object");
    if let Some(unknown) = rules.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        panic!("{at}: the checker does not know `{unknown}`; teach it before relying on it");
    }
    if let Some(target) = rules.get("$ref").and_then(Value::as_str) {
        let resolved = spec.pointer(target.trim_start_matches('#')).unwrap_or_else(|| panic!("{target}"));
        violations(spec, resolved, value, at, found);
    }
    if let Some(types) = rules.get("type") {
        let names: Vec<&str> = match types {
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            name => vec![name.as_str().unwrap()],
        };
        if !names.iter().any(|name| type_matches(name, value)) {
            found.push(format!("{at}: {value} is not of type {names:?}"));
            return;
        }
    }
    if rules.get("enum").and_then(Value::as_array).is_some_and(|allowed| !allowed.contains(value)) {
        found.push(format!("{at}: {value} is not one of {}", rules["enum"]));
    }
    if rules.get("const").is_some_and(|c| c != value) {
        found.push(format!("{at}: {value} is not {}", rules["const"]));
    }
    if let Some(options) = rules.get("anyOf").and_then(Value::as_array) {
        let fits = |option: &Value| {
            let mut errors = Vec::new();
            violations(spec, option, value, at, &mut errors);
            errors.is_empty()
        };
        if !options.iter().any(fits) {
            found.push(format!("{at}: {value} fits none of anyOf"));
        }
    }
    let number = value.as_f64();
    if let (Some(min), Some(n)) = (rules.get("minimum").and_then(Value::as_f64), number) {
        if n < min {
            found.push(format!("{at}: {n} < minimum {min}"));
        }
    }
    if let (Some(max), Some(n)) = (rules.get("maximum").and_then(Value::as_f64), number) {
        if n > max {
            found.push(format!("{at}: {n} > maximum {max}"));
        }
    }
    if let Value::Object(fields) = value {
        for name in rules.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !fields.contains_key(name.as_str().unwrap()) {
                found.push(format!("{at}: required field {name} is missing"));
            }
        }
        let properties = rules.get("properties").and_then(Value::as_object);
        for (name, field) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(schema) => violations(spec, schema, field, &format!("{at}.{name}"), found),
                None if rules.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    found.push(format!("{at}: field `{name}` is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(schema)) = (value, rules.get("items")) {
        for (i, item) in items.iter().enumerate() {
            violations(spec, schema, item, &format!("{at}[{i}]"), found);
        }
    }
}

/// Asserts `value` fits the component schema `name`.
fn assert_fits(name: &str, value: &Value) {
    let spec = spec();
    let mut found = Vec::new();
    violations(&spec, &json!({ "$ref": format!("#/components/schemas/{name}") }), value, name, &mut found);
    assert!(found.is_empty(), "{name} does not describe {value:#}:\n{}", found.join("\n"));
}

/// A quality report with every field set, as a remux with a pause would carry it.
fn quality() -> QualityReport {
    let opened =
        InputChange { at_ms: 0, bitrate_kbps: Some(800), fps: Some(25.0), width: Some(640), height: Some(360) };
    let slower = InputChange { at_ms: 12_000, fps: Some(12.5), ..Default::default() };
    QualityReport {
        av_offset_ms: Some(0.0),
        gaps: Gaps { count: 1, seconds: 2.4 },
        dropped_frames: 3,
        duplicated_frames: 0,
        input_changes: vec![opened, slower],
        late_frames_skipped: 0,
    }
}

fn record_file(format: RecordFormat) -> RecordFile {
    RecordFile {
        record_format: format,
        obs_bucket: "b12".into(),
        obs_object: "Record/app/room001/s_1.mp4".into(),
        timeline_object: Some("Record/app/room001/s_1.mp4.timeline.json".into()),
        timeline_url: None,
        file_size: 1_048_576,
        record_duration: 61.5,
        start_time: now(),
        end_time: now(),
        download_url: None,
        quality: Some(quality()),
    }
}

fn individual_job(body: Value) -> Job {
    Job::individual(AppId::generate(random()), serde_json::from_value(body).unwrap(), random(), now()).unwrap()
}

fn rule_id() -> String {
    RuleId::generate(random()).to_string()
}

fn stopped(mut job: Job) -> Job {
    job.state = JobState::Stopped;
    job.stop_reason = Some(StopReason::ExceedMaxIdleTime);
    job.stop_time = now();
    job.record_files = Some(vec![record_file(RecordFormat::Hls), record_file(RecordFormat::Mp4)]);
    job.jocloud = Some(JocloudTag { recordid: RecordId::generate(random()), part: 2, first_file: 3 });
    job
}

fn mix_job() -> Job {
    let body = json!({
        "mix_param": {
            "room_id": "room001", "encode_template": "1280x720_15_1200", "max_idle_time": 60,
            "layout_template": "screen_share_left",
            "layout_panes": [{"id": 1, "user_id": "teacher", "video_type": "SUBSTREAM"}],
            "background_color": "#102030", "background_image": "s3://b12/bg.png",
            "default_user_background_image": "s3://b12/user.png",
            "user_background_images": [{"user_id": "u1", "image": "s3://b12/u1.png"}],
        },
        "record_param": {"record_rule_id": rule_id()},
    });
    Job::mix(AppId::generate(random()), serde_json::from_value(body).unwrap(), random(), now()).unwrap()
}

#[test]
fn individual_jobs_fresh_stopped_audio_only_and_from_jocloud_fit_their_schema() {
    let fresh =
        individual_job(json!({"room_id": "room001", "user_id": "u1", "record_param": {"record_rule_id": rule_id()}}));
    assert_fits("IndividualJob", &serde_json::to_value(&fresh).unwrap());
    let mut full = stopped(individual_job(json!({
        "room_id": "room001", "user_id": "u1", "is_record_audio": true, "video_type": "SUBSTREAM",
        "resolution": "1280*720", "resolution_policy": "FIXED", "max_idle_time": 120,
        "record_param": {"record_rule_id": rule_id()},
    })));
    if let JobSpec::Individual(params) = &mut full.spec {
        params.is_record_video = false;
    }
    assert_fits("IndividualJob", &serde_json::to_value(&full).unwrap());
    assert_fits(
        "IndividualJobList",
        &json!({ "jobs": [fresh, full], "next_token": "1618993773-0123456789abcdef0123456789abcdef" }),
    );
}

#[test]
fn mix_jobs_with_every_layout_field_fit_their_schema() {
    assert_fits("MixJob", &serde_json::to_value(mix_job()).unwrap());
    assert_fits("MixJob", &serde_json::to_value(stopped(mix_job())).unwrap());
}

#[test]
fn events_with_and_without_a_file_and_a_delivery_log_fit_their_schema() {
    let event = |file: Option<FileFacts>, format: Option<RecordFormat>| RecordEvent {
        event_id: "01J0000000000000000000000".into(),
        sequence: 3,
        event_type: EventType::RecordFileComplete,
        app_id: AppId::generate(random()),
        job_id: JobId::generate(random()),
        room_id: RoomId::try_from("room001").unwrap(),
        stream_name: "s_job_room001_u1".into(),
        record_format: format,
        file,
        detail_message: "".into(),
        create_time: now(),
        usage: None,
    };
    let file = FileFacts {
        download_url: Some("https://b12.s3.amazonaws.com/x.mp4?X-Amz-Signature=abc".into()),
        file_size: Some(2048),
        record_duration: Some(60),
        start_time: now(),
        end_time: Some(now()),
        width: 1280,
        height: 720,
        obs_location: "eu-west-1".into(),
        obs_bucket: "b12".into(),
        obs_object: "x.mp4".into(),
        timeline_object: Some("x.mp4.timeline.json".into()),
        quality: Some(quality()),
    };
    let attempts = vec![
        Attempt { at: now(), status: Some(503), latency_ms: 12, error: None },
        Attempt { at: now(), status: None, latency_ms: 10_000, error: Some("timed out".into()) },
    ];
    let failing = StoredEvent {
        event: event(Some(file), Some(RecordFormat::Mp4)),
        delivery_status: DeliveryStatus::Pending,
        attempts,
        next_attempt_at: Some(now()),
        retry_from: 0,
    };
    let bare = StoredEvent {
        event: event(None, None),
        delivery_status: DeliveryStatus::Delivered,
        attempts: Vec::new(),
        next_attempt_at: None,
        retry_from: 0,
    };
    let mut started = failing.clone();
    started.event.event_type = EventType::RecordNewFileStart;
    assert_fits("StoredEvent", &serde_json::to_value(&failing).unwrap());
    assert_fits("StoredEvent", &serde_json::to_value(&started).unwrap());
    let job_id = JobId::generate(random());
    assert_fits("EventList", &json!({ "job_id": job_id, "events": [failing, bare] }));
}

#[test]
fn a_jocloud_recording_with_its_jobs_and_files_fits_its_schema() {
    let recording = Recording {
        app_id: AppId::generate(random()),
        recordid: RecordId::generate(random()),
        resid: ResId::generate(random()),
        room_id: RoomId::try_from("room001").unwrap(),
        streamtype: StreamType::Source,
        recordtype: RecordType::Audio,
        record_rule_id: RuleId::generate(random()),
        max_idle_time: 30,
        mix_job_id: None,
        state: RecordingState::Stopped,
        stop_reason: Some(StopReason::TenantStop),
        create_time: now(),
        stop_time: Some(now()),
    };
    let jobs = [stopped(individual_job(
        json!({"room_id": "room001", "user_id": "u1", "record_param": {"record_rule_id": rule_id()}}),
    ))];
    let view = RecordingView::new(recording, &jobs);
    // What jocloud-api's answer adds beside the view.
    let mut answer = serde_json::to_value(&view).unwrap();
    answer.as_object_mut().unwrap().extend([("code".into(), json!(0)), ("message".into(), json!("success"))]);
    assert_fits("RecordingResponse", &answer);
}

#[test]
fn rules_callbacks_and_rosters_fit_their_schemas() {
    let body = json!({
        "obs_addr": {"bucket": "b12", "location": "eu-west-1", "object": "rec/", "project_id": "p1"},
        "record_formats": ["HLS", "MP4"], "auto_record": true,
    });
    let rule =
        RecordRule::create(AppId::generate(random()), serde_json::from_value(body).unwrap(), random(), now()).unwrap();
    assert_fits("RecordRule", &serde_json::to_value(&rule).unwrap());
    let callback = CallbackView {
        app_id: AppId::generate(random()),
        record_callback: RecordCallback {
            url: serde_json::from_value(json!("https://hooks.example.com/cb")).unwrap(),
            auth_key: AuthKey::try_from("k".repeat(32)).unwrap(),
            notify_event_subscription: EventType::ALL.to_vec(),
            update_time: now(),
        },
    };
    assert_fits("CallbackView", &serde_json::to_value(&callback).unwrap());
    let room_id = RoomId::try_from("room001").unwrap();
    let stream = RoomStream {
        room_id: room_id.clone(),
        user_id: UserId::try_from("u1").unwrap(),
        url: StreamUrl::parse("rtmp://media.example.com/live/room001_u1", "url").unwrap(),
        video_type: VideoType::Substream,
        has_audio: false,
        has_video: true,
        join_time: now(),
        join_seq: 1_618_999_773_000_000,
        update_time: now(),
        media_session: None,
        media_seen: None,
    };
    assert_fits("Roster", &serde_json::to_value(Roster { room_id, streams: vec![stream] }).unwrap());
    let grant = PublishUrlRequest::default()
        .grant(
            AppId::generate(random()),
            RoomId::try_from("room001").unwrap(),
            UserId::try_from("u1").unwrap(),
            now().as_datetime(),
        )
        .unwrap();
    let base = PublishBase::parse("rtmp://media.example.com/live").unwrap();
    let minted = PublishUrl { url: base.url(&grant, &PublishSecret::generate(random())), expires_at: now() };
    assert_fits("PublishUrl", &serde_json::to_value(&minted).unwrap());
}

#[test]
fn the_checker_finds_a_job_of_the_other_kind_and_a_missing_field() {
    let mix = serde_json::to_value(mix_job()).unwrap();
    let mut found = Vec::new();
    let schema = json!({ "$ref": "#/components/schemas/IndividualJob" });
    violations(&spec(), &schema, &mix, "job", &mut found);
    assert!(found.iter().any(|f| f.contains("mix_param")), "{found:?}");
    assert!(found.iter().any(|f| f.contains("user_id")), "{found:?}");
}

/// The document's example of the request schema `name`.
fn example(name: &str) -> Value {
    let schema = &spec()["components"]["schemas"][name];
    schema["examples"][0].clone()
}

#[test]
fn a_stopped_job_with_its_usage_and_a_usage_summary_fit_their_schemas() {
    use roomrec_domain::usage::{DailyUsage, RecordedSeconds, Usage, UsageRange, UsageSummary};
    let usage = Usage {
        recorded_seconds: RecordedSeconds { hls: 12.0, mp4: 11.5 },
        bytes_stored: 4096,
        cpu_seconds: 0.75,
        mixed_pane_seconds: 0.0,
    };
    let mut job = stopped(individual_job(
        json!({"room_id": "room001", "user_id": "u1", "record_param": {"record_rule_id": rule_id()}}),
    ));
    job.usage = Some(usage);
    assert_fits("IndividualJob", &serde_json::to_value(&job).unwrap());
    let mut mix = stopped(mix_job());
    mix.usage = Some(Usage { mixed_pane_seconds: 30.0, ..usage });
    assert_fits("MixJob", &serde_json::to_value(&mix).unwrap());
    let range = UsageRange::parse(Some("2026-11-29"), None).unwrap();
    let days = [DailyUsage { app_id: AppId::generate(random()), day: range.from, usage }];
    assert_fits("UsageSummary", &serde_json::to_value(UsageSummary::of(range, &days)).unwrap());
}

#[test]
fn a_preflight_answer_with_every_kind_of_check_fits_its_schema() {
    use roomrec_domain::failure::FailureCode;
    use roomrec_domain::preflight::{AudioFacts, Check, PreflightView, ProbeFailure, Reason, StreamFacts, VideoFacts};
    use roomrec_domain::webhook::AttemptResult;
    let listed = |user: &str| StreamFacts::listed(user.into(), VideoType::Camerastream, true, true);
    let video = VideoFacts { codec: "h264".into(), width: 320, height: 240, fps: 25.0 };
    let audio = AudioFacts { codec: "aac".into(), sample_rate: 44100, channels: 1 };
    let streams = vec![
        listed("u1").probed_ok(Some(video), Some(audio)),
        listed("u2").probed_failed(ProbeFailure::Gone, None, None),
    ];
    let view = PreflightView {
        preflight_id: "0123456789abcdef0123456789abcdef".into(),
        app_id: AppId::generate(random()),
        record_rule_id: Some(RuleId::generate(random())),
        room_id: Some(RoomId::try_from("room001").unwrap()),
        create_time: now(),
        checks: vec![
            Check::failed("bucket", Reason::Storage(FailureCode::StorageRoleRequired), None),
            Check::callback(&AttemptResult::Answered { status: 500, retry_after: None }),
            Check::streams(streams),
        ],
    };
    assert_fits("Preflight", &serde_json::to_value(&view).unwrap());
    let pending = PreflightView { checks: vec![Check::streams(vec![listed("u3")])], ..view };
    assert_fits("Preflight", &serde_json::to_value(&pending).unwrap());
}

#[test]
fn every_request_example_of_the_document_is_accepted_by_the_domain() {
    use roomrec_domain::app::App;
    use roomrec_domain::jocloud::{ApplyRecordRequest, RecordIdRequest, StartRecordRequest, UpdateMixRecordRequest};
    use roomrec_domain::url::PrivateAddresses;
    fn parse<T: serde::de::DeserializeOwned>(name: &str) -> T {
        serde_json::from_value(example(name)).unwrap_or_else(|e| panic!("example of {name}: {e}"))
    }
    let app_id = || AppId::generate(random());
    App::create(parse("AppCreate"), random(), now()).unwrap();
    App::create(parse("AppCreate"), random(), now()).unwrap().update(parse("AppUpdate"), now());
    let mut rule = RecordRule::create(app_id(), parse("RuleCreate"), random(), now()).unwrap();
    rule.update(parse("RuleUpdate"), now()).unwrap();
    RecordCallback::from_request(parse("CallbackRequest"), PrivateAddresses::Refuse, now()).unwrap();
    let _: roomrec_domain::room::StreamRequest = parse("StreamRequest");
    Job::individual(app_id(), parse("IndividualJobRequest"), random(), now()).unwrap();
    let mut mix = Job::mix(app_id(), parse("MixJobRequest"), random(), now()).unwrap();
    mix.update_mix(parse("MixUpdateRequest"), now()).unwrap();
    let _: ApplyRecordRequest = parse("ApplyRecordRequest");
    parse::<StartRecordRequest>("StartRecordRequest").plan().unwrap();
    let _: UpdateMixRecordRequest = parse("UpdateMixRecordRequest");
    let _: RecordIdRequest = parse("RecordIdRequest");
    let publish: PublishUrlRequest = parse("PublishUrlRequest");
    publish
        .grant(app_id(), RoomId::try_from("r").unwrap(), UserId::try_from("u").unwrap(), now().as_datetime())
        .unwrap();
    let login =
        roomrec_domain::token::PasswordLogin::try_from(parse::<roomrec_domain::token::TokenRequest>("TokenRequest"));
    assert_eq!(login.unwrap().key_id, "4f1c2a9b0d3e5f6a7b8c");
    let examples =
        spec()["components"]["schemas"].as_object().unwrap().values().filter(|s| s["examples"][0].is_object()).count();
    let _: roomrec_domain::preflight::PreflightRequest = parse("PreflightRequest");
    assert_eq!(examples, 16, "a request example was added or removed: parse it here");
}
