//! [`EmfMetrics`]: each measurement as one CloudWatch Embedded Metric Format line on stdout.
//! CloudWatch Logs turns such lines into metrics, from Lambda and from the worker's awslogs
//! stream alike, with no agent and no API call:
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
//!
//! Dimensions stay few (the service, a job's end reason, a file's format), so the metric count stays fixed;
//! ids ride along as properties, searchable in Logs Insights but not metrics of their own.

use std::io::Write;

use roomrec_domain::metric::{Metric, Metrics};
use roomrec_domain::rule::RecordFormat;
use serde_json::{json, Map, Value};

/// The CloudWatch namespace of every roomrec metric.
pub const NAMESPACE: &str = "roomrec";

/// Writes measurements as EMF lines on stdout, dimensioned by `service`.
#[derive(Debug, Clone, Copy)]
pub struct EmfMetrics {
    service: &'static str,
}

impl EmfMetrics {
    /// The worker's measurements (`Service` = `worker`).
    pub const WORKER: Self = Self { service: "worker" };
    /// The callback deliverer's measurements (`Service` = `callback-delivery`).
    pub const CALLBACK_DELIVERY: Self = Self { service: "callback-delivery" };
}

impl Metrics for EmfMetrics {
    fn record(&self, metric: Metric) {
        let line = emf_record(self.service, &metric, chrono::Utc::now().timestamp_millis());
        // One write of the whole line, so concurrent records never interleave.
        let _ = std::io::stdout().lock().write_all(format!("{line}\n").as_bytes());
    }
}

/// A metric's name, unit and value.
type Measured = (&'static str, &'static str, f64);

/// The EMF record of `metric` from `service` at `timestamp_ms`.
pub fn emf_record(service: &str, metric: &Metric, timestamp_ms: i64) -> Value {
    let count = |name| (name, "Count", 1.0);
    let mut dimensions = vec!["Service"];
    let mut root = Map::new();
    root.insert("Service".into(), service.into());
    let values: Vec<Measured> = match metric {
        Metric::JobStarted { app_id, job_id } | Metric::Takeover { app_id, job_id } => {
            root.insert("app_id".into(), app_id.as_str().into());
            root.insert("job_id".into(), job_id.as_str().into());
            let started = matches!(metric, Metric::JobStarted { .. });
            vec![count(if started { "JobsStarted" } else { "Takeovers" })]
        }
        Metric::JobEnded { app_id, job_id, reason } => {
            dimensions.push("Reason");
            root.insert("Reason".into(), reason.as_str().into());
            root.insert("app_id".into(), app_id.as_str().into());
            root.insert("job_id".into(), job_id.as_str().into());
            vec![count("JobsEnded")]
        }
        Metric::Recorded { job_id, format, duration } => {
            // Per format: a rule recording HLS and MP4 records the same seconds twice.
            dimensions.push("Format");
            let format = match format {
                RecordFormat::Hls => "HLS",
                RecordFormat::Mp4 => "MP4",
            };
            root.insert("Format".into(), format.into());
            root.insert("job_id".into(), job_id.as_str().into());
            vec![("RecordedSeconds", "Seconds", duration.as_secs_f64())]
        }
        Metric::UploadRetry { operation } => {
            root.insert("operation".into(), (*operation).into());
            vec![count("UploadRetries")]
        }
        Metric::CallbackAttempt { job_id, delivered, latency } => {
            root.insert("job_id".into(), job_id.as_str().into());
            root.insert("delivered".into(), (*delivered).into());
            vec![count("CallbackAttempts"), ("CallbackLatency", "Milliseconds", latency.as_secs_f64() * 1000.0)]
        }
        Metric::CallbackFailed { job_id } => {
            root.insert("job_id".into(), job_id.as_str().into());
            vec![count("CallbackFailures")]
        }
        Metric::SlotsInUse { used, total } => {
            vec![("WorkerSlotsInUse", "Count", *used as f64), ("WorkerSlots", "Count", *total as f64)]
        }
    };
    let definitions: Vec<Value> = values.iter().map(|(name, unit, _)| json!({ "Name": name, "Unit": unit })).collect();
    for (name, _, value) in values {
        root.insert(name.into(), value.into());
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": [dimensions], "Metrics": definitions }],
        }),
    );
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use roomrec_domain::ids::{AppId, JobId};
    use roomrec_domain::job::StopReason;

    use super::*;

    fn job() -> JobId {
        JobId::parse("0123456789abcdef0123456789abcdef").unwrap()
    }

    fn app() -> AppId {
        AppId::parse("5ff9701f2346968bb306cb43").unwrap()
    }

    #[test]
    fn a_job_end_is_one_emf_record_dimensioned_by_service_and_reason() {
        let metric = Metric::JobEnded { app_id: app(), job_id: job(), reason: StopReason::ExceedMaxIdleTime };
        assert_eq!(
            emf_record("worker", &metric, 1_700_000_000_123),
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_123_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "roomrec",
                        "Dimensions": [["Service", "Reason"]],
                        "Metrics": [{ "Name": "JobsEnded", "Unit": "Count" }],
                    }],
                },
                "Service": "worker",
                "Reason": "EXCEED_MAX_IDLE_TIME",
                "app_id": "5ff9701f2346968bb306cb43",
                "job_id": "0123456789abcdef0123456789abcdef",
                "JobsEnded": 1.0,
            })
        );
    }

    #[test]
    fn a_callback_attempt_carries_its_count_and_latency_in_one_record() {
        let metric = Metric::CallbackAttempt { job_id: job(), delivered: false, latency: Duration::from_millis(250) };
        let record = emf_record("callback-delivery", &metric, 0);
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["Service"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{ "Name": "CallbackAttempts", "Unit": "Count" }, { "Name": "CallbackLatency", "Unit": "Milliseconds" }])
        );
        assert_eq!((record["CallbackAttempts"].as_f64(), record["CallbackLatency"].as_f64()), (Some(1.0), Some(250.0)));
        assert_eq!(
            (record["Service"].as_str(), record["delivered"].as_bool()),
            (Some("callback-delivery"), Some(false))
        );
    }

    #[test]
    fn every_metric_names_each_dimension_and_value_on_the_record_itself() {
        let metrics = [
            Metric::JobStarted { app_id: app(), job_id: job() },
            Metric::Takeover { app_id: app(), job_id: job() },
            Metric::JobEnded { app_id: app(), job_id: job(), reason: StopReason::TenantStop },
            Metric::Recorded { job_id: job(), format: RecordFormat::Mp4, duration: Duration::from_millis(61_500) },
            Metric::UploadRetry { operation: "s3 upload part" },
            Metric::CallbackAttempt { job_id: job(), delivered: true, latency: Duration::from_millis(3) },
            Metric::CallbackFailed { job_id: job() },
            Metric::SlotsInUse { used: 2, total: 4 },
        ];
        for metric in &metrics {
            let record = emf_record("worker", metric, 0);
            let directive = &record["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "roomrec");
            for key in directive["Dimensions"][0].as_array().unwrap() {
                assert!(record[key.as_str().unwrap()].is_string(), "dimension {key} missing from {record}");
            }
            for definition in directive["Metrics"].as_array().unwrap() {
                let name = definition["Name"].as_str().unwrap();
                assert!(record[name].is_number(), "value of {name} missing from {record}");
            }
        }
        let recorded = emf_record("worker", &metrics[3], 0);
        assert_eq!(
            (
                recorded["RecordedSeconds"].as_f64(),
                recorded["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"].as_str()
            ),
            (Some(61.5), Some("Seconds"))
        );
    }
}
