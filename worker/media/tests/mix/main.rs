//! The mixer end to end: participants published to a real nginx-rtmp by the `ffmpeg`
//! program, mixed in process, and the output files read back with `ffmpeg`/`ffprobe`.
//! Each mix runs in real time, one at a time; several tests check one mix.

#[path = "../recorder/support.rs"]
#[allow(dead_code)]
mod recorder_support;

mod files;
mod grid;
mod holds;
mod images;
mod screen_share;
mod seats;
mod speakers;
mod support;
