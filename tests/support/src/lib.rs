//! What the end-to-end tests (`roomrec-tests`) and the benchmarks (`benches/*`) share, so each
//! helper exists once: a client of the roomrec HTTP API, a callback receiver, CPU and memory
//! sampling from `/proc`, latency percentiles, Markdown tables, and the variables the local
//! stack exports.

pub mod api;
pub mod env;
pub mod markdown;
pub mod procs;
pub mod receiver;
pub mod stats;
