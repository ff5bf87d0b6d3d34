//! The recorder (and the RTMP client it pulls with) end to end: real inputs made with the
//! `ffmpeg` program, real outputs checked with `ffprobe`, and a real nginx-rtmp server for
//! pauses, A/V sync and the RTMP readers.

mod av_sync;
mod files;
mod guard;
mod holds;
mod inputs;
mod pauses;
mod probes;
mod readers;
mod rtmp_client;
mod rtmps;
mod support;
mod sync;
