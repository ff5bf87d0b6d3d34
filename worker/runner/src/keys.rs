//! Object names: the rule's `obs_addr.object` followed by its `record_prefix` with every
//! variable expanded, plus the format's extension.

use chrono::{DateTime, Utc};
use roomrec_domain::job::{Job, JobSpec};
use roomrec_domain::rule::{RecordFormat, RecordRule};

/// Names one recording file's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKeys {
    /// Everything before the extension.
    pub base: String,
}

impl FileKeys {
    /// The key of the HLS playlist or the MP4 file.
    pub fn main(&self, format: RecordFormat) -> String {
        match format {
            RecordFormat::Hls => format!("{}.m3u8", self.base),
            RecordFormat::Mp4 => format!("{}.mp4", self.base),
        }
    }

    /// The key of HLS segment `seq`, beside the playlist.
    pub fn segment(&self, seq: u32) -> String {
        format!("{}_{seq:06}.ts", self.base)
    }

    /// The segment's name as the playlist refers to it (relative to the playlist).
    pub fn segment_uri(&self, seq: u32) -> String {
        let key = self.segment(seq);
        key.rsplit('/').next().unwrap_or(&key).to_owned()
    }
}

/// `record_type` for each kind of job.
fn record_type(job: &Job) -> &'static str {
    match job.spec {
        JobSpec::Individual(_) => "individual_record",
        JobSpec::Mix { .. } => "mix_record",
    }
}

/// The keys of a file of `job` in `format` that started at `start`; `stream_url` gives
/// `{publish_domain}` (its host) and `{app}` (its first path segment).
pub fn file_keys(
    job: &Job,
    rule: &RecordRule,
    format: RecordFormat,
    start: DateTime<Utc>,
    stream_url: &str,
) -> FileKeys {
    let prefix = match format {
        RecordFormat::Hls => &rule.hls_config.record_prefix,
        RecordFormat::Mp4 => &rule.mp4_config.record_prefix,
    };
    let url = url::Url::parse(stream_url).ok();
    let domain = url.as_ref().and_then(|u| u.host_str()).unwrap_or("local").to_owned();
    let app = url
        .as_ref()
        .and_then(|u| u.path_segments())
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty())
        .unwrap_or("live")
        .to_owned();
    let user = match &job.spec {
        JobSpec::Individual(p) => p.user_id.to_string(),
        JobSpec::Mix { .. } => String::new(),
    };
    let format_name = match format {
        RecordFormat::Hls => "hls",
        RecordFormat::Mp4 => "mp4",
    };
    let values = [
        ("app_id", job.app_id.to_string()),
        ("record_format", format_name.to_owned()),
        ("stream", job.stream_name.clone()),
        ("file_start_time", start.format("%Y-%m-%d-%H-%M-%S").to_string()),
        ("publish_domain", domain),
        ("app", app),
        ("record_type", record_type(job).to_owned()),
        ("room_id", job.room_id.to_string()),
        ("user_id", user),
        ("job_id", job.job_id.to_string()),
    ];
    let mut base = prefix.clone();
    for (name, value) in values {
        base = base.replace(&format!("{{{name}}}"), &value);
    }
    FileKeys { base: format!("{}{base}", rule.obs_addr.object) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use roomrec_domain::ids::AppId;
    use roomrec_domain::time::Timestamp;

    #[test]
    fn the_default_prefix_expands_every_variable() {
        let app = AppId::generate();
        let rule_body =
            r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1","object":"Record/"},"record_formats":["HLS","MP4"]}"#;
        let rule = RecordRule::create(app.clone(), serde_json::from_str(rule_body).unwrap(), Timestamp::now()).unwrap();
        let job_body =
            format!(r#"{{"room_id":"r1","user_id":"u1","record_param":{{"record_rule_id":"{}"}}}}"#, rule.rule_id);
        let job = Job::individual(app, serde_json::from_str(&job_body).unwrap(), Timestamp::now()).unwrap();
        let start = Utc.with_ymd_and_hms(2021, 4, 28, 8, 57, 7).unwrap();
        let keys = file_keys(&job, &rule, RecordFormat::Hls, start, "rtmp://media.example.com:1935/live/abc");
        let stream = &job.stream_name;
        assert_eq!(
            keys.main(RecordFormat::Hls),
            format!("Record/Record/media.example.com/live/individual_record/hls/{stream}_2021-04-28-08-57-07/{stream}_2021-04-28-08-57-07.m3u8")
        );
        assert!(keys.segment(3).ends_with("_2021-04-28-08-57-07_000003.ts"));
        assert_eq!(keys.segment_uri(3), format!("{stream}_2021-04-28-08-57-07_000003.ts"));
    }
}
