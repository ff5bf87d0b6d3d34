//! roomrec's core: what an app, a record rule, a callback, a room stream and a recording job
//! are, which values they accept, how a job moves between states, and the use cases the HTTP
//! functions call. Storage and queues are ports ([`ports`]); adapters live elsewhere.

pub mod app;
pub mod auto_record;
pub mod callback;
pub mod delivery;
pub mod error;
pub mod event;
pub mod ids;
pub mod job;
pub mod jocloud;
pub mod lease;
pub mod mix;
pub mod ports;
pub mod room;
pub mod rule;
pub mod service;
pub mod time;
pub mod url;
pub mod webhook;

pub use error::{Invalid, UseCaseError};
pub use service::Service;
