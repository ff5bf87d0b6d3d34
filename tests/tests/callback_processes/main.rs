//! Callback tests that need processes of their own: a `roomrec-deliverer` with a compressed
//! retry schedule or with private addresses refused, and a second `roomrec-gateway` that
//! refuses them. Each deliverer here reads an events queue the test creates in moto, so it
//! sees only its own test's events and the shared deliverer never sees them. Run by
//! infra/local/test.sh as its own phase, before the shared deliverer starts.
#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

#[path = "../callbacks/support.rs"]
#[allow(dead_code)]
mod support;

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use roomrec_adapters::env;
use roomrec_domain::callback::EventType;
use roomrec_domain::delivery::ORPHAN_AFTER;
use roomrec_domain::event::DeliveryStatus;
use roomrec_domain::url::is_private_ip;
use roomrec_testkit::receiver::Receiver;
use roomrec_tests::{aws, stack_env, unique, Api};
use serde_json::json;
use support::{dead_lettered_on, verify, Setup, AUTH_KEY};
use tokio::time::Instant;

/// The retry schedule of the outage test's deliverer, as a factor of the real one: retries
/// after about 0.2 s, 12 s and 72 s (±20 %) instead of 5 s, 5 min and 30 min, so the attempt
/// that finds the receiver back comes 67 to 101 s after the first one.
const OUTAGE_SCHEDULE_SCALE: &str = "0.04";
/// How long the receiver stays down, from the first failed attempt.
const OUTAGE: Duration = Duration::from_secs(60);
/// The job's events, in the order they are emitted while the receiver is down.
const OUTAGE_EVENTS: [EventType; 5] = [
    EventType::RecordNewFileStart,
    EventType::RecordFileComplete,
    EventType::RecordNewFileStart,
    EventType::RecordFileComplete,
    EventType::CloudRecordOver,
];
/// Visibility timeout of a test's own events queue, as template.yaml's EventsQueue has it.
const EVENTS_QUEUE_VISIBILITY_SECS: &str = "360";
/// How long a process of ours may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const SETTLE: Duration = Duration::from_secs(30);

fn binary(name: &str) -> String {
    format!("{}/../target/debug/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn log_file(name: &str) -> std::fs::File {
    std::fs::File::create(format!("{}/{name}.log", stack_env("ROOMREC_STATE_DIR"))).unwrap()
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// An events queue and dead-letter queue of one test, in the stack's moto.
struct OwnQueues {
    events: String,
    dead_letter: String,
}

impl OwnQueues {
    async fn create(name: &str) -> Self {
        let sqs = aws_sdk_sqs::Client::new(&aws().await);
        let mut urls = Vec::new();
        for kind in ["events", "dlq"] {
            let out = sqs
                .create_queue()
                .queue_name(unique(&format!("roomrec-{name}-{kind}-")))
                .attributes(QueueAttributeName::VisibilityTimeout, EVENTS_QUEUE_VISIBILITY_SECS)
                .send()
                .await
                .unwrap();
            urls.push(out.queue_url.unwrap());
        }
        let dead_letter = urls.pop().unwrap();
        Self { events: urls.pop().unwrap(), dead_letter }
    }

    /// Messages on the events queue, visible or being handled.
    async fn messages_left(&self) -> u64 {
        let sqs = aws_sdk_sqs::Client::new(&aws().await);
        let out = sqs
            .get_queue_attributes()
            .queue_url(&self.events)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        out.attributes().unwrap().values().map(|v| v.parse::<u64>().unwrap()).sum()
    }
}

/// A `roomrec-deliverer` of our own on `queues`, with extra settings; killed when dropped.
fn start_deliverer(name: &str, queues: &OwnQueues, settings: &[(&str, &str)]) -> tokio::process::Child {
    tokio::process::Command::new(binary("roomrec-deliverer"))
        .env(env::EVENTS_QUEUE_URL, &queues.events)
        .env(env::CALLBACK_DLQ_URL, &queues.dead_letter)
        .envs(settings.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(&format!("deliverer-{name}")))
        .kill_on_drop(true)
        .spawn()
        .expect("the deliverer binary is built by make test")
}

/// A `roomrec-gateway` of our own on a free port, with extra settings; killed when dropped.
struct Gateway {
    url: String,
    _process: tokio::process::Child,
}

impl Gateway {
    async fn start(name: &str, settings: &[(&str, &str)]) -> Self {
        let listen = free_port();
        let template = format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR"));
        let mut process = tokio::process::Command::new(binary("roomrec-gateway"))
            .args(["--template", &template, "--listen", &listen.to_string()])
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&format!("gateway-{name}")))
            .kill_on_drop(true)
            .spawn()
            .expect("the gateway binary is built by make test");
        let url = format!("http://{listen}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + START_TIMEOUT;
        while http.get(format!("{url}/v2/apps")).send().await.is_err() {
            assert!(process.try_wait().unwrap().is_none(), "the gateway {name} exited");
            assert!(Instant::now() < deadline, "the gateway {name} did not answer in {START_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { url, _process: process }
    }
}

#[tokio::test]
async fn a_receiver_down_for_a_minute_gets_every_event_in_sequence_order_when_it_comes_back() {
    let queues = OwnQueues::create("outage").await;
    let _deliverer = start_deliverer("outage", &queues, &[(env::RETRY_SCHEDULE_SCALE, OUTAGE_SCHEDULE_SCALE)]);
    let port = free_port(); // nobody listens there yet: every connection is refused
    let setup = Setup::new(
        &format!("http://{port}/callback"),
        &["RECORD_NEW_FILE_START", "RECORD_FILE_COMPLETE", "CLOUD_RECORD_OVER"],
    )
    .await
    .with_queue(&queues.events)
    .await;

    // The outage counts from the first failed attempt; the job goes on emitting meanwhile.
    let mut events = vec![setup.emit(OUTAGE_EVENTS[0]).await];
    let deadline = Instant::now() + SETTLE;
    while setup.stored(&events[0]).await.attempts.is_empty() {
        assert!(Instant::now() < deadline, "the first event was never attempted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down_until = Instant::now() + OUTAGE;
    let spacing = OUTAGE / OUTAGE_EVENTS.len() as u32;
    for kind in &OUTAGE_EVENTS[1..] {
        tokio::time::sleep(spacing).await;
        events.push(setup.emit(*kind).await);
    }
    tokio::time::sleep_until(down_until).await;
    let receiver = Receiver::start_on(port, vec![], 200).await.unwrap();

    let got = receiver.wait_for(events.len(), Duration::from_secs(90)).await.unwrap();
    let sequences: Vec<_> = got.iter().map(|r| r.json()["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5]);
    for (request, event) in got.iter().zip(&events) {
        verify(request).expect("an independent Standard Webhooks implementation accepts the signature");
        assert_eq!(request.headers["webhook-id"], event.event_id.as_str());
        assert_eq!(request.json()["event_type"], serde_json::to_value(event.event_type).unwrap());
    }

    // The first event's log shows the outage: refused connections for at least a minute,
    // then the 200. The later ones waited for it and were sent once, when it was through.
    let first = setup.wait_settled(&events[0], SETTLE).await;
    assert_eq!(first.delivery_status, DeliveryStatus::Delivered);
    let (delivered, failed) = first.attempts.split_last().unwrap();
    assert_eq!(delivered.status, Some(200), "{:?}", first.attempts);
    assert!(failed.len() >= 3, "three retries fit in the minute: {:?}", first.attempts);
    for attempt in failed {
        assert_eq!(attempt.status, None, "{attempt:?}");
        assert!(attempt.error.as_deref().unwrap_or_default().starts_with("unreachable"), "{attempt:?}");
    }
    let outage = (delivered.at.as_datetime() - failed[0].at.as_datetime()).to_std().unwrap_or_default();
    assert!(outage >= OUTAGE, "failing for only {outage:?}");
    for event in &events[1..] {
        let stored = setup.wait_settled(event, SETTLE).await;
        assert_eq!(stored.delivery_status, DeliveryStatus::Delivered);
        let statuses: Vec<_> = stored.attempts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [Some(200)], "sequence {} was sent before its predecessor was through", event.sequence);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), events.len(), "no event arrived twice");
    assert_eq!(queues.messages_left().await, 0, "every message was acknowledged");
    receiver.stop().await;
}

#[tokio::test]
async fn an_event_whose_queue_message_was_lost_is_queued_again_by_the_next_and_both_arrive_in_order() {
    let queues = OwnQueues::create("orphan").await;
    let _deliverer = start_deliverer("orphan", &queues, &[(env::RETRY_SCHEDULE_SCALE, OUTAGE_SCHEDULE_SCALE)]);
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    let setup = Setup::new(&receiver.url(), &["RECORD_NEW_FILE_START", "CLOUD_RECORD_OVER"])
        .await
        .with_queue(&queues.events)
        .await;

    // In the outbox, but its message never reached the queue (the worker's publish failed).
    let lost = setup.record(EventType::RecordNewFileStart).await;
    let scale: f64 = OUTAGE_SCHEDULE_SCALE.parse().unwrap();
    tokio::time::sleep(ORPHAN_AFTER.mul_f64(scale) + Duration::from_secs(1)).await;
    let next = setup.emit(EventType::CloudRecordOver).await;

    let got = receiver.wait_for(2, Duration::from_secs(30)).await.unwrap();
    let ids: Vec<_> = got.iter().map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [lost.event_id.clone(), next.event_id.clone()], "the lost event first, then the next");
    for event in [&lost, &next] {
        let stored = setup.wait_settled(event, SETTLE).await;
        assert_eq!(stored.delivery_status, DeliveryStatus::Delivered);
        assert_eq!(stored.attempts.len(), 1, "{:?}", stored.attempts);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 2, "no event arrived twice");
    assert_eq!(queues.messages_left().await, 0, "every message was acknowledged");
    receiver.stop().await;
}

#[tokio::test]
async fn saving_a_callback_url_on_a_private_address_is_refused_when_the_deployment_does_not_allow_it() {
    let gateway = Gateway::start("refusing", &[(env::ALLOW_PRIVATE_CALLBACKS, "false")]).await;
    let api = Api::new_account().await.against(&gateway.url);
    let app = api.create_app("rtctest").await.unwrap();
    let path = format!("/v2/apps/{app}/record-callback");
    let mut refused: Vec<String> = [
        "http://127.0.0.1:8080/callback",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8080/callback",
        "http://[::1]/callback",
        "http://[fd00:ec2::23]/",
    ]
    .map(String::from)
    .to_vec();
    // A name no literal check can judge, only resolving it: this machine's own host name,
    // when it resolves to private addresses only (it does in the containers we run in).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_owned();
    let addresses: Vec<IpAddr> =
        tokio::net::lookup_host((host.as_str(), 80)).await.map(|a| a.map(|a| a.ip()).collect()).unwrap_or_default();
    if !host.is_empty() && !addresses.is_empty() && addresses.iter().all(|ip| is_private_ip(*ip)) {
        refused.push(format!("http://{host}:8080/callback"));
    } else {
        eprintln!("host name {host:?} resolves to {addresses:?}: not a private-only name, case left out");
    }

    for url in &refused {
        let reply = api.put(&path, &json!({ "url": url, "auth_key": AUTH_KEY })).await;
        assert_eq!(reply.status, 400, "{url}: {:?}", reply.body);
        assert_eq!(reply.body["error_code"], "INVALID_PARAMETER", "{url}");
        assert!(reply.error_msg().starts_with("url:"), "{url}: {}", reply.error_msg());
    }
    assert_eq!(api.get(&path).await.status, 404, "a refused callback is not saved");
    // The same gateway saves a public URL: it refuses what it must, not everything.
    let reply = api.put(&path, &json!({ "url": "https://hooks.example.com/rec", "auth_key": AUTH_KEY })).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
}

#[tokio::test]
async fn a_deliverer_that_refuses_private_addresses_fails_a_loopback_callback_without_sending_or_retrying_it() {
    let queues = OwnQueues::create("refusing").await;
    // A compressed schedule, so a retry (if the refusal were taken for a passing failure)
    // would come within a second or two.
    let _deliverer = start_deliverer(
        "refusing",
        &queues,
        &[(env::ALLOW_PRIVATE_CALLBACKS, "false"), (env::RETRY_SCHEDULE_SCALE, OUTAGE_SCHEDULE_SCALE)],
    );
    let receiver = Receiver::start(vec![], 200).await.unwrap();
    // Saved through the stack's gateway, which allows private addresses as `make up` does.
    let setup = Setup::new(&receiver.url(), &["CLOUD_RECORD_OVER"]).await.with_queue(&queues.events).await;
    let event = setup.emit(EventType::CloudRecordOver).await;

    let stored = setup.wait_settled(&event, SETTLE).await;
    assert_eq!(stored.delivery_status, DeliveryStatus::Failed);
    assert_eq!(stored.attempts.len(), 1, "{:?}", stored.attempts);
    assert_eq!(stored.attempts[0].status, None);
    let error = stored.attempts[0].error.as_deref().unwrap_or_default();
    assert!(error.starts_with("refused:") && error.contains("127.0.0.1"), "{error}");
    assert!(dead_lettered_on(&queues.dead_letter, &event.event_id, Duration::from_secs(10)).await);

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(setup.stored(&event).await.attempts.len(), 1, "the refusal was retried");
    assert_eq!(queues.messages_left().await, 0, "the message was acknowledged, not kept for a retry");
    assert!(receiver.received().is_empty(), "a request reached the loopback receiver");
}
