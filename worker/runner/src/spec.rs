//! What the recorder is asked to do, from the job and its rule.

use std::path::Path;
use std::time::Duration;

use roomrec_domain::job::{Job, JobSpec, ResolutionPolicy};
use roomrec_domain::rule::{RecordFormat, RecordRule};
use roomrec_media::{FilePolicy, HlsSpec, RecordSpec, ScalePolicy, ScaleSpec};

fn seconds(value: u32) -> Duration {
    Duration::from_secs(u64::from(value))
}

fn policy(cycle: u32, merge: u32) -> FilePolicy {
    FilePolicy { cycle: (cycle > 0).then(|| seconds(cycle)), merge_window: seconds(merge) }
}

/// The recorder's instructions for `job` under `rule`, spooling under `spool_root/<job_id>`.
pub fn record_spec(job: &Job, rule: &RecordRule, spool_root: &Path) -> RecordSpec {
    let hls = rule.record_formats.contains(&RecordFormat::Hls).then(|| HlsSpec {
        slice: seconds(rule.hls_config.record_slice_duration),
        files: policy(rule.hls_config.record_cycle, rule.hls_config.record_max_duration_to_merge_file),
    });
    let mp4 = rule
        .record_formats
        .contains(&RecordFormat::Mp4)
        .then(|| policy(rule.mp4_config.record_cycle, rule.mp4_config.record_max_duration_to_merge_file));
    let (record_audio, scale) = match &job.spec {
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
            (p.is_record_audio, scale)
        }
        JobSpec::Mix { .. } => (true, None),
    };
    RecordSpec { record_audio, record_video: true, hls, mp4, scale, spool_dir: spool_root.join(job.job_id.as_str()) }
}
