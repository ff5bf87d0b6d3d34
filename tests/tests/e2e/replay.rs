//! Replays every API Gateway event in `events/` through its function's handler, exactly as
//! Lambda would deliver it, and checks the status `events/expected-status.json` promises.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lambda_http::Request;
use roomrec_adapters::Deps;
use roomrec_tests::deps;

async fn dispatch(function: &str, deps: &Deps, req: Request) -> u16 {
    let response = match function {
        "apps-api" => apps_api::handle(deps, req).await,
        "record-rules-api" => record_rules_api::handle(deps, req).await,
        "record-callback-api" => record_callback_api::handle(deps, req).await,
        "rooms-api" => rooms_api::handle(deps, req).await,
        "individual-jobs-api" => individual_jobs_api::handle(deps, req).await,
        "mix-jobs-api" => mix_jobs_api::handle(deps, req).await,
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
    roomrec_admin::seed(&deps).await.unwrap();

    let mut replayed = 0;
    let mut failures = Vec::new();
    for (name, status) in &expected {
        let (function, _) = name.split_once('/').unwrap();
        let text = std::fs::read_to_string(root.join(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"));
        let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("events/{name} is not an API Gateway event: {e}"));
        let got = dispatch(function, &deps, request).await;
        if got != *status {
            failures.push(format!("{name}: expected {status}, got {got}"));
        }
        replayed += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Every event file is listed, so none is silently skipped.
    let mut on_disk = 0;
    for dir in std::fs::read_dir(&root).unwrap().flatten().filter(|d| d.path().is_dir()) {
        on_disk += std::fs::read_dir(dir.path()).unwrap().flatten().filter(|f| f.path().extension().is_some_and(|e| e == "json")).count();
    }
    assert_eq!(replayed, on_disk, "events/expected-status.json must list every event file");
    assert!(replayed >= 20);
}
