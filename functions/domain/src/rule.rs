//! Record rules: where recordings go (an S3 bucket and prefix), in which formats, and how
//! files are cut. Field names, ranges and defaults follow SparkRTC's record-rules API.

use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::Random;
use crate::error::Invalid;
use crate::ids::{AppId, RuleId};
use crate::time::Timestamp;

/// Default object-name template, as the seed response echoes it.
pub const DEFAULT_RECORD_PREFIX: &str =
    "Record/{publish_domain}/{app}/{record_type}/{record_format}/{stream}_{file_start_time}/{stream}_{file_start_time}";
/// Variables a `record_prefix` may use (DESIGN §3).
pub const PREFIX_VARIABLES: &[&str] = &[
    "app_id",
    "record_format",
    "stream",
    "file_start_time",
    "publish_domain",
    "app",
    "record_type",
    "room_id",
    "user_id",
    "job_id",
];
/// `{record_type}` of every job, as seed 001's `obs_object` shows it: SparkRTC names its
/// recordings `continuous_record` whatever their kind (an individual job's and a mix job's
/// keys still differ by `{stream}`, `s_…` and `m_…`).
pub const RECORD_TYPE: &str = "continuous_record";
/// Longest `record_prefix` accepted (S3 keys are at most 1024 bytes, the expansion needs room).
pub const MAX_PREFIX_CHARS: usize = 512;
/// Longest `obs_addr.object` accepted, in bytes.
pub const MAX_OBJECT_BYTES: usize = 256;
/// Longest S3 object key (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>).
pub const MAX_S3_KEY_BYTES: usize = 1024;
/// The app's own folder every key of the deployment's bucket is confined to, `{app_id}/`.
pub const CONFINEMENT_BYTES: usize = crate::ids::AppId::LEN + 1;
/// Most a file's name gets after its expanded prefix: `_{epoch}_{n}` when the name was taken
/// (up to 32 bytes), then the longest of `.m3u8`, `_{seq}.ts` and an MP4's pending parts
/// `.mp4.pending/{offset:016}_{ms}` (up to 50 bytes); rounded up.
pub const LONGEST_SUFFIX_BYTES: usize = 96;
/// Longest `{publish_domain}` a key gets (a DNS name's limit); a longer host is cut.
pub const MAX_PUBLISH_DOMAIN_BYTES: usize = 253;
/// Longest `{app}` a key gets; a longer first path segment is cut.
pub const MAX_APP_SEGMENT_BYTES: usize = 64;
/// Variables of which a `record_prefix` must use one: each names the job, so no two jobs'
/// files share a key (and within a job a taken name gets a suffix, see `naming::file_keys`).
pub const UNIQUE_VARIABLES: &[&str] = &["job_id", "stream"];
/// HLS `record_cycle`: 0 (one file) or this many seconds.
pub const HLS_RECORD_CYCLE_SECS: std::ops::RangeInclusive<u32> = 60..=43_200;
/// HLS `record_slice_duration` in seconds.
pub const HLS_SLICE_SECS: std::ops::RangeInclusive<u32> = 2..=60;
/// Default HLS `record_slice_duration` in seconds.
pub const DEFAULT_HLS_SLICE_SECS: u32 = 10;
/// MP4 `record_cycle` in seconds.
pub const MP4_RECORD_CYCLE_SECS: std::ops::RangeInclusive<u32> = 60..=10_800;
/// Default MP4 `record_cycle` in seconds (the seed's 7200).
pub const DEFAULT_MP4_RECORD_CYCLE_SECS: u32 = 7_200;
/// Longest `obs_addr.project_id` accepted (SparkRTC's are 32 characters).
pub const MAX_PROJECT_ID_CHARS: usize = 64;
/// `record_max_duration_to_merge_file`: a pause up to this long continues the file (30 days).
pub const MERGE_SECS: std::ops::RangeInclusive<u32> = 0..=2_592_000;

/// A stored record rule, as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordRule {
    pub app_id: AppId,
    pub rule_id: RuleId,
    pub obs_addr: ObsAddr,
    pub record_formats: Vec<RecordFormat>,
    pub hls_config: HlsConfig,
    pub mp4_config: Mp4Config,
    /// Whether a stream that joins a room of the app is recorded without an API call
    /// (SparkRTC's automatic single-stream recording).
    #[serde(default)]
    pub auto_record: bool,
    /// When `auto_record` last turned on; rooms created before it are not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_record_since: Option<Timestamp>,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
}

/// Recording container formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordFormat {
    #[serde(rename = "HLS")]
    Hls,
    #[serde(rename = "MP4")]
    Mp4,
}

/// Where files are stored: an S3 bucket (`bucket`), its region (`location`) and key prefix
/// (`object`). `project_id` is kept for SparkRTC compatibility. Without `role_arn` the bucket
/// must be the deployment's, and keys go under the app's prefix; with it, the worker writes
/// the tenant's bucket as that role (see [`storage`](crate::storage)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObsAddr {
    pub bucket: String,
    pub location: String,
    #[serde(default)]
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<RoleArn>,
}

/// Longest IAM role name (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html>).
const MAX_ROLE_NAME_CHARS: usize = 64;
/// Longest IAM role path with its slashes.
const MAX_ROLE_PATH_CHARS: usize = 512;

/// An IAM role's ARN, `arn:aws:iam::<12 digits>:role/<path/name>` (or the aws-cn and
/// aws-us-gov partitions).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoleArn(String);

impl RoleArn {
    /// The ARN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoleArn {
    type Error = Invalid;
    fn try_from(text: String) -> Result<Self, Invalid> {
        let invalid =
            || Invalid::new("role_arn", "must be an IAM role ARN, arn:aws:iam::<12-digit account>:role/<name>");
        let rest = ["arn:aws:iam::", "arn:aws-cn:iam::", "arn:aws-us-gov:iam::"]
            .iter()
            .find_map(|partition| text.strip_prefix(partition))
            .ok_or_else(invalid)?;
        let (account, path) = rest.split_once(":role/").ok_or_else(invalid)?;
        let (folders, name) = path.rsplit_once('/').unwrap_or(("", path));
        // IAM's own rules: names of `[\w+=,.@-]`, paths of printable ASCII without spaces.
        let name_ok = (1..=MAX_ROLE_NAME_CHARS).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        let path_ok = path.len() <= MAX_ROLE_PATH_CHARS
            && folders.bytes().all(|b| b.is_ascii_graphic())
            && path.split('/').all(|folder| !folder.is_empty());
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) || !name_ok || !path_ok {
            return Err(invalid());
        }
        Ok(Self(text))
    }
}

impl From<RoleArn> for String {
    fn from(value: RoleArn) -> String {
        value.0
    }
}

/// HLS settings with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HlsConfig {
    pub record_cycle: u32,
    pub record_slice_duration: u32,
    pub record_prefix: String,
    pub record_max_duration_to_merge_file: u32,
}

/// MP4 settings with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mp4Config {
    pub record_cycle: u32,
    pub record_prefix: String,
    pub record_max_duration_to_merge_file: u32,
}

/// Body of `POST .../record-rules` and `PUT .../record-rules/{rule_id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    pub obs_addr: Option<ObsAddr>,
    pub record_formats: Option<Vec<RecordFormat>>,
    pub hls_config: Option<FormatConfigRequest>,
    pub mp4_config: Option<FormatConfigRequest>,
    pub auto_record: Option<bool>,
}

/// Either format's settings as a client sends them; all optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatConfigRequest {
    pub record_cycle: Option<u32>,
    pub record_slice_duration: Option<u32>,
    pub record_prefix: Option<String>,
    pub record_max_duration_to_merge_file: Option<u32>,
}

impl RecordRule {
    /// A new rule for `app_id`; `obs_addr` and `record_formats` are required.
    pub fn create(app_id: AppId, request: RuleRequest, random: &dyn Random, now: Timestamp) -> Result<Self, Invalid> {
        Self::build(app_id, RuleId::generate(random), request, now)
    }

    /// Makes the rule say what `request` says, as a create would (seed 004's "create or
    /// update"): fields it leaves out get their defaults. The id and creation time stay, and
    /// so does `auto_record` unless the request sets it (SparkRTC turns it on and off apart
    /// from the rule's body).
    pub fn replace(&mut self, request: RuleRequest, now: Timestamp) -> Result<(), Invalid> {
        let auto_record = request.auto_record;
        let mut next = Self::build(self.app_id.clone(), self.rule_id.clone(), request, now)?;
        next.create_time = self.create_time;
        (next.auto_record, next.auto_record_since) = (self.auto_record, self.auto_record_since);
        next.set_auto_record(auto_record, now);
        *self = next;
        Ok(())
    }

    fn build(app_id: AppId, rule_id: RuleId, request: RuleRequest, now: Timestamp) -> Result<Self, Invalid> {
        let obs_addr = request.obs_addr.ok_or_else(|| Invalid::new("obs_addr", "is required"))?;
        let formats = request.record_formats.ok_or_else(|| Invalid::new("record_formats", "is required"))?;
        let mut rule = Self {
            app_id,
            rule_id,
            obs_addr: check_obs_addr(obs_addr)?,
            record_formats: check_formats(formats)?,
            hls_config: hls_config(request.hls_config.unwrap_or_default(), None)?,
            mp4_config: mp4_config(request.mp4_config.unwrap_or_default(), None)?,
            auto_record: false,
            auto_record_since: None,
            create_time: now,
            update_time: now,
        };
        rule.set_auto_record(request.auto_record, now);
        rule.check_key_lengths()?;
        Ok(rule)
    }

    /// Whether every key the rule can name fits S3's limit ([`check_key_length`]).
    fn check_key_lengths(&self) -> Result<(), Invalid> {
        let object = &self.obs_addr.object;
        check_key_length(object, &self.hls_config.record_prefix, "hls_config.record_prefix")?;
        check_key_length(object, &self.mp4_config.record_prefix, "mp4_config.record_prefix")
    }

    /// Turns automatic recording on (from `now`, unless it was on already) or off.
    fn set_auto_record(&mut self, auto_record: Option<bool>, now: Timestamp) {
        match auto_record {
            Some(true) if !self.auto_record => (self.auto_record, self.auto_record_since) = (true, Some(now)),
            Some(false) => (self.auto_record, self.auto_record_since) = (false, None),
            _ => {}
        }
    }

    /// The longest pause that continues a file in the formats the rule records, in seconds.
    pub fn merge_window_secs(&self) -> u32 {
        let hls = self
            .record_formats
            .contains(&RecordFormat::Hls)
            .then_some(self.hls_config.record_max_duration_to_merge_file);
        let mp4 = self
            .record_formats
            .contains(&RecordFormat::Mp4)
            .then_some(self.mp4_config.record_max_duration_to_merge_file);
        hls.into_iter().chain(mp4).max().unwrap_or(0)
    }

    /// Applies an update: given fields replace the stored ones, absent ones stay.
    pub fn update(&mut self, request: RuleRequest, now: Timestamp) -> Result<(), Invalid> {
        if let Some(obs_addr) = request.obs_addr {
            self.obs_addr = check_obs_addr(obs_addr)?;
        }
        if let Some(formats) = request.record_formats {
            self.record_formats = check_formats(formats)?;
        }
        if let Some(hls) = request.hls_config {
            self.hls_config = hls_config(hls, Some(&self.hls_config))?;
        }
        if let Some(mp4) = request.mp4_config {
            self.mp4_config = mp4_config(mp4, Some(&self.mp4_config))?;
        }
        self.set_auto_record(request.auto_record, now);
        self.update_time = now;
        self.check_key_lengths()
    }
}

fn check_formats(formats: Vec<RecordFormat>) -> Result<Vec<RecordFormat>, Invalid> {
    if formats.is_empty() {
        return Err(Invalid::new("record_formats", "must list HLS, MP4 or both"));
    }
    let mut unique = Vec::new();
    for format in formats {
        if unique.contains(&format) {
            return Err(Invalid::new("record_formats", "must not repeat a format"));
        }
        unique.push(format);
    }
    Ok(unique)
}

fn check_obs_addr(addr: ObsAddr) -> Result<ObsAddr, Invalid> {
    if !is_bucket_name(&addr.bucket) {
        return Err(Invalid::new(
            "obs_addr.bucket",
            "must be a bucket name of 3 to 63 letters, digits, '.', '-' or '_'",
        ));
    }
    let region_ok = !addr.location.is_empty()
        && addr.location.len() <= 32
        && addr.location.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(Invalid::new("obs_addr.location", "must be a region name such as eu-west-1"));
    }
    if addr.object.len() > MAX_OBJECT_BYTES
        || addr.object.starts_with('/')
        || addr.object.split('/').any(|s| s == "..")
        || addr.object.chars().any(char::is_control)
    {
        return Err(Invalid::new(
            "obs_addr.object",
            format!("must be a relative key prefix of at most {MAX_OBJECT_BYTES} bytes without control characters"),
        ));
    }
    // SparkRTC's project ids are 32 characters; kept, never used, so only its size matters.
    if let Some(id) = &addr.project_id {
        if id.chars().count() > MAX_PROJECT_ID_CHARS || id.chars().any(char::is_control) {
            let reason = format!("must be at most {MAX_PROJECT_ID_CHARS} characters without control characters");
            return Err(Invalid::new("obs_addr.project_id", reason));
        }
    }
    Ok(addr)
}

/// Whether `name` can be an S3 bucket: 3–63 characters of letters, digits, '.', '-' and '_'.
///
/// Upper case and '_' are legacy S3 (and OBS) names; the seed's own example is `obsName`.
pub fn is_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

fn check_prefix(prefix: String, field: &str) -> Result<String, Invalid> {
    if prefix.is_empty() || prefix.chars().count() > MAX_PREFIX_CHARS {
        return Err(Invalid::new(field, format!("must be 1 to {MAX_PREFIX_CHARS} characters")));
    }
    if prefix.starts_with('/') || prefix.split('/').any(|s| s == "..") || prefix.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must be a relative key without '..' or control characters"));
    }
    let mut rest = prefix.as_str();
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or_else(|| Invalid::new(field, "has an unclosed '{'"))?;
        let name = &rest[open + 1..open + close];
        if !PREFIX_VARIABLES.contains(&name) {
            return Err(Invalid::new(
                field,
                format!("unknown variable {{{name}}}; use {}", PREFIX_VARIABLES.join(", ")),
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(Invalid::new(field, "has a '}' without '{'"));
    }
    if !UNIQUE_VARIABLES.iter().any(|name| prefix.contains(&format!("{{{name}}}"))) {
        return Err(Invalid::new(
            field,
            "must contain {job_id} or {stream}, so that each job's files get keys of their own",
        ));
    }
    Ok(prefix)
}

/// The most bytes `prefix` can expand to, every variable at its longest.
pub fn longest_expansion(prefix: &str) -> usize {
    let longest = |name: &str| match name {
        "app_id" => crate::ids::AppId::LEN,
        "record_format" => 3,
        // `s_{job_id}_{room_id}_{user_id}`, the longest stream name (a mix's is shorter).
        "stream" => 2 + crate::ids::JobId::LEN + 2 + 2 * crate::ids::MAX_NAME_CHARS,
        "file_start_time" => "YYYY-MM-DD-hh-mm-ss".len(),
        "publish_domain" => MAX_PUBLISH_DOMAIN_BYTES,
        "app" => MAX_APP_SEGMENT_BYTES,
        "record_type" => RECORD_TYPE.len(),
        "room_id" | "user_id" => crate::ids::MAX_NAME_CHARS,
        "job_id" => crate::ids::JobId::LEN,
        _ => name.len() + 2,
    };
    let (mut total, mut rest) = (0, prefix);
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        total += open + longest(&rest[open + 1..open + close]);
        rest = &rest[open + close + 1..];
    }
    total + rest.len()
}

/// Whether the longest key a file can get from `object` and `prefix` fits S3's limit, with the
/// app's folder before it and the longest suffix after.
fn check_key_length(object: &str, prefix: &str, field: &str) -> Result<(), Invalid> {
    let longest = CONFINEMENT_BYTES + object.len() + longest_expansion(prefix) + LONGEST_SUFFIX_BYTES;
    if longest > MAX_S3_KEY_BYTES {
        let budget = MAX_S3_KEY_BYTES - CONFINEMENT_BYTES - LONGEST_SUFFIX_BYTES;
        return Err(Invalid::new(
            field,
            format!(
                "with obs_addr.object it can expand to {} bytes, more than the {budget} an S3 key leaves for them",
                object.len() + longest_expansion(prefix)
            ),
        ));
    }
    Ok(())
}

fn in_range(value: u32, range: std::ops::RangeInclusive<u32>, field: &str, unit: &str) -> Result<u32, Invalid> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Invalid::new(field, format!("must be {} to {} {unit}, got {value}", range.start(), range.end())))
    }
}

fn hls_config(req: FormatConfigRequest, old: Option<&HlsConfig>) -> Result<HlsConfig, Invalid> {
    let cycle = req.record_cycle.or(old.map(|o| o.record_cycle)).unwrap_or(0);
    if cycle != 0 && !HLS_RECORD_CYCLE_SECS.contains(&cycle) {
        return Err(Invalid::new(
            "hls_config.record_cycle",
            format!("must be 0 (one file) or 60 to 43200 seconds, got {cycle}"),
        ));
    }
    let slice = req.record_slice_duration.or(old.map(|o| o.record_slice_duration)).unwrap_or(DEFAULT_HLS_SLICE_SECS);
    let prefix =
        req.record_prefix.or(old.map(|o| o.record_prefix.clone())).unwrap_or_else(|| DEFAULT_RECORD_PREFIX.into());
    let merge = req.record_max_duration_to_merge_file.or(old.map(|o| o.record_max_duration_to_merge_file)).unwrap_or(0);
    Ok(HlsConfig {
        record_cycle: cycle,
        record_slice_duration: in_range(slice, HLS_SLICE_SECS, "hls_config.record_slice_duration", "seconds")?,
        record_prefix: check_prefix(prefix, "hls_config.record_prefix")?,
        record_max_duration_to_merge_file: in_range(
            merge,
            MERGE_SECS,
            "hls_config.record_max_duration_to_merge_file",
            "seconds",
        )?,
    })
}

fn mp4_config(req: FormatConfigRequest, old: Option<&Mp4Config>) -> Result<Mp4Config, Invalid> {
    if req.record_slice_duration.is_some() {
        return Err(Invalid::new("mp4_config.record_slice_duration", "applies to HLS only"));
    }
    let cycle = req.record_cycle.or(old.map(|o| o.record_cycle)).unwrap_or(DEFAULT_MP4_RECORD_CYCLE_SECS);
    let prefix =
        req.record_prefix.or(old.map(|o| o.record_prefix.clone())).unwrap_or_else(|| DEFAULT_RECORD_PREFIX.into());
    let merge = req.record_max_duration_to_merge_file.or(old.map(|o| o.record_max_duration_to_merge_file)).unwrap_or(0);
    Ok(Mp4Config {
        record_cycle: in_range(cycle, MP4_RECORD_CYCLE_SECS, "mp4_config.record_cycle", "seconds")?,
        record_prefix: check_prefix(prefix, "mp4_config.record_prefix")?,
        record_max_duration_to_merge_file: in_range(
            merge,
            MERGE_SECS,
            "mp4_config.record_max_duration_to_merge_file",
            "seconds",
        )?,
    })
}

/// Deserialises a field that distinguishes absent (`None`) from `null` (`Some(None)`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{now, random};

    fn request(json: &str) -> RuleRequest {
        serde_json::from_str(json).unwrap()
    }

    const PROJECT_ID_65: &str = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1","project_id":"12345678901234567890123456789012345678901234567890123456789012345"}}"#;
    const SEED: &str = r#"{"obs_addr":{"bucket":"obsName","location":"cn-north-4","object":"Record/","project_id":"01234567890123456789012345678901"},"record_formats":["MP4"],"mp4_config":{}}"#;

    #[test]
    fn seed_rule_gets_the_seed_defaults() {
        let rule = RecordRule::create(AppId::generate(random()), request(SEED), random(), now()).unwrap();
        assert_eq!(rule.mp4_config.record_cycle, 7200);
        assert_eq!(rule.mp4_config.record_prefix, DEFAULT_RECORD_PREFIX);
        assert_eq!(rule.mp4_config.record_max_duration_to_merge_file, 0);
        assert_eq!(rule.hls_config.record_cycle, 0);
        assert_eq!(rule.hls_config.record_slice_duration, 10);
    }

    #[test]
    fn out_of_range_values_name_their_field() {
        let cases = [
            (r#"{"hls_config":{"record_cycle":30}}"#, "hls_config.record_cycle"),
            (r#"{"hls_config":{"record_slice_duration":1}}"#, "hls_config.record_slice_duration"),
            (r#"{"mp4_config":{"record_cycle":10801}}"#, "mp4_config.record_cycle"),
            (r#"{"mp4_config":{"record_prefix":"{nope}/x"}}"#, "mp4_config.record_prefix"),
            (r#"{"obs_addr":{"bucket":"no spaces","location":"eu-west-1"}}"#, "obs_addr.bucket"),
            (r#"{"record_formats":[]}"#, "record_formats"),
            (PROJECT_ID_65, "obs_addr.project_id"),
        ];
        for (patch, field) in cases {
            let mut rule = RecordRule::create(AppId::generate(random()), request(SEED), random(), now()).unwrap();
            let err = rule.update(request(patch), now()).unwrap_err();
            assert_eq!(err.field, field, "{patch}");
        }
    }

    #[test]
    fn control_characters_are_refused_in_the_object_the_project_id_and_prefixes() {
        let cases = [
            (r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1","object":"rec\u0000/"}}"#, "obs_addr.object"),
            (r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1","project_id":"p\n1"}}"#, "obs_addr.project_id"),
            (r#"{"hls_config":{"record_prefix":"{job_id}\u001b[2J"}}"#, "hls_config.record_prefix"),
            (r#"{"mp4_config":{"record_prefix":"{job_id}\u0085"}}"#, "mp4_config.record_prefix"),
        ];
        for (patch, field) in cases {
            let mut rule = RecordRule::create(AppId::generate(random()), request(SEED), random(), now()).unwrap();
            assert_eq!(rule.update(request(patch), now()).unwrap_err().field, field, "{patch}");
        }
    }

    #[test]
    fn a_prefix_must_name_the_job_so_no_two_jobs_write_one_key() {
        let mut rule = RecordRule::create(AppId::generate(random()), request(SEED), random(), now()).unwrap();
        for fixed in ["recordings/latest", "{room_id}/{user_id}", "{file_start_time}"] {
            let patch = format!(r#"{{"mp4_config":{{"record_prefix":"{fixed}"}}}}"#);
            let err = rule.update(request(&patch), now()).unwrap_err();
            assert_eq!(err.field, "mp4_config.record_prefix", "{fixed}");
            assert!(err.reason.contains("{job_id}"), "{}", err.reason);
        }
        for unique in ["{job_id}", "x/{stream}_{file_start_time}", DEFAULT_RECORD_PREFIX] {
            let patch = format!(r#"{{"hls_config":{{"record_prefix":"{unique}"}}}}"#);
            assert!(rule.update(request(&patch), now()).is_ok(), "{unique}");
        }
    }

    /// A rule whose object is `object_bytes` long and whose MP4 prefix is `{stream}` then
    /// filler up to `expansion` bytes expanded.
    fn sized(object_bytes: usize, expansion: usize) -> String {
        let stream = longest_expansion("{stream}");
        format!(
            r#"{{"obs_addr":{{"bucket":"b12","location":"eu-west-1","object":"{}"}},"record_formats":["MP4"],"hls_config":{{"record_prefix":"{{job_id}}"}},"mp4_config":{{"record_prefix":"{{stream}}{}"}}}}"#,
            "o".repeat(object_bytes),
            "p".repeat(expansion - stream)
        )
    }

    #[test]
    fn a_prefix_whose_longest_key_would_pass_s3s_limit_is_refused_when_saved() {
        let budget = MAX_S3_KEY_BYTES - CONFINEMENT_BYTES - LONGEST_SUFFIX_BYTES;
        let app = || AppId::generate(random());
        assert!(RecordRule::create(app(), request(&sized(250, budget - 250)), random(), now()).is_ok());
        let err = RecordRule::create(app(), request(&sized(250, budget - 249)), random(), now()).unwrap_err();
        assert_eq!(err.field, "mp4_config.record_prefix");
        // A longer object on update is checked against the stored prefixes too.
        let mut rule = RecordRule::create(app(), request(&sized(250, budget - 250)), random(), now()).unwrap();
        let longer =
            format!(r#"{{"obs_addr":{{"bucket":"b12","location":"eu-west-1","object":"{}"}}}}"#, "o".repeat(251));
        assert_eq!(rule.update(request(&longer), now()).unwrap_err().field, "mp4_config.record_prefix");
        // The seed's default prefix leaves room for an object of a few hundred bytes.
        assert!(
            MAX_S3_KEY_BYTES - CONFINEMENT_BYTES - LONGEST_SUFFIX_BYTES - longest_expansion(DEFAULT_RECORD_PREFIX)
                > 150
        );
    }

    #[test]
    fn auto_record_since_is_set_when_it_turns_on_kept_while_on_and_cleared_when_off() {
        let t = |secs| Timestamp::from(chrono::DateTime::from_timestamp(secs, 0).unwrap());
        let mut rule = RecordRule::create(AppId::generate(random()), request(SEED), random(), t(100)).unwrap();
        assert_eq!((rule.auto_record, rule.auto_record_since), (false, None));
        rule.update(request(r#"{"auto_record":true}"#), t(200)).unwrap();
        assert_eq!((rule.auto_record, rule.auto_record_since), (true, Some(t(200))));
        rule.update(request(r#"{"auto_record":true}"#), t(300)).unwrap();
        rule.update(request(r#"{"mp4_config":{"record_cycle":600}}"#), t(400)).unwrap();
        assert_eq!(rule.auto_record_since, Some(t(200)), "kept while on");
        rule.update(request(r#"{"auto_record":false}"#), t(500)).unwrap();
        assert_eq!((rule.auto_record, rule.auto_record_since), (false, None));
    }

    #[test]
    fn rules_stored_before_auto_record_existed_read_as_off() {
        let rule = RecordRule::create(AppId::generate(random()), request(SEED), random(), now()).unwrap();
        let mut json = serde_json::to_value(&rule).unwrap();
        json.as_object_mut().unwrap().remove("auto_record");
        let old: RecordRule = serde_json::from_value(json).unwrap();
        assert!(!old.auto_record);
    }

    #[test]
    fn the_merge_window_is_the_larger_of_the_recorded_formats() {
        let body = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1"},"record_formats":["MP4"],"hls_config":{"record_max_duration_to_merge_file":900},"mp4_config":{"record_max_duration_to_merge_file":60}}"#;
        let mut rule = RecordRule::create(AppId::generate(random()), request(body), random(), now()).unwrap();
        assert_eq!(rule.merge_window_secs(), 60, "HLS is not recorded, so its window does not count");
        rule.update(request(r#"{"record_formats":["HLS","MP4"]}"#), now()).unwrap();
        assert_eq!(rule.merge_window_secs(), 900);
    }

    #[test]
    fn update_keeps_fields_it_does_not_name() {
        let mut rule = RecordRule::create(AppId::generate(random()), request(SEED), random(), now()).unwrap();
        rule.update(request(r#"{"mp4_config":{"record_cycle":600}}"#), now()).unwrap();
        assert_eq!(rule.mp4_config.record_cycle, 600);
        assert_eq!(rule.mp4_config.record_prefix, DEFAULT_RECORD_PREFIX);
        assert_eq!(rule.obs_addr.bucket, "obsName");
    }
}
