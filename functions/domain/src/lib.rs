//! roomrec's core: what an app, a record rule, a callback, a room stream and a recording job
//! are, which values they accept, how a job moves between states, and the use cases the HTTP
//! functions call. Storage, queues, time and randomness are ports ([`ports`], [`clock`]);
//! adapters live elsewhere, and [`testing`] has an in-memory twin of each.

pub mod app;
pub mod auto_record;
pub mod callback;
pub mod change;
pub mod clock;
pub mod delivery;
pub mod download;
pub mod error;
pub mod event;
pub mod failure;
pub mod ids;
pub mod job;
pub mod jocloud;
pub mod metric;
pub mod mix;
pub mod naming;
pub mod pause;
pub mod ports;
pub mod publish;
pub mod quota;
pub mod reach;
pub mod record;
pub mod retry;
pub mod room;
pub mod rule;
pub mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod token;
pub mod url;
pub mod usecases;
pub mod webhook;

pub use error::{Invalid, UseCaseError};
