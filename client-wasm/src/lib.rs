//! session-log's browser client.
//!
//! A workshop page imports the npm package built from this crate, calls `await init()` once, and
//! then `logNavigation`, `logError`, `logAction`, `logApiCall`, `logStateChange` and
//! `logSessionEvent` (the reference document's client functions). Each call enriches the event
//! with the page's context, queues it and returns at once; batches go to the server in the
//! background. Nothing here throws into the page: problems are reported once with `console.warn`.
//!
//! [`core`] holds the logic in plain Rust and is tested natively; the `web` module (compiled only
//! for `wasm32`) is the thin `#[wasm_bindgen]` layer that converts values and touches the browser.
#![deny(missing_docs)]

pub mod core;
pub mod durable;

#[cfg(target_arch = "wasm32")]
mod web;

#[cfg(target_arch = "wasm32")]
pub use web::{
    configure, flush, get_session_token, log_action, log_api_call, log_error, log_navigation, log_session_event,
    log_state_change, on_delivery_error, set_step, stats, LocalStore, TAB_KEY,
};
