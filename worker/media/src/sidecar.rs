//! The timeline sidecar of each recording file: what happened while it was recorded (joins,
//! leaves, layouts, pins, the active speaker, gaps, pauses), each at its media time in the
//! file, rendered as `<file>.timeline.json` and, for a mix, a WebVTT track of the speaker.
//!
//! The recording keeps one [`MarkLog`] on the recording's timeline (µs), shared by its HLS
//! and MP4 writers: a file takes what holds when it opens (restated at 0 ms) and every mark
//! made while it is open, shifted to its own start. (Not `timeline.rs`: that maps one
//! connection's timestamps.)

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::{LayoutKind, Pin};

/// A participant stream of a mix: a user's camera or their screen share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub user_id: String,
    pub screen_share: bool,
}

/// A pane of the canvas as laid out, in output pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPane {
    /// From 1, as `layout_panes` count them.
    pub id: u32,
    /// Who shows there; `None`: the pane is empty (background).
    pub who: Option<Who>,
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Something that happened in a recording, as its files' timelines list it.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// A participant stream joined the mix; `None`: an individual recording's stream connected.
    Join(Option<Who>),
    /// A participant stream left the mix.
    Leave(Who),
    /// The canvas is laid out as `kind` with these panes (none for an audio-only mix).
    Layout { kind: LayoutKind, panes: Vec<PlacedPane> },
    /// The streams pinned to panes now.
    Pinned(Vec<Pin>),
    /// The active speaker is now this user; `None`: nobody is above the floor.
    Speaker(Option<String>),
    /// The source was gone for `away` and came back; the file goes on right here.
    Gap { away: Duration },
    /// The job was paused: nothing is recorded until [`Mark::Resume`].
    Pause,
    /// The job resumed after a pause of `paused`.
    Resume { paused: Duration },
}

impl Mark {
    /// Whether the mark says what holds from now on (restated at the start of every file),
    /// rather than something that happened once.
    fn standing(&self) -> bool {
        matches!(self, Self::Join(_) | Self::Layout { .. } | Self::Pinned(_) | Self::Speaker(Some(_)))
    }
}

/// An open file's timeline is sent again after this much more media (in µs) once a mark was
/// made since it was last sent, so a worker that dies leaves a recent one in storage. An
/// unchanged timeline is not sent again: each store is an S3 call per file.
const SNAPSHOT_EVERY_US: i64 = 10_000_000;

/// A recording's marks, shared by its writers on one thread.
pub(crate) type Log = Rc<RefCell<MarkLog>>;

/// Every mark of a recording on its timeline, and what holds now.
#[derive(Debug, Default)]
pub(crate) struct MarkLog {
    /// (µs on the recording's timeline, mark), in the order they were made.
    marks: Vec<(i64, Mark)>,
    /// The streams present, in join order.
    present: Vec<Option<Who>>,
    layout: Option<Mark>,
    pinned: Option<Mark>,
    speaker: Option<Mark>,
}

impl MarkLog {
    /// Records `mark` at `at_us` on the recording's timeline.
    pub(crate) fn push(&mut self, at_us: i64, mark: Mark) {
        match &mark {
            Mark::Join(who) if !self.present.contains(who) => self.present.push(who.clone()),
            Mark::Leave(who) => self.present.retain(|p| p.as_ref() != Some(who)),
            Mark::Layout { .. } => self.layout = Some(mark.clone()),
            Mark::Pinned(_) => self.pinned = Some(mark.clone()),
            Mark::Speaker(_) => self.speaker = Some(mark.clone()),
            _ => {}
        }
        self.marks.push((at_us, mark));
    }

    /// A file opens whose media starts at `origin_us` on the timeline: what holds now is its
    /// opening, and the marks from here on are its own.
    pub(crate) fn open_file(&self, origin_us: i64) -> FileMarks {
        let joins = self.present.iter().cloned().map(Mark::Join);
        let states = [&self.layout, &self.pinned, &self.speaker].into_iter().flatten().cloned();
        let opening = joins.chain(states).filter(Mark::standing).collect();
        let from = self.marks.len();
        FileMarks { from, origin_us, started_at: SystemTime::now(), opening, snapshot_us: 0, sent_marks: None }
    }

    /// The timeline of the file `file`, which holds `duration` of media.
    pub(crate) fn timeline(&self, file: &FileMarks, duration: Duration) -> FileTimeline {
        let end_us = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
        let in_file = |at_us: i64| {
            let us = at_us.saturating_sub(file.origin_us).clamp(0, end_us);
            Duration::from_micros(u64::try_from(us).unwrap_or(0))
        };
        let mut entries: Vec<(Duration, Mark)> = file.opening.iter().map(|m| (Duration::ZERO, m.clone())).collect();
        let made = self.marks.get(file.from..).unwrap_or_default();
        entries.extend(made.iter().map(|(at_us, mark)| (in_file(*at_us), mark.clone())));
        // A speaker is marked at its onset, once held: after later marks. Stable: ties keep order.
        entries.sort_by_key(|(at, _)| *at);
        FileTimeline { started_at: file.started_at, duration, entries }
    }

    /// The file's timeline, `at_us` into it, when it is due to be sent again: the first time
    /// after [`SNAPSHOT_EVERY_US`] of media, then that long after the last one sent once a mark
    /// was made since.
    pub(crate) fn snapshot(&self, file: &mut FileMarks, at_us: i64, duration: Duration) -> Option<FileTimeline> {
        let changed = file.sent_marks.is_none_or(|sent| sent < self.marks.len());
        if !changed || at_us.saturating_sub(file.snapshot_us) < SNAPSHOT_EVERY_US {
            return None;
        }
        (file.snapshot_us, file.sent_marks) = (at_us, Some(self.marks.len()));
        Some(self.timeline(file, duration))
    }
}

/// Where one file starts on the timeline, and what held when it opened.
#[derive(Debug)]
pub(crate) struct FileMarks {
    from: usize,
    origin_us: i64,
    started_at: SystemTime,
    opening: Vec<Mark>,
    /// Where in the file its timeline was last sent, in µs.
    snapshot_us: i64,
    /// How many marks the recording had when it was last sent.
    sent_marks: Option<usize>,
}

/// One file's timeline: its marks at media times since its first frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FileTimeline {
    /// The wall-clock time of the file's media time 0.
    pub started_at: SystemTime,
    /// The file's media duration; no entry is later.
    pub duration: Duration,
    /// In media time order.
    pub entries: Vec<(Duration, Mark)>,
}

/// Version of the sidecar's JSON format.
const FORMAT_VERSION: u32 = 1;

impl FileTimeline {
    /// The `<file>.timeline.json` of the file stored as `object` (README: "Timeline sidecar").
    pub fn json(&self, object: &str) -> String {
        let start_ms = self.started_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let entries: Vec<Value> = self.entries.iter().map(|(at, mark)| entry(*at, mark)).collect();
        let document = json!({
            "version": FORMAT_VERSION,
            "object": object,
            "start_time": start_ms,
            "duration_ms": self.duration.as_millis(),
            "entries": entries,
        });
        document.to_string()
    }

    /// The WebVTT track of the active speaker: one cue per stretch a user is the speaker,
    /// its text the user id.
    pub fn speakers_vtt(&self) -> String {
        let mut vtt = String::from("WEBVTT\n");
        let speakers: Vec<(Duration, Option<&str>)> = self
            .entries
            .iter()
            .filter_map(|(at, mark)| match mark {
                Mark::Speaker(user) => Some((*at, user.as_deref())),
                _ => None,
            })
            .collect();
        let mut cue = 0;
        for (index, (from, user)) in speakers.iter().enumerate() {
            let to = speakers.get(index + 1).map_or(self.duration, |(next, _)| *next);
            let Some(user) = user.filter(|_| to > *from) else { continue };
            cue += 1;
            let _ = write!(vtt, "\n{cue}\n{} --> {}\n{}\n", vtt_time(*from), vtt_time(to), cue_text(user));
        }
        vtt
    }
}

/// One entry of the JSON timeline.
fn entry(at: Duration, mark: &Mark) -> Value {
    let at_ms = at.as_millis();
    match mark {
        Mark::Join(None) => json!({"at_ms": at_ms, "type": "join"}),
        Mark::Join(Some(who)) => {
            json!({"at_ms": at_ms, "type": "join", "user_id": who.user_id, "video_type": video_type(who.screen_share)})
        }
        Mark::Leave(who) => {
            json!({"at_ms": at_ms, "type": "leave", "user_id": who.user_id, "video_type": video_type(who.screen_share)})
        }
        Mark::Layout { kind, panes } => {
            let panes: Vec<Value> = panes.iter().map(placed).collect();
            json!({"at_ms": at_ms, "type": "layout", "layout": layout_name(*kind), "panes": panes})
        }
        Mark::Pinned(pins) => {
            let panes: Vec<Value> = pins
                .iter()
                .map(|pin| json!({"id": pin.pane, "user_id": pin.user_id, "video_type": video_type(pin.screen_share)}))
                .collect();
            json!({"at_ms": at_ms, "type": "pinned", "panes": panes})
        }
        Mark::Speaker(user) => json!({"at_ms": at_ms, "type": "speaker", "user_id": user}),
        Mark::Gap { away } => json!({"at_ms": at_ms, "type": "gap", "seconds": seconds(*away)}),
        Mark::Pause => json!({"at_ms": at_ms, "type": "pause"}),
        Mark::Resume { paused } => json!({"at_ms": at_ms, "type": "resume", "seconds": seconds(*paused)}),
    }
}

fn placed(pane: &PlacedPane) -> Value {
    let mut value = json!({"id": pane.id, "x": pane.x, "y": pane.y, "width": pane.width, "height": pane.height});
    if let (Some(who), Some(object)) = (&pane.who, value.as_object_mut()) {
        object.insert("user_id".into(), who.user_id.clone().into());
        object.insert("video_type".into(), video_type(who.screen_share).into());
    }
    value
}

/// Seconds, to the millisecond.
fn seconds(duration: Duration) -> f64 {
    duration.as_millis() as f64 / 1000.0
}

/// The API's name of a stream's kind.
fn video_type(screen_share: bool) -> &'static str {
    if screen_share {
        "SUBSTREAM"
    } else {
        "CAMERASTREAM"
    }
}

/// The API's name of a layout.
fn layout_name(kind: LayoutKind) -> &'static str {
    match kind {
        LayoutKind::Grid => "nine_grids_view",
        LayoutKind::ScreenShareLeft => "screen_share_left",
        LayoutKind::ScreenShareRight => "screen_share_right",
    }
}

/// `hh:mm:ss.ttt`, as WebVTT cue timings are written.
fn vtt_time(at: Duration) -> String {
    let ms = at.as_millis();
    format!("{:02}:{:02}:{:02}.{:03}", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

/// A user id as cue text: WebVTT reads `&`, `<` and `>` as markup, and a blank line or
/// `-->` would end or confuse the cue.
fn cue_text(user: &str) -> String {
    user.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\r', '\n'], " ")
        .replace("-->", "--&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user: &str) -> Who {
        Who { user_id: user.into(), screen_share: false }
    }

    const MS: i64 = 1000;

    #[test]
    fn a_file_restates_what_holds_at_its_start_and_takes_later_marks_at_its_own_times() {
        let mut log = MarkLog::default();
        log.push(0, Mark::Join(Some(who("a"))));
        log.push(0, Mark::Layout { kind: LayoutKind::Grid, panes: Vec::new() });
        log.push(500 * MS, Mark::Join(Some(who("b"))));
        log.push(700 * MS, Mark::Leave(who("b")));
        log.push(900 * MS, Mark::Speaker(Some("a".into())));
        let file = log.open_file(1_000 * MS);
        log.push(1_500 * MS, Mark::Join(Some(who("c"))));
        log.push(2_500 * MS, Mark::Speaker(None));
        let timeline = log.timeline(&file, Duration::from_secs(2));
        let expected = vec![
            (Duration::ZERO, Mark::Join(Some(who("a")))),
            (Duration::ZERO, Mark::Layout { kind: LayoutKind::Grid, panes: Vec::new() }),
            (Duration::ZERO, Mark::Speaker(Some("a".into()))),
            (Duration::from_millis(500), Mark::Join(Some(who("c")))),
            (Duration::from_millis(1500), Mark::Speaker(None)),
        ];
        assert_eq!(timeline.entries, expected, "b came and went before the file; nothing is later than its end");
    }

    #[test]
    fn an_open_files_timeline_is_sent_after_ten_seconds_then_again_only_once_a_mark_was_made() {
        let mut log = MarkLog::default();
        log.push(0, Mark::Join(Some(who("a"))));
        let mut file = log.open_file(0);
        let mut sent_at =
            |log: &MarkLog, s: i64| log.snapshot(&mut file, s * 1_000 * MS, Duration::from_secs(s as u64));
        assert_eq!(sent_at(&log, 9), None, "not before 10 s of media");
        let first = sent_at(&log, 10).expect("the first one at 10 s, marks or not");
        assert_eq!(first.duration, Duration::from_secs(10));
        assert_eq!(sent_at(&log, 25), None, "nothing new to store");
        log.push(26 * 1_000 * MS, Mark::Join(Some(who("b"))));
        let second = sent_at(&log, 26).expect("a mark made, 10 s since the last one: at once");
        assert_eq!(second.entries.len(), 2);
        log.push(30 * 1_000 * MS, Mark::Leave(who("b")));
        assert_eq!(sent_at(&log, 35), None, "within 10 s of the last one");
        assert_eq!(sent_at(&log, 36).map(|t| t.entries.len()), Some(3));
    }

    #[test]
    fn a_speaker_marked_late_at_its_onset_is_sorted_into_place_and_before_the_file_is_at_zero() {
        let mut log = MarkLog::default();
        let file = log.open_file(1_000 * MS);
        log.push(1_400 * MS, Mark::Leave(who("b")));
        log.push(1_200 * MS, Mark::Speaker(Some("a".into())));
        log.push(800 * MS, Mark::Speaker(Some("c".into())));
        let at: Vec<u128> =
            log.timeline(&file, Duration::from_secs(5)).entries.iter().map(|(at, _)| at.as_millis()).collect();
        assert_eq!(at, [0, 200, 400]);
    }

    #[test]
    fn the_json_names_the_file_and_lists_each_entry_with_its_fields() {
        let started_at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let pane = PlacedPane { id: 1, who: Some(who("a")), x: 0, y: 0, width: 320, height: 180 };
        let empty = PlacedPane { id: 2, who: None, x: 320, y: 0, width: 320, height: 180 };
        let pin = Pin { pane: 1, user_id: "a".into(), screen_share: true };
        let timeline = FileTimeline {
            started_at,
            duration: Duration::from_millis(9_000),
            entries: vec![
                (Duration::ZERO, Mark::Join(Some(who("a")))),
                (
                    Duration::from_millis(10),
                    Mark::Layout { kind: LayoutKind::ScreenShareLeft, panes: vec![pane, empty] },
                ),
                (Duration::from_millis(20), Mark::Pinned(vec![pin])),
                (Duration::from_millis(1_234), Mark::Speaker(Some("a".into()))),
                (Duration::from_millis(2_000), Mark::Speaker(None)),
                (Duration::from_millis(3_000), Mark::Gap { away: Duration::from_millis(2_500) }),
                (Duration::from_millis(4_000), Mark::Pause),
                (Duration::from_millis(4_000), Mark::Resume { paused: Duration::from_secs(60) }),
                (Duration::from_millis(5_000), Mark::Leave(who("a"))),
                (Duration::from_millis(6_000), Mark::Join(None)),
            ],
        };
        let parsed: Value = serde_json::from_str(&timeline.json("app/rec.mp4")).unwrap();
        let expected = json!({
            "version": 1, "object": "app/rec.mp4", "start_time": 1_700_000_000_123u64, "duration_ms": 9000,
            "entries": [
                {"at_ms": 0, "type": "join", "user_id": "a", "video_type": "CAMERASTREAM"},
                {"at_ms": 10, "type": "layout", "layout": "screen_share_left", "panes": [
                    {"id": 1, "user_id": "a", "video_type": "CAMERASTREAM", "x": 0, "y": 0, "width": 320, "height": 180},
                    {"id": 2, "x": 320, "y": 0, "width": 320, "height": 180}]},
                {"at_ms": 20, "type": "pinned", "panes": [{"id": 1, "user_id": "a", "video_type": "SUBSTREAM"}]},
                {"at_ms": 1234, "type": "speaker", "user_id": "a"},
                {"at_ms": 2000, "type": "speaker", "user_id": null},
                {"at_ms": 3000, "type": "gap", "seconds": 2.5},
                {"at_ms": 4000, "type": "pause"},
                {"at_ms": 4000, "type": "resume", "seconds": 60.0},
                {"at_ms": 5000, "type": "leave", "user_id": "a", "video_type": "CAMERASTREAM"},
                {"at_ms": 6000, "type": "join"},
            ]
        });
        assert_eq!(parsed, expected);
    }

    #[test]
    fn the_vtt_has_a_cue_per_speaker_stretch_ending_at_the_next_change_or_the_file_end() {
        let timeline = FileTimeline {
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(3_725_500),
            entries: vec![
                (Duration::ZERO, Mark::Join(Some(who("a")))),
                (Duration::from_millis(1_250), Mark::Speaker(Some("a".into()))),
                (Duration::from_millis(4_000), Mark::Speaker(None)),
                (Duration::from_millis(5_000), Mark::Speaker(Some("b<i>".into()))),
                (Duration::from_millis(61_000), Mark::Speaker(Some("c".into()))),
            ],
        };
        let expected = "WEBVTT\n\
            \n1\n00:00:01.250 --> 00:00:04.000\na\n\
            \n2\n00:00:05.000 --> 00:01:01.000\nb&lt;i&gt;\n\
            \n3\n00:01:01.000 --> 01:02:05.500\nc\n";
        assert_eq!(timeline.speakers_vtt(), expected);
    }

    #[test]
    fn without_a_speaker_the_vtt_is_only_its_header() {
        let timeline =
            FileTimeline { started_at: SystemTime::UNIX_EPOCH, duration: Duration::from_secs(5), entries: Vec::new() };
        assert_eq!(timeline.speakers_vtt(), "WEBVTT\n");
    }
}
