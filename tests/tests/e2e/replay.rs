//! Replays every event in `events/` through its function's handler, exactly as Lambda would
//! deliver it, and checks what `events/expected-status.json` promises for it:
//!
//! - `events/<http function>/*.json` are API Gateway HTTP API (payload 2.0) events; the number
//!   is the HTTP status the handler must answer.
//! - `events/callback-delivery/*.json` are SQS events from the events queue; the number is how
//!   many `batchItemFailures` the handler's partial batch response must list (0: every message
//!   acknowledged). They refer to the fixture outbox event `roomrec_admin::seed` writes.
//!
//! The files run in name order after one seeding, so `callback-delivery/` runs before
//! `record-callback-api/` gives the fixture app a callback: the fixture event settles as
//! `SKIPPED` (no callback), deterministically.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::Request;
use roomrec_adapters::Deps;
use roomrec_domain::event::DeliveryStatus;
use roomrec_domain::ids::JobId;
use roomrec_domain::ports::EventLog;
use roomrec_tests::deps;

async fn dispatch(function: &str, deps: &Deps, req: Request) -> u16 {
    let response = match function {
        "apps-api" => apps_api::handle(deps, req).await,
        "record-rules-api" => record_rules_api::handle(deps, req).await,
        "record-callback-api" => record_callback_api::handle(deps, req).await,
        "rooms-api" => rooms_api::handle(deps, req).await,
        "individual-jobs-api" => individual_jobs_api::handle(deps, req).await,
        "mix-jobs-api" => mix_jobs_api::handle(deps, req).await,
        "jocloud-api" => jocloud_api::handle(deps, req).await,
        "web-console" => web_console::handle(deps, req).await,
        other => panic!("events/{other}: no such function"),
    };
    response.status().as_u16()
}

#[tokio::test]
async fn every_event_in_events_replays_with_its_expected_status() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events");
    let expected: BTreeMap<String, u16> =
        serde_json::from_str(&std::fs::read_to_string(root.join("expected-status.json")).unwrap()).unwrap();
    let deps = deps().await;
    roomrec_admin::seed(&roomrec_admin::Admin::from_env().await.unwrap()).await.unwrap();

    let deliverer = roomrec_adapters::deliverer(&deps.config).await.unwrap();

    let mut replayed = 0;
    let mut failures = Vec::new();
    for (name, expected) in &expected {
        let (function, _) = name.split_once('/').unwrap();
        let text = std::fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"));
        if function == "callback-delivery" {
            let event: SqsEvent =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("events/{name} is not an SQS event: {e}"));
            let got = callback_delivery::handle(&deliverer, event).await.batch_item_failures.len();
            if got != usize::from(*expected) {
                failures.push(format!("{name}: expected {expected} batch item failures, got {got}"));
            }
        } else {
            let request = lambda_http::request::from_str(&text)
                .unwrap_or_else(|e| panic!("events/{name} is not an API Gateway event: {e}"));
            let got = dispatch(function, &deps, request).await;
            if got != *expected {
                failures.push(format!("{name}: expected status {expected}, got {got}"));
            }
        }
        replayed += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every event file is listed, so none is silently skipped.
    let mut on_disk = 0;
    for dir in std::fs::read_dir(&root).unwrap().flatten().filter(|d| d.path().is_dir()) {
        on_disk += std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|f| f.path().extension().is_some_and(|e| e == "json"))
            .count();
    }
    assert_eq!(replayed, on_disk, "events/expected-status.json must list every event file");
    assert!(replayed >= 20);

    // The delivery really happened: the fixture event was skipped (no callback), not dropped.
    let events = roomrec_adapters::event_log(&deps.config).await;
    let job = JobId::parse(roomrec_admin::INDIVIDUAL_JOB_ID).unwrap();
    let stored =
        events.get(&job, roomrec_admin::EVENT_SEQUENCE).await.unwrap().expect("the fixture event is in the outbox");
    assert_eq!(stored.event.event_id, roomrec_admin::EVENT_ID);
    assert_eq!(stored.delivery_status, DeliveryStatus::Skipped);
    assert!(stored.attempts.is_empty(), "{stored:?}");
}
