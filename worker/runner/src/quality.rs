//! A recording file's quality report, from the media crate's measure to the domain's shape.

use roomrec_domain::quality::{Gaps, InputChange, QualityReport, MAX_INPUT_CHANGES};
use roomrec_media::Quality;

/// The report `RECORD_FILE_COMPLETE` and the job's file list carry for `quality`.
pub fn report(quality: &Quality) -> QualityReport {
    let changes = quality.input_changes.iter().take(MAX_INPUT_CHANGES);
    QualityReport {
        av_offset_ms: quality.av_offset_ms,
        gaps: Gaps { count: quality.gaps, seconds: quality.gap_seconds },
        dropped_frames: quality.dropped_frames,
        duplicated_frames: quality.duplicated_frames,
        input_changes: changes
            .map(|c| InputChange {
                at_ms: c.at_ms,
                bitrate_kbps: c.bitrate_kbps,
                fps: c.fps,
                width: c.width,
                height: c.height,
            })
            .collect(),
        late_frames_skipped: quality.late_frames_skipped,
    }
}
