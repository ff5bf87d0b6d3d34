//! Where a recording's files go: object keys (the rule's `obs_addr.object` followed by its
//! `record_prefix` with every variable expanded, or Jocloud's names for a Jocloud job), and the
//! locations reported for them. The worker names files with these; the API shows them.
//!
//! In the deployment's recordings bucket (a rule without `obs_addr.role_arn`) every key is
//! confined under the app: `{app_id}/` comes first, whatever `object` and `record_prefix` say,
//! and no segment of what follows is `.` or `..`. The reported `obs_object` and `download_url`
//! name that real key, `{app_id}/` included. In a tenant's own bucket keys are as the rule says.

use chrono::{DateTime, Utc};

use crate::ids::{AppId, RoomId, UserId};
use crate::job::{Job, JobSpec, JocloudTag};
use crate::record::{JobRecord, OpenUpload};
use crate::rule::{RecordFormat, RecordRule, MAX_APP_SEGMENT_BYTES, MAX_PUBLISH_DOMAIN_BYTES};

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

/// The keys of a file of `record`'s job in `format` that started at `start`; `stream_url`
/// gives `{publish_domain}` (its host) and `{app}` (its first path segment). A Jocloud job's
/// files take Jocloud's names under `obs_addr.object` instead of the rule's prefix.
///
/// A file never takes the name of one the job made or is making (a prefix without
/// `{file_start_time}`, or two files in one second after a hand-off): it gets the claim's
/// epoch appended, so a worker that lost the job keeps writing only objects of its own.
pub fn file_keys(
    record: &JobRecord,
    rule: &RecordRule,
    format: RecordFormat,
    start: DateTime<Utc>,
    stream_url: &str,
) -> FileKeys {
    let keys = template_keys(record, rule, format, start, stream_url);
    let known = |keys: &FileKeys| {
        let key = keys.main(format);
        let done = record.job.record_files.iter().flatten().any(|f| f.obs_object == key);
        done || record.open_uploads.iter().any(|u| u.key == key)
    };
    if !known(&keys) {
        return keys;
    }
    let epoch = record.lease.as_ref().map_or(0, |l| l.epoch);
    (1..)
        .map(|n| FileKeys {
            base: if n == 1 { format!("{}_{epoch}", keys.base) } else { format!("{}_{epoch}_{n}", keys.base) },
        })
        .find(|keys| !known(keys))
        .unwrap_or(keys)
}

fn template_keys(
    record: &JobRecord,
    rule: &RecordRule,
    format: RecordFormat,
    start: DateTime<Utc>,
    stream_url: &str,
) -> FileKeys {
    let job = &record.job;
    if let Some(tag) = &job.jocloud {
        // Counted before this file is added to the job: the job's earlier files (a worker
        // that took the job over starts a new one) come first.
        let name = object_name(tag, &job.room_id, job.user_id(), hls_files(job, &record.open_uploads));
        return FileKeys { base: confined(rule, &format!("{}{name}", rule.obs_addr.object)) };
    }
    let prefix = match format {
        RecordFormat::Hls => &rule.hls_config.record_prefix,
        RecordFormat::Mp4 => &rule.mp4_config.record_prefix,
    };
    let url = url::Url::parse(stream_url).ok();
    // Cut to the lengths the rule's key-length check counted on.
    let domain = cut(url.as_ref().and_then(|u| u.host_str()).unwrap_or("local"), MAX_PUBLISH_DOMAIN_BYTES);
    let app = url
        .as_ref()
        .and_then(|u| u.path_segments())
        .and_then(|mut s| s.next())
        .filter(|s| !s.is_empty())
        .unwrap_or("live");
    let app = cut(app, MAX_APP_SEGMENT_BYTES);
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
        ("record_type", crate::rule::RECORD_TYPE.to_owned()),
        ("room_id", job.room_id.to_string()),
        ("user_id", user),
        ("job_id", job.job_id.to_string()),
    ];
    let mut base = prefix.clone();
    for (name, value) in values {
        base = base.replace(&format!("{{{name}}}"), &value);
    }
    FileKeys { base: confined(rule, &format!("{}{base}", rule.obs_addr.object)) }
}

/// The prefix every key of `rule`'s jobs starts with: `{app_id}/` in the deployment's
/// bucket, nothing in a tenant's own (reached through `obs_addr.role_arn`).
pub fn app_root(rule: &RecordRule) -> String {
    match rule.obs_addr.role_arn {
        Some(_) => String::new(),
        None => app_prefix(&rule.app_id),
    }
}

/// `{app_id}/`: where an app's objects are in the deployment's bucket.
pub fn app_prefix(app: &AppId) -> String {
    format!("{app}/")
}

/// `key` as stored for `rule`: under [`app_root`], where no `.` or `..` segment (made `_`)
/// can climb out of it, whatever a client or an HTTP stack makes of them.
fn confined(rule: &RecordRule, key: &str) -> String {
    let root = app_root(rule);
    if root.is_empty() {
        return key.to_owned();
    }
    let segments: Vec<&str> = key.split('/').map(|s| if matches!(s, "." | "..") { "_" } else { s }).collect();
    format!("{root}{}", segments.join("/"))
}

/// Whether `key` is one of `app`'s in the deployment's bucket: under `{app_id}/`, with no
/// `.` or `..` segment.
pub fn is_under_app(key: &str, app: &AppId) -> bool {
    key.strip_prefix(&app_prefix(app)).is_some_and(|rest| !rest.split('/').any(|s| matches!(s, "." | "..")))
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// HLS files a job has made (`job.record_files`) or is making (`open`): Jocloud recordings
/// are HLS only, and their files are numbered.
pub fn hls_files(job: &Job, open: &[OpenUpload]) -> u32 {
    let done = job.record_files.iter().flatten().filter(|f| f.record_format == RecordFormat::Hls).count();
    let open = open.iter().filter(|u| u.record_format == RecordFormat::Hls).count();
    u32::try_from(done + open).unwrap_or(u32::MAX)
}

/// Jocloud's name (without extension) for file `index` (from 0) of a job tagged `tag` in
/// `room`: `rid_{recordid}_{roomid}` for the mix, `rid_{recordid}_{roomid}__uid_s_{uid}__uid_e`
/// for a participant's source stream. A recording has one file per stream; a later one
/// (the participant came back, or a worker took the job over) gets `_2`, `_3`, …
pub fn object_name(tag: &JocloudTag, room: &RoomId, user: Option<&UserId>, index: u32) -> String {
    let mut name = format!("rid_{}_{room}", tag.recordid);
    if let Some(user) = user {
        name.push_str(&format!("__uid_s_{user}__uid_e"));
    }
    let number = tag.first_file.saturating_add(index);
    if number > 0 {
        name.push_str(&format!("_{}", number.saturating_add(1)));
    }
    name
}

/// Where an object can be downloaded: under `endpoint` (path style; a local S3) or at AWS.
pub fn download_url(endpoint: Option<&str>, bucket: &str, region: Option<&str>, key: &str) -> String {
    match (endpoint, region) {
        (Some(endpoint), _) => format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/')),
        (None, Some(region)) => format!("https://{bucket}.s3.{region}.amazonaws.com/{key}"),
        (None, None) => format!("https://{bucket}.s3.amazonaws.com/{key}"),
    }
}

/// The storage endpoint reported as `obs_location`: `endpoint` (a local S3) or AWS's for `region`.
pub fn location(endpoint: Option<&str>, region: &str) -> String {
    match endpoint {
        Some(endpoint) => endpoint.to_owned(),
        None => format!("https://s3.{region}.amazonaws.com"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppId, JobId, RecordId};
    use crate::job::RecordFile;
    use crate::testing::{now, open_upload, random};
    use chrono::TimeZone;

    #[test]
    fn the_default_prefix_expands_every_variable() {
        let app = AppId::generate(random());
        let rule_body =
            r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1","object":"Record/"},"record_formats":["HLS","MP4"]}"#;
        let rule = RecordRule::create(app.clone(), serde_json::from_str(rule_body).unwrap(), random(), now()).unwrap();
        let job_body =
            format!(r#"{{"room_id":"r1","user_id":"u1","record_param":{{"record_rule_id":"{}"}}}}"#, rule.rule_id);
        let job =
            JobRecord::new(Job::individual(app, serde_json::from_str(&job_body).unwrap(), random(), now()).unwrap());
        let start = Utc.with_ymd_and_hms(2021, 4, 28, 8, 57, 7).unwrap();
        let keys = file_keys(&job, &rule, RecordFormat::Hls, start, "rtmp://media.example.com:1935/live/abc");
        let (stream, app) = (&job.job.stream_name, &rule.app_id);
        assert_eq!(
            keys.main(RecordFormat::Hls),
            format!("{app}/Record/Record/media.example.com/live/continuous_record/hls/{stream}_2021-04-28-08-57-07/{stream}_2021-04-28-08-57-07.m3u8")
        );
        assert!(keys.segment(3).ends_with("_2021-04-28-08-57-07_000003.ts"));
        assert_eq!(keys.segment_uri(3), format!("{stream}_2021-04-28-08-57-07_000003.ts"));
    }

    #[test]
    fn a_mix_jobs_record_type_is_continuous_record_too_and_its_stream_keeps_its_keys_apart() {
        let app = AppId::generate(random());
        let rule_body = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1"},"record_formats":["MP4"]}"#;
        let rule = RecordRule::create(app.clone(), serde_json::from_str(rule_body).unwrap(), random(), now()).unwrap();
        let mix_body = format!(
            r#"{{"mix_param":{{"room_id":"r1","encode_template":"640x360_15_500"}},"record_param":{{"record_rule_id":"{}"}}}}"#,
            rule.rule_id
        );
        let individual_body =
            format!(r#"{{"room_id":"r1","user_id":"u1","record_param":{{"record_rule_id":"{}"}}}}"#, rule.rule_id);
        let mix =
            JobRecord::new(Job::mix(app.clone(), serde_json::from_str(&mix_body).unwrap(), random(), now()).unwrap());
        let one = JobRecord::new(
            Job::individual(app, serde_json::from_str(&individual_body).unwrap(), random(), now()).unwrap(),
        );
        let start = Utc.with_ymd_and_hms(2021, 4, 28, 8, 57, 7).unwrap();
        let key = |job: &JobRecord| {
            file_keys(job, &rule, RecordFormat::Mp4, start, "rtmp://h/live/x").main(RecordFormat::Mp4)
        };
        let (mix_key, individual_key) = (key(&mix), key(&one));
        assert!(mix_key.contains("/live/continuous_record/mp4/m_"), "{mix_key}");
        assert!(individual_key.contains("/live/continuous_record/mp4/s_"), "{individual_key}");
        assert_ne!(mix_key, individual_key);
    }

    #[test]
    fn the_longest_key_a_saved_rule_can_name_fits_s3_with_the_app_folder_and_every_suffix() {
        use crate::rule::{longest_expansion, CONFINEMENT_BYTES, MAX_S3_KEY_BYTES, PREFIX_VARIABLES};
        let app = AppId::generate(random());
        let every: String = PREFIX_VARIABLES.iter().map(|v| format!("{{{v}}}/")).collect();
        let object_bytes = MAX_S3_KEY_BYTES - CONFINEMENT_BYTES - 96 - longest_expansion(&every);
        let rule_body = format!(
            r#"{{"obs_addr":{{"bucket":"b12","location":"eu-west-1","object":"{}"}},"record_formats":["HLS","MP4"],
            "hls_config":{{"record_prefix":"{every}"}},"mp4_config":{{"record_prefix":"{every}"}}}}"#,
            "o".repeat(object_bytes)
        );
        let rule = RecordRule::create(app.clone(), serde_json::from_str(&rule_body).unwrap(), random(), now()).unwrap();
        let (room, user) = ("r".repeat(64), "u".repeat(64));
        let body = format!(
            r#"{{"room_id":"{room}","user_id":"{user}","record_param":{{"record_rule_id":"{}"}}}}"#,
            rule.rule_id
        );
        let mut job =
            JobRecord::new(Job::individual(app, serde_json::from_str(&body).unwrap(), random(), now()).unwrap());
        let start = Utc.with_ymd_and_hms(2021, 4, 28, 8, 57, 7).unwrap();
        job.claim("w1", start, std::time::Duration::from_secs(10)).unwrap();
        let url = format!("rtmp://{}.example.com/{}/key", "h".repeat(400), "a".repeat(300));
        let first = file_keys(&job, &rule, RecordFormat::Mp4, start, &url);
        // The name is taken (a hand-over): the longest suffix is added.
        job.open_uploads.push(open_upload(RecordFormat::Mp4, &first.main(RecordFormat::Mp4), 1));
        let keys = file_keys(&job, &rule, RecordFormat::Mp4, start, &url);
        let pending = format!("{}.pending/{:016}_{}", keys.main(RecordFormat::Mp4), u64::MAX, u64::MAX);
        for key in [pending, keys.segment(u32::MAX), keys.main(RecordFormat::Hls)] {
            assert!(CONFINEMENT_BYTES + key.len() <= MAX_S3_KEY_BYTES, "{} bytes: {key}", key.len());
        }
    }

    fn jocloud_job(user: Option<&str>) -> (RecordRule, JobRecord, RecordId) {
        let app = AppId::generate(random());
        let rule_body =
            r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1","object":"rec/"},"record_formats":["HLS"]}"#;
        let rule = RecordRule::create(app.clone(), serde_json::from_str(rule_body).unwrap(), random(), now()).unwrap();
        let mut job = JobRecord::new(match user {
            Some(user) => {
                let body = format!(
                    r#"{{"room_id":"abcabc","user_id":"{user}","record_param":{{"record_rule_id":"{}"}}}}"#,
                    rule.rule_id
                );
                Job::individual(app, serde_json::from_str(&body).unwrap(), random(), now()).unwrap()
            }
            None => {
                let body = format!(
                    r#"{{"mix_param":{{"room_id":"abcabc","encode_template":"audio_only"}},"record_param":{{"record_rule_id":"{}"}}}}"#,
                    rule.rule_id
                );
                Job::mix(app, serde_json::from_str(&body).unwrap(), random(), now()).unwrap()
            }
        });
        let recordid = RecordId::generate(random());
        job.job.jocloud = Some(JocloudTag { recordid: recordid.clone(), part: 1, first_file: 0 });
        (rule, job, recordid)
    }

    #[test]
    fn jocloud_jobs_name_their_playlist_and_segments_as_jocloud_does() {
        let start = Utc.with_ymd_and_hms(2021, 4, 28, 8, 57, 7).unwrap();
        let (rule, job, rid) = jocloud_job(None);
        let app = &rule.app_id;
        let keys = file_keys(&job, &rule, RecordFormat::Hls, start, "");
        assert_eq!(keys.main(RecordFormat::Hls), format!("{app}/rec/rid_{rid}_abcabc.m3u8"));
        assert_eq!(keys.segment(1), format!("{app}/rec/rid_{rid}_abcabc_000001.ts"));
        assert_eq!(keys.segment_uri(1), format!("rid_{rid}_abcabc_000001.ts"));

        let (rule, job, rid) = jocloud_job(Some("10266666"));
        let app = &rule.app_id;
        let keys = file_keys(&job, &rule, RecordFormat::Hls, start, "rtmp://h/live/x");
        assert_eq!(keys.main(RecordFormat::Hls), format!("{app}/rec/rid_{rid}_abcabc__uid_s_10266666__uid_e.m3u8"));
    }

    #[test]
    fn a_second_file_of_a_jocloud_stream_gets_a_number_instead_of_overwriting_the_first() {
        let start = Utc.with_ymd_and_hms(2021, 4, 28, 8, 57, 7).unwrap();
        let (rule, mut job, rid) = jocloud_job(Some("u1"));
        let first = file_keys(&job, &rule, RecordFormat::Hls, start, "").main(RecordFormat::Hls);
        job.job.record_files = Some(vec![RecordFile {
            record_format: RecordFormat::Hls,
            obs_bucket: "b12".into(),
            obs_object: first,
            timeline_object: None,
            timeline_url: None,
            file_size: 1,
            record_duration: 1.0,
            start_time: now(),
            end_time: now(),
            download_url: None,
        }]);
        let second = file_keys(&job, &rule, RecordFormat::Hls, start, "").main(RecordFormat::Hls);
        assert_eq!(second, format!("{}/rec/rid_{rid}_abcabc__uid_s_u1__uid_e_2.m3u8", rule.app_id));

        // A later job of the participant (they came back) goes on from the files before it.
        job.job.record_files = None;
        job.job.jocloud = Some(JocloudTag { recordid: rid.clone(), part: 2, first_file: 2 });
        let later = file_keys(&job, &rule, RecordFormat::Hls, start, "").main(RecordFormat::Hls);
        assert_eq!(later, format!("{}/rec/rid_{rid}_abcabc__uid_s_u1__uid_e_3.m3u8", rule.app_id));
    }

    #[test]
    fn a_file_named_like_one_of_the_job_gets_the_claim_epoch_appended() {
        let app = AppId::generate(random());
        let rule_body = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1","object":"rec/"},"record_formats":["MP4"],
            "mp4_config":{"record_prefix":"{job_id}"}}"#;
        let rule = RecordRule::create(app.clone(), serde_json::from_str(rule_body).unwrap(), random(), now()).unwrap();
        let body = format!(r#"{{"room_id":"r","user_id":"u","record_param":{{"record_rule_id":"{}"}}}}"#, rule.rule_id);
        let mut job =
            JobRecord::new(Job::individual(app, serde_json::from_str(&body).unwrap(), random(), now()).unwrap());
        let start = Utc.with_ymd_and_hms(2021, 4, 28, 8, 57, 7).unwrap();
        job.claim("w1", start, std::time::Duration::from_secs(10)).unwrap();
        let first = file_keys(&job, &rule, RecordFormat::Mp4, start, "").main(RecordFormat::Mp4);
        let app = &rule.app_id;
        assert_eq!(first, format!("{app}/rec/{}.mp4", job.job.job_id));
        let open = |key: &str| open_upload(RecordFormat::Mp4, key, 1);
        // The first worker's file is open; the job is taken over (claim 2).
        job.open_uploads.push(open(&first));
        job.claim("w2", start + chrono::Duration::seconds(20), std::time::Duration::from_secs(10)).unwrap();
        let second = file_keys(&job, &rule, RecordFormat::Mp4, start, "").main(RecordFormat::Mp4);
        assert_eq!(second, format!("{app}/rec/{}_2.mp4", job.job.job_id));
        job.open_uploads.push(open(&second));
        let third = file_keys(&job, &rule, RecordFormat::Mp4, start, "").main(RecordFormat::Mp4);
        assert_eq!(third, format!("{app}/rec/{}_2_2.mp4", job.job.job_id));
    }

    /// An individual job of a new app whose rule is `rule_body`, with its keys for a file and
    /// its id.
    fn keys_of(rule_body: &str) -> (RecordRule, String, JobId) {
        let app = AppId::generate(random());
        let rule = RecordRule::create(app.clone(), serde_json::from_str(rule_body).unwrap(), random(), now()).unwrap();
        let body = format!(r#"{{"room_id":"r","user_id":"u","record_param":{{"record_rule_id":"{}"}}}}"#, rule.rule_id);
        let job = JobRecord::new(Job::individual(app, serde_json::from_str(&body).unwrap(), random(), now()).unwrap());
        let start = Utc.with_ymd_and_hms(2021, 4, 28, 8, 57, 7).unwrap();
        let key = file_keys(&job, &rule, RecordFormat::Mp4, start, "rtmp://h/live/x").main(RecordFormat::Mp4);
        (rule, key, job.job.job_id)
    }

    #[test]
    fn two_apps_with_the_same_object_and_prefix_in_the_deployment_bucket_get_different_keys() {
        let body = r#"{"obs_addr":{"bucket":"deployment","location":"eu-west-1","object":"shared/"},
            "record_formats":["MP4"],"mp4_config":{"record_prefix":"fixed/{job_id}"}}"#;
        let (rule_a, key_a, job_a) = keys_of(body);
        let (rule_b, key_b, job_b) = keys_of(body);
        assert_eq!(key_a, format!("{}/shared/fixed/{job_a}.mp4", rule_a.app_id));
        assert_eq!(key_b, format!("{}/shared/fixed/{job_b}.mp4", rule_b.app_id));
        assert!(is_under_app(&key_a, &rule_a.app_id) && !is_under_app(&key_a, &rule_b.app_id));
    }

    #[test]
    fn a_stored_prefix_with_dot_segments_cannot_climb_out_of_the_app() {
        let body = r#"{"obs_addr":{"bucket":"deployment","location":"eu-west-1"},"record_formats":["MP4"]}"#;
        let (mut rule, _, _) = keys_of(body);
        // Saved before the API refused such prefixes, or written into the table directly.
        rule.obs_addr.object = "../".into();
        rule.mp4_config.record_prefix = "./../other/{job_id}".into();
        let app = AppId::generate(random());
        let job_body =
            format!(r#"{{"room_id":"r","user_id":"u","record_param":{{"record_rule_id":"{}"}}}}"#, rule.rule_id);
        let job = JobRecord::new(
            Job::individual(rule.app_id.clone(), serde_json::from_str(&job_body).unwrap(), random(), now()).unwrap(),
        );
        let key = file_keys(&job, &rule, RecordFormat::Mp4, Utc::now(), "").main(RecordFormat::Mp4);
        assert_eq!(key, format!("{}/_/_/_/other/{}.mp4", rule.app_id, job.job.job_id));
        assert!(is_under_app(&key, &rule.app_id) && !is_under_app(&key, &app));
    }

    #[test]
    fn a_rule_with_a_role_names_keys_in_the_tenants_bucket_as_it_says() {
        let body = r#"{"obs_addr":{"bucket":"tenant","location":"eu-west-1","object":"rec/",
            "role_arn":"arn:aws:iam::210987654321:role/roomrec"},
            "record_formats":["MP4"],"mp4_config":{"record_prefix":"fixed/{job_id}"}}"#;
        let (rule, key, job) = keys_of(body);
        assert_eq!(key, format!("rec/fixed/{job}.mp4"));
        assert_eq!(app_root(&rule), "");
    }
}
