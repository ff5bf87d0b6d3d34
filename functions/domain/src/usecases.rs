//! The use cases the HTTP functions call, one struct per resource, each over only the ports
//! it uses. App-scoped use cases take an [`OwnedApp`], which only [`Access::app`] makes, so
//! ownership is checked once per request.

mod access;
mod apps;
mod callbacks;
mod events;
mod files;
mod jobs;
mod jocloud;
mod rooms;
mod rules;
mod sweeper;
#[cfg(test)]
mod tests;

pub use access::{Access, IssuedCredential, IssuedToken, OwnedApp, TokenError};
pub use apps::{Apps, AppsPorts};
pub use callbacks::Callbacks;
pub use events::JobEvents;
pub use files::{Files, FilesPorts};
pub use jobs::{Jobs, QuotaPorts};
pub use jocloud::{Jocloud, JocloudPorts};
pub use rooms::{PublishCall, PublishEvent, Rooms, RoomsPorts};
pub use rules::{Rules, SavedRule};
pub use sweeper::{Sweeper, Swept, INIT_GRACE};
