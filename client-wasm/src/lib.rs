//! session-log's browser client.
//!
//! A workshop page imports the npm package built from this crate and calls `logNavigation`,
//! `logError`, `logAction`, `logApiCall`, `logStateChange` and `logSessionEvent` (the reference
//! document's client functions). Each call enriches the event with the page's context, queues it
//! and returns at once; batches go to the server in the background. Nothing here throws into the
//! page: problems are reported once with `console.warn`.
//!
//! [`pipeline`] holds the rules (options, enrichment, the queue, backoff), [`durable`] the queue kept
//! in `localStorage`, [`capture`] what the client captures by itself (uncaught errors, requests,
//! route changes), and [`machine`] the delivery state machine that drives them; all four are
//! plain Rust, tested natively. The `web` module (compiled only for `wasm32`) is the thin
//! `#[wasm_bindgen]` layer that converts values and carries out the machine's actions.
#![deny(missing_docs)]

pub mod capture;
pub mod durable;
pub mod machine;
pub mod pipeline;

#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(target_arch = "wasm32")]
pub use web::{
    configure, flush, get_session_token, has_opted_out, log, on_delivery_error, opt_in, opt_out, set_step, stats,
    LocalStore, TAB_KEY,
};
