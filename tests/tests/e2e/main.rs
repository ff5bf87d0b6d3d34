#![allow(clippy::unwrap_used)] // test helpers fail loudly by design
//! End-to-end tests against the local stack: the gateway over HTTP, moto through the AWS SDK,
//! nginx-rtmp with ffmpeg-published streams. Run them with `make test`.

mod apps;
mod auto_record;
mod bad_input;
mod callback;
mod credentials;
mod jobs;
mod jocloud;
mod logs;
mod preflight;
mod quotas;
mod replay;
mod rooms;
mod rules;
mod stream_guard;
mod tokens;
