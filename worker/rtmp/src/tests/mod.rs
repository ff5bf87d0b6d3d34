//! Offline tests of whole sessions against a fake server built from our own chunk writer.

mod blocking;
mod fuzz;
mod play;
mod publish;
mod server;
