//! The worker's CloudWatch Embedded Metric Format lines, as CloudWatch Logs would read them
//! from its log stream.

use std::time::Duration;

use roomrec_tests::json_log_lines;
use serde_json::{json, Value};

use crate::support::Setup;

/// The EMF records in the worker's log for `job_id` that carry the metric `name`; waits up to
/// `wait` for one.
fn records(job_id: &str, name: &str, wait: Duration) -> Vec<Value> {
    json_log_lines(
        "worker",
        &["\"_aws\"", job_id],
        |record| record["job_id"] == job_id && record.get(name).is_some(),
        wait,
    )
}

#[tokio::test]
async fn a_finished_job_writes_emf_records_of_its_start_and_its_end_by_reason() {
    let setup = Setup::new(&["MP4"], json!({}), json!({})).await;
    let job = setup.start_job("metrics-room", "ghost", 5).await;
    let stopped = setup.wait_for_state(&job, "STOPPED", Duration::from_secs(30)).await;
    assert_eq!(stopped["stop_reason"], "EXCEED_MAX_IDLE_TIME");

    let started = records(&job, "JobsStarted", Duration::from_secs(5));
    assert_eq!(started.len(), 1, "{started:#?}");
    let ended = records(&job, "JobsEnded", Duration::from_secs(5));
    assert_eq!(ended.len(), 1, "{ended:#?}");
    let record = &ended[0];
    assert_eq!(
        record["_aws"]["CloudWatchMetrics"],
        json!([{ "Namespace": "roomrec", "Dimensions": [["Service", "Reason"]], "Metrics": [{ "Name": "JobsEnded", "Unit": "Count" }] }]),
        "{record}"
    );
    assert_eq!((record["Service"].as_str(), record["Reason"].as_str()), (Some("worker"), Some("EXCEED_MAX_IDLE_TIME")));
    assert_eq!((record["JobsEnded"].as_f64(), record["app_id"].as_str()), (Some(1.0), Some(setup.app.as_str())));
    assert!(record["_aws"]["Timestamp"].is_i64(), "{record}");
}
