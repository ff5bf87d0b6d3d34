//! The recorder end to end: real inputs made with the `ffmpeg` program, real outputs checked
//! with `ffprobe`, and a real nginx-rtmp server for pauses and A/V sync.

mod av_sync;
mod files;
mod guard;
mod holds;
mod inputs;
mod pauses;
mod probes;
mod readers;
mod rtmps;
mod support;
mod sync;
