//! End-to-end tests of the recording worker: real RTMP publishes through nginx-rtmp, a real
//! `roomrec-worker` process (started by infra/local/test.sh), recordings checked in moto's S3
//! with ffprobe, events checked in the outbox. Run them with `make test`.
#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod auto_record;
mod console;
mod downloads;
mod files;
mod guard;
mod jocloud;
mod metrics;
mod mix;
mod pauses;
mod preflight;
mod quality;
mod recording;
mod storage;
mod streams;
mod support;
mod timeline;
mod usage;
