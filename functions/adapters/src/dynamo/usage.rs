//! Usage counters on DynamoDB: one item per account, day and app (partition `account_id`,
//! sort `{day}#{app_id}`, so a range of days is one query), whose numbers an ended job adds
//! to with `ADD`. The item keeps the ids of the jobs it counted (`jobs`, a string set) and the
//! add is conditional on the job not being among them, so a retried add counts once.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;
use roomrec_domain::ids::{AccountId, AppId, JobId};
use roomrec_domain::ports::{StoreError, UsageStore};
use roomrec_domain::usage::{DailyUsage, RecordedSeconds, Usage};

use super::{backend, made, n, s, write_error, DynamoStore, Item, MissingDoc};

/// The counters' attributes.
const HLS_SECONDS: &str = "hls_seconds";
const MP4_SECONDS: &str = "mp4_seconds";
const BYTES: &str = "bytes_stored";
const CPU_SECONDS: &str = "cpu_seconds";
const PANE_SECONDS: &str = "mixed_pane_seconds";
const JOBS: &str = "jobs";

fn sort_key(day: NaiveDate, app: &AppId) -> String {
    format!("{day}#{app}")
}

fn number(item: &Item, name: &str) -> f64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or_default()
}

fn daily(item: &Item) -> Result<DailyUsage, StoreError> {
    let sort = item.get("day_app").and_then(|v| v.as_s().ok()).ok_or_else(|| backend(MissingDoc))?;
    let (day, app) = sort.split_once('#').ok_or_else(|| backend(MissingDoc))?;
    let day = NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(backend)?;
    let app_id = AppId::parse(app).ok_or_else(|| backend(MissingDoc))?;
    let usage = Usage {
        recorded_seconds: RecordedSeconds { hls: number(item, HLS_SECONDS), mp4: number(item, MP4_SECONDS) },
        bytes_stored: number(item, BYTES) as u64,
        cpu_seconds: number(item, CPU_SECONDS),
        mixed_pane_seconds: number(item, PANE_SECONDS),
    };
    Ok(DailyUsage { app_id, day, usage })
}

impl DynamoStore {
    fn usage_table(&self) -> Result<&str, StoreError> {
        self.tables.usage.as_deref().ok_or_else(|| backend(NoUsageTable))
    }
}

/// The usage table is not configured in this process.
#[derive(Debug, thiserror::Error)]
#[error("ROOMREC_USAGE_TABLE is not set")]
struct NoUsageTable;

#[async_trait]
impl UsageStore for DynamoStore {
    async fn add_usage(
        &self,
        account: &AccountId,
        app: &AppId,
        day: NaiveDate,
        job: &JobId,
        usage: &Usage,
    ) -> Result<(), StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(self.usage_table()?)
            .key("account_id", s(account.as_str()))
            .key("day_app", s(sort_key(day, app)))
            .update_expression("ADD #hls :hls, #mp4 :mp4, #bytes :bytes, #cpu :cpu, #panes :panes, #jobs :job")
            .condition_expression("NOT contains(#jobs, :id)")
            .expression_attribute_names("#hls", HLS_SECONDS)
            .expression_attribute_names("#mp4", MP4_SECONDS)
            .expression_attribute_names("#bytes", BYTES)
            .expression_attribute_names("#cpu", CPU_SECONDS)
            .expression_attribute_names("#panes", PANE_SECONDS)
            .expression_attribute_names("#jobs", JOBS)
            .expression_attribute_values(":hls", n(usage.recorded_seconds.hls))
            .expression_attribute_values(":mp4", n(usage.recorded_seconds.mp4))
            .expression_attribute_values(":bytes", n(usage.bytes_stored))
            .expression_attribute_values(":cpu", n(usage.cpu_seconds))
            .expression_attribute_values(":panes", n(usage.mixed_pane_seconds))
            .expression_attribute_values(":job", AttributeValue::Ss(vec![job.to_string()]))
            .expression_attribute_values(":id", s(job.as_str()))
            .send()
            .await
            .map_err(|e| write_error(e, |e| e.is_conditional_check_failed_exception()));
        // A job already counted here (a retried add) is not counted again.
        made(written).map(drop)
    }

    async fn daily_usage(
        &self,
        account: &AccountId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        let table = self.usage_table()?;
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("account_id = :account AND day_app BETWEEN :from AND :to")
                .expression_attribute_values(":account", s(account.as_str()))
                .expression_attribute_values(":from", s(format!("{from}#")))
                // '~' sorts after every hex digit: the whole last day.
                .expression_attribute_values(":to", s(format!("{to}#~")))
                .projection_expression("day_app, #hls, #mp4, #bytes, #cpu, #panes")
                .expression_attribute_names("#hls", HLS_SECONDS)
                .expression_attribute_names("#mp4", MP4_SECONDS)
                .expression_attribute_names("#bytes", BYTES)
                .expression_attribute_names("#cpu", CPU_SECONDS)
                .expression_attribute_names("#panes", PANE_SECONDS)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for item in out.items() {
                found.push(daily(item)?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}
