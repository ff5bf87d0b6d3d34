//! The worker's CloudWatch Embedded Metric Format lines, as CloudWatch Logs would read them
//! from its log stream.

use std::time::{Duration, Instant};

use roomrec_tests::stack_env;
use serde_json::{json, Value};

use crate::support::Setup;

/// The EMF records in the worker's log for `job_id` that carry the metric `name`; waits up to
/// `wait` for one, since the log is another process's file.
fn records(job_id: &str, name: &str, wait: Duration) -> Vec<Value> {
    let path = format!("{}/worker.log", stack_env("ROOMREC_STATE_DIR"));
    let deadline = Instant::now() + wait;
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let found: Vec<Value> = text
            .lines()
            .filter(|line| line.contains("\"_aws\"") && line.contains(job_id))
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("an EMF line is not JSON ({e}): {line}")))
            .filter(|record: &Value| record["job_id"] == job_id && record.get(name).is_some())
            .collect();
        if !found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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
