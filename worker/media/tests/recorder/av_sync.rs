//! A/V sync, measured from outside: a test source that flashes (a white picture) and beeps (a
//! 1 kHz tone) at the start of every second, and a measurement of any media file with the
//! `ffmpeg` program (what a player decodes: edit lists and priming applied) that finds the
//! flashes by luma and the beeps by audio level and answers the mean audio-minus-video offset.
//! The crate under test never spawns `ffmpeg`; only these tests do.

use std::path::Path;
use std::process::Command as Program;

use roomrec_media::{Format, Output, Quality};

/// How long each flash and each beep lasts, in seconds (three frames at 25 fps; the beep a bit
/// shorter so the two never merge with the next second's).
const FLASH_SECONDS: &str = "0.12";
const BEEP_SECONDS: &str = "0.1";
/// Beeps are found in chunks of this many samples at 48 kHz (1 ms).
const AUDIO_CHUNK: u32 = 48;
/// A frame brighter than this (luma, 16..235) is a flash; the picture is black otherwise.
const FLASH_LUMA: f64 = 128.0;
/// A chunk louder than this (peak, dBFS) is a beep; the tone is at −6 dBFS, silence otherwise.
const BEEP_DBFS: f64 = -20.0;
/// A beep further than this from a flash is not its partner, in seconds.
const PAIRING_SECONDS: f64 = 0.4;

/// The `ffmpeg` input arguments (two lavfi sources) of a picture of `size` at `fps` that
/// flashes white, and a 48 kHz tone that beeps, at the start of every second: aligned sample-
/// and frame-exactly in the source.
pub fn flash_and_beep_inputs(size: &str, fps: u32) -> Vec<String> {
    let video = format!(
        "color=c=black:s={size}:r={fps},drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:\
         enable='lt(mod(t\\,1)\\,{FLASH_SECONDS})'"
    );
    let audio = format!("aevalsrc='0.5*sin(2*PI*1000*t)*lt(mod(t\\,1)\\,{BEEP_SECONDS})':s=48000");
    ["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio].map(String::from).to_vec()
}

/// What [`measure`] found in a file.
#[derive(Debug, Clone)]
pub struct Sync {
    /// Audio minus video per flash that has a beep beside it, in ms (negative: audio early).
    pub offsets_ms: Vec<f64>,
    pub flashes: usize,
    pub beeps: usize,
}

impl Sync {
    /// The mean offset, audio minus video, in ms.
    pub fn mean_ms(&self) -> f64 {
        assert!(!self.offsets_ms.is_empty(), "no flash with a beep beside it: {self:?}");
        self.offsets_ms.iter().sum::<f64>() / self.offsets_ms.len() as f64
    }
}

/// Decodes `path` with `ffmpeg` and pairs every flash onset with the nearest beep onset.
/// `scratch` is a directory for the metadata `ffmpeg` writes.
pub fn measure(path: &Path, scratch: &Path) -> Sync {
    let luma = scratch.join("luma.txt");
    let level = scratch.join("level.txt");
    let graph = format!(
        "[0:v]signalstats,metadata=print:key=lavfi.signalstats.YAVG:file={luma}[v];\
         [0:a]asetnsamples=n={AUDIO_CHUNK}:p=0,astats=metadata=1:reset=1,\
         ametadata=print:key=lavfi.astats.Overall.Peak_level:file={level}[a]",
        luma = luma.display(),
        level = level.display(),
    );
    let output = Program::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-filter_complex", &graph, "-map", "[v]", "-map", "[a]", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "ffmpeg measuring {path:?}: {}", String::from_utf8_lossy(&output.stderr));
    let flashes = onsets(&series(&luma, "YAVG"), FLASH_LUMA);
    let beeps = onsets(&series(&level, "Peak_level"), BEEP_DBFS);
    let offsets_ms = flashes
        .iter()
        .filter_map(|&flash| {
            let beep = beeps.iter().copied().min_by(|a, b| (a - flash).abs().total_cmp(&(b - flash).abs()))?;
            ((beep - flash).abs() < PAIRING_SECONDS).then_some((beep - flash) * 1000.0)
        })
        .collect();
    Sync { offsets_ms, flashes: flashes.len(), beeps: beeps.len() }
}

/// (pts_time, value) pairs from a file the `metadata`/`ametadata` filters printed.
fn series(path: &Path, key: &str) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(path).expect("read the metadata ffmpeg printed");
    let mut at = None;
    let mut values = Vec::new();
    for line in text.lines() {
        if let Some(time) = line.split("pts_time:").nth(1) {
            at = time.trim().parse::<f64>().ok();
        } else if let (Some(time), Some((name, value))) = (at, line.split_once('=')) {
            if name.ends_with(key) {
                // astats prints -inf for digital silence.
                values.push((time, value.trim().parse::<f64>().unwrap_or(f64::NEG_INFINITY)));
            }
        }
    }
    values
}

/// When `series` rises above `threshold`, each time.
fn onsets(series: &[(f64, f64)], threshold: f64) -> Vec<f64> {
    let mut was_above = true; // a file that starts mid-flash has no onset there
    let mut found = Vec::new();
    for &(time, value) in series {
        let above = value > threshold;
        if above && !was_above {
            found.push(time);
        }
        was_above = above;
    }
    found
}

/// The quality report the recorder or mixer sent for the `format` file `file`.
pub fn reported_quality(outputs: &[Output], format: Format, file: u32) -> Quality {
    let reported = outputs.iter().find_map(|o| match o {
        Output::FileQuality { format: f, file: n, quality } if *f == format && *n == file => Some(quality.clone()),
        _ => None,
    });
    reported.unwrap_or_else(|| panic!("no quality report for {format:?} file {file}: {outputs:?}"))
}

/// Asserts the report's A/V offset agrees with the one measured in the file within 20 ms.
pub fn assert_report_agrees(quality: &Quality, measured: &Sync) {
    let reported = quality.av_offset_ms.unwrap_or_else(|| panic!("no A/V offset reported: {quality:?}"));
    eprintln!("reported A/V offset {reported:.1} ms, measured {:.1} ms", measured.mean_ms());
    assert!((reported - measured.mean_ms()).abs() <= 20.0, "reported {quality:?}, measured {measured:?}");
}
