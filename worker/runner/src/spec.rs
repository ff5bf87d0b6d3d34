//! What the recorder is asked to do, from the job and its rule.

use std::path::Path;
use std::time::Duration;

use roomrec_domain::job::{Job, JobSpec, ResolutionPolicy};
use roomrec_domain::mix::MixParam;
use roomrec_domain::rule::{RecordFormat, RecordRule, MERGE_SECS};
use roomrec_media::{Canvas, FilePolicy, HlsSpec, Layout, MixSpec, RecordSpec, ScalePolicy, ScaleSpec};

fn seconds(value: u32) -> Duration {
    Duration::from_secs(u64::from(value))
}

fn policy(cycle: u32, merge: u32) -> FilePolicy {
    FilePolicy { cycle: (cycle > 0).then(|| seconds(cycle)), merge_window: seconds(merge) }
}

/// The HLS and MP4 outputs of `job` under `rule`: what the rule asks for, except that a
/// Jocloud recording is one HLS file per stream (Jocloud's names leave no room for a
/// second): no `record_cycle`, and a pause of any length continues the playlist.
fn outputs(job: &Job, rule: &RecordRule) -> (Option<HlsSpec>, Option<FilePolicy>) {
    if job.jocloud.is_some() {
        let files = FilePolicy { cycle: None, merge_window: seconds(*MERGE_SECS.end()) };
        return (Some(HlsSpec { slice: seconds(rule.hls_config.record_slice_duration), files }), None);
    }
    let hls = rule.record_formats.contains(&RecordFormat::Hls).then(|| HlsSpec {
        slice: seconds(rule.hls_config.record_slice_duration),
        files: policy(rule.hls_config.record_cycle, rule.hls_config.record_max_duration_to_merge_file),
    });
    let mp4 = rule
        .record_formats
        .contains(&RecordFormat::Mp4)
        .then(|| policy(rule.mp4_config.record_cycle, rule.mp4_config.record_max_duration_to_merge_file));
    (hls, mp4)
}

/// The mixer's instructions for `job` (a mix of `param`) under `rule`, starting with
/// `layout`, spooling under `spool_root/<job_id>`.
pub fn mix_spec(job: &Job, rule: &RecordRule, param: &MixParam, layout: Layout, spool_root: &Path) -> MixSpec {
    let (hls, mp4) = outputs(job, rule);
    let canvas =
        param.encode_template.video().map(|v| Canvas { width: v.width, height: v.height, fps: v.fps, kbps: v.kbps });
    MixSpec { canvas, layout, hls, mp4, spool_dir: spool_root.join(job.job_id.as_str()) }
}

/// The recorder's instructions for `job` under `rule`, spooling under `spool_root/<job_id>`.
pub fn record_spec(job: &Job, rule: &RecordRule, spool_root: &Path) -> RecordSpec {
    let (hls, mp4) = outputs(job, rule);
    let (record_audio, record_video, scale) = match &job.spec {
        JobSpec::Individual(p) => {
            let scale = p.resolution.as_ref().map(|r| ScaleSpec {
                width: r.width,
                height: r.height,
                policy: match p.resolution_policy.unwrap_or(ResolutionPolicy::Downward) {
                    ResolutionPolicy::Downward => ScalePolicy::Downward,
                    ResolutionPolicy::Upward => ScalePolicy::Upward,
                    ResolutionPolicy::Fixed => ScalePolicy::Fixed,
                },
            });
            (p.is_record_audio, p.is_record_video, scale)
        }
        JobSpec::Mix { .. } => (true, true, None),
    };
    RecordSpec { record_audio, record_video, hls, mp4, scale, spool_dir: spool_root.join(job.job_id.as_str()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomrec_domain::ids::{AppId, RecordId};
    use roomrec_domain::job::JocloudTag;
    use roomrec_domain::testing::{now, random};

    fn rule_and_job() -> (RecordRule, Job) {
        let app = AppId::generate(random());
        let body = r#"{"obs_addr":{"bucket":"b12","location":"eu-west-1"},"record_formats":["HLS","MP4"],"hls_config":{"record_cycle":600,"record_slice_duration":4},"mp4_config":{"record_max_duration_to_merge_file":10}}"#;
        let rule = RecordRule::create(app.clone(), serde_json::from_str(body).unwrap(), random(), now()).unwrap();
        let body =
            format!(r#"{{"room_id":"r1","user_id":"u1","record_param":{{"record_rule_id":"{}"}}}}"#, rule.rule_id);
        let job = Job::individual(app, serde_json::from_str(&body).unwrap(), random(), now()).unwrap();
        (rule, job)
    }

    #[test]
    fn a_jocloud_job_records_one_hls_file_whatever_the_rule_says() {
        let (rule, mut job) = rule_and_job();
        let spec = record_spec(&job, &rule, Path::new("/spool"));
        assert!(spec.mp4.is_some() && spec.hls.is_some_and(|h| h.files.cycle.is_some()), "the rule applies to v2 jobs");

        job.jocloud = Some(JocloudTag { recordid: RecordId::generate(random()), part: 1, first_file: 0 });
        let spec = record_spec(&job, &rule, Path::new("/spool"));
        assert_eq!(spec.mp4, None);
        let hls = spec.hls.unwrap();
        assert_eq!(hls.slice, Duration::from_secs(4));
        assert_eq!(hls.files.cycle, None);
        assert_eq!(hls.files.merge_window, Duration::from_secs(30 * 24 * 3600), "a pause continues the playlist");
    }

    #[test]
    fn a_job_that_does_not_record_video_asks_the_recorder_for_sound_only() {
        let (rule, mut job) = rule_and_job();
        if let JobSpec::Individual(params) = &mut job.spec {
            params.is_record_video = false;
        }
        let spec = record_spec(&job, &rule, Path::new("/spool"));
        assert!(spec.record_audio && !spec.record_video);
    }
}
