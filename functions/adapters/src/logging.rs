//! Logs as CloudWatch users expect them: one JSON object a line, with the fields of every
//! enclosing span (request id, account, app, job) flattened beside the event's own, so each
//! line of a request or a job can be found by its ids alone. Lambda's advanced logging
//! controls choose the format and level:
//! <https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html>

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Lambda's log format setting (`LoggingConfig.LogFormat`): `JSON` or `Text`.
pub const LOG_FORMAT_VAR: &str = "AWS_LAMBDA_LOG_FORMAT";
/// Lambda's application log level setting (`LoggingConfig.ApplicationLogLevel`).
pub const LOG_LEVEL_VAR: &str = "AWS_LAMBDA_LOG_LEVEL";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object a line (services: Lambda, the worker on ECS, the local stack).
    Json,
    /// tracing's human-readable lines (a person running the admin tool).
    Text,
}

impl LogFormat {
    /// The format `AWS_LAMBDA_LOG_FORMAT` names, or `default` when it names none.
    pub fn from_setting(setting: Option<&str>, default: Self) -> Self {
        match setting.map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("json") => Self::Json,
            Some(s) if s.eq_ignore_ascii_case("text") => Self::Text,
            _ => default,
        }
    }
}

/// The level `AWS_LAMBDA_LOG_LEVEL` names (TRACE, DEBUG, INFO, WARN, ERROR, FATAL), if any;
/// tracing has no FATAL, so it keeps errors.
pub fn level_from_setting(setting: Option<&str>) -> Option<LevelFilter> {
    match setting?.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some(LevelFilter::TRACE),
        "DEBUG" => Some(LevelFilter::DEBUG),
        "INFO" => Some(LevelFilter::INFO),
        "WARN" => Some(LevelFilter::WARN),
        "ERROR" | "FATAL" => Some(LevelFilter::ERROR),
        _ => None,
    }
}

/// Logs of a service to stderr: JSON unless `AWS_LAMBDA_LOG_FORMAT` says `Text`.
pub fn init_tracing() {
    init(LogFormat::Json);
}

/// Logs of a command a person runs: text unless `AWS_LAMBDA_LOG_FORMAT` says `JSON`.
pub fn init_cli_tracing() {
    init(LogFormat::Text);
}

/// Installs the subscriber: the level from `AWS_LAMBDA_LOG_LEVEL` (default info), refined by
/// `RUST_LOG` directives when given. A second call (tests) keeps the first subscriber.
fn init(default: LogFormat) {
    let format = LogFormat::from_setting(std::env::var(LOG_FORMAT_VAR).ok().as_deref(), default);
    let level = level_from_setting(std::env::var(LOG_LEVEL_VAR).ok().as_deref()).unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder().with_default_directive(level.into()).from_env_lossy();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.fmt_fields(JsonFields::new()).event_format(FlatJson).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The JSON line format: `timestamp`, `level`, `target`, `message`, the fields of the spans
/// from the outermost in, then the event's fields (an inner field wins over an outer one).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        line.insert("timestamp".into(), now.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        for span in ctx.event_scope().into_iter().flat_map(|scope| scope.from_root()) {
            let extensions = span.extensions();
            let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else { continue };
            if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(&fields.fields) {
                line.extend(fields);
            }
        }
        event.record(&mut Fields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Puts an event's fields into the line, numbers and booleans as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use roomrec_domain::testing::Captured;

    use super::*;

    /// The JSON lines `log` writes through the service format.
    fn lines(log: impl FnOnce()) -> Vec<Value> {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = out.text();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    #[test]
    fn every_line_of_a_request_carries_its_span_fields_beside_its_own() {
        let logged = lines(|| {
            let span = tracing::info_span!("request", request_id = "r-1", account = tracing::field::Empty);
            let _in = span.enter();
            tracing::info!(status = 201u16, latency_ms = 12u64, slow = false, "request");
            span.record("account", "acme");
            tracing::warn!(error = %"boom", "later");
        });
        assert_eq!(logged.len(), 2);
        let first = &logged[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "request");
        assert_eq!(first["request_id"], "r-1");
        assert_eq!((first["status"].as_u64(), first["latency_ms"].as_u64()), (Some(201), Some(12)));
        assert_eq!(first["slow"], false);
        assert!(first.get("account").is_none(), "an unrecorded field is left out: {first}");
        assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
        let second = &logged[1];
        assert_eq!((second["level"].as_str(), second["account"].as_str()), (Some("WARN"), Some("acme")));
        assert_eq!(second["error"], "boom");
    }

    #[test]
    fn inner_spans_add_to_outer_ones_and_the_event_wins_a_clash() {
        let logged = lines(|| {
            let outer = tracing::info_span!("job", job_id = "j-1", app_id = "a-1");
            let _outer = outer.enter();
            let inner = tracing::info_span!("upload", key = "k", app_id = "inner");
            let _inner = inner.enter();
            tracing::info!(key = "event", "part");
        });
        let line = &logged[0];
        assert_eq!((line["job_id"].as_str(), line["app_id"].as_str()), (Some("j-1"), Some("inner")));
        assert_eq!(line["key"], "event");
    }

    #[test]
    fn lambda_settings_choose_the_format_and_level() {
        assert_eq!(LogFormat::from_setting(Some("JSON"), LogFormat::Text), LogFormat::Json);
        assert_eq!(LogFormat::from_setting(Some("Text"), LogFormat::Json), LogFormat::Text);
        assert_eq!(LogFormat::from_setting(None, LogFormat::Json), LogFormat::Json);
        assert_eq!(LogFormat::from_setting(Some("yaml"), LogFormat::Text), LogFormat::Text);
        assert_eq!(level_from_setting(Some("DEBUG")), Some(LevelFilter::DEBUG));
        assert_eq!(level_from_setting(Some("FATAL")), Some(LevelFilter::ERROR));
        assert_eq!(level_from_setting(Some("warn")), Some(LevelFilter::WARN));
        assert_eq!(level_from_setting(Some("loud")), None);
        assert_eq!(level_from_setting(None), None);
    }
}
