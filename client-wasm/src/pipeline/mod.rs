//! The client's rules in plain Rust, with no browser in it: configuration and how `configure`
//! merges it, enrichment (which fields an event gets, in which precedence), the queue, the
//! batching policy, the retry backoff and the warnings' dedup. [`crate::machine`] drives them;
//! `web` is the only part that touches JavaScript. Everything here is tested natively
//! (`cargo test -p session-log-client`).
//!
//! Nothing here uses Rust's `format!` machinery: strings are joined with [`cat`] and numbers
//! written with [`decimal`], which keeps `core::fmt` and its Unicode tables out of the wasm.

mod backoff;
mod config;
mod enrich;
mod ids;
mod queue;
mod routes;
#[cfg(test)]
mod tests;
mod text;
mod warnings;

pub use backoff::*;
pub use config::*;
pub use enrich::*;
pub use ids::*;
pub use queue::*;
pub use routes::*;
pub use text::*;
pub use warnings::*;
