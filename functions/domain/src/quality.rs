//! The quality report of a recording file, as `RECORD_FILE_COMPLETE` and the job's file
//! list carry it (README "Quality report"). The worker measures it; here it is only shape.

use serde::{Deserialize, Serialize};

/// At most this many input changes are kept per file (an input whose rate keeps swinging
/// would otherwise grow the job record without bound); the first ones are kept.
pub const MAX_INPUT_CHANGES: usize = 50;

/// How well one file was recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// Audio minus video (ms) that the recording put between the streams; absent for a
    /// file without both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub av_offset_ms: Option<f64>,
    pub gaps: Gaps,
    pub dropped_frames: u64,
    pub duplicated_frames: u64,
    /// The input as the file began (`at_ms` 0), then each change.
    pub input_changes: Vec<InputChange>,
    pub late_frames_skipped: u64,
}

/// Stretches in which the source sent nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Gaps {
    pub count: u32,
    pub seconds: f64,
}

/// How the input was, or what changed about it, `at_ms` into the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InputChange {
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_serialises_with_the_contracts_field_names() {
        let report = QualityReport {
            av_offset_ms: Some(-1.5),
            gaps: Gaps { count: 1, seconds: 2.4 },
            dropped_frames: 3,
            duplicated_frames: 0,
            input_changes: vec![InputChange { at_ms: 0, width: Some(640), height: Some(360), ..Default::default() }],
            late_frames_skipped: 0,
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"av_offset_ms": -1.5, "gaps": {"count": 1, "seconds": 2.4}, "dropped_frames": 3,
                "duplicated_frames": 0, "input_changes": [{"at_ms": 0, "width": 640, "height": 360}],
                "late_frames_skipped": 0})
        );
        assert_eq!(serde_json::from_value::<QualityReport>(json).unwrap(), report);
    }
}
